"""Handlers of the login endpoints: login (derive and hold the key), logout, encryption-status.

The password is read from the body only and goes nowhere but `crypto.derive_key`; neither it nor the
key is ever logged, stored or put in a response (only the key's public check).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from app import coins, crypto
from app.errors import ApiError, FlagError, missing_parameter
from app.params import read_params
from app.state import keyring_key, run_blocking, wallets_key
from app.wallets import WalletService

log = logging.getLogger(__name__)

#: The folders whose coin files login and encryption-status look at (api.md, storage.md).
SCANNED_FOLDERS = ("Bank", "Fracked")
INCORRECT_PASSWORD = FlagError(401, "Incorrect password")



async def login(request: web.Request) -> web.Response:
    """POST /api/system/login: password (body only)."""
    if "password" in request.query:
        raise ApiError(400, "The password must be sent in the request body, never in the query string")
    password = (await read_params(request)).get("password", "")
    if password == "":
        raise missing_parameter("password")
    key = await run_blocking(request.app, crypto.derive_key, password)
    del password
    check = crypto.key_check(key)
    wallets = request.app[wallets_key]
    status = await run_blocking(request.app, scan_coin_headers, wallets, check)
    # Only this project's type-4 files carry a key check made the way ours is (storage.md); a
    # type-1 file of another tool can match no password, so it must not make every login fail.
    if status.ours and not status.matching:
        log.info("login refused: %d type-4 coin files, none under this key", status.ours)
        raise INCORRECT_PASSWORD
    request.app[keyring_key].set(key)
    log.info("login: coin-file key set")
    return web.json_response({"command": "login", "success": True, "key_set": True, "key_check": check.hex()})


async def logout(request: web.Request) -> web.Response:
    """POST /api/system/logout: forget the key."""
    request.app[keyring_key].clear()
    log.info("logout: coin-file key cleared")
    return web.json_response({"command": "logout", "success": True, "key_set": False})


async def encryption_status(request: web.Request) -> web.Response:
    """GET /api/system/encryption-status: counts of encrypted and plaintext coin files."""
    key_set = request.app[keyring_key].key is not None
    status = await run_blocking(request.app, scan_coin_headers, request.app[wallets_key], None)
    return web.json_response(
        {
            "command": "encryption-status",
            "success": True,
            "key_set": key_set,
            "encrypted_count": status.encrypted,
            "plaintext_count": status.plaintext,
            "login_required": status.encrypted > 0 and not key_set,
        }
    )


# -- reading coin headers (blocking) -----------------------------------------------------------


@dataclass(slots=True)
class HeaderScan:
    encrypted: int = 0  # any encryption type
    plaintext: int = 0
    ours: int = 0  # type 4, this project's scheme
    matching: int = 0  # type-4 files under the key check asked about


_MAGIC = bytes((coins.FORMAT, coins.CLOUD_ID)) + coins.COIN_ID.to_bytes(2, "big")


def scan_coin_headers(wallets: WalletService, check: bytes | None) -> HeaderScan:
    """Count the coin files in Bank/ and Fracked/ of every registered wallet by their header.

    With `check`, stop at the first type-4 file under that key check: login needs to know only
    whether one exists. Files that are not coin files (no format-9 header) count as neither.
    """
    scan = HeaderScan()
    registry = wallets.read()
    for entry in registry.entries:
        for folder in SCANNED_FOLDERS:
            _scan_folder(Path(entry.wallet_path) / folder, check, scan)
            if check is not None and scan.matching:
                return scan
    return scan


def _scan_folder(folder: Path, check: bytes | None, scan: HeaderScan) -> None:
    try:
        it = os.scandir(folder)
    except OSError:
        return  # an offline wallet (unplugged stick) has nothing to count
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    with it:
        for entry in it:
            if not entry.name.lower().endswith(".bin"):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                fd = os.open(entry.path, flags)
                try:
                    header = os.read(fd, coins.HEADER_SIZE)
                finally:
                    os.close(fd)
            except OSError:
                continue
            if len(header) < coins.HEADER_SIZE or header[:4] != _MAGIC:
                continue
            if header[5] == coins.Encryption.NONE:
                scan.plaintext += 1
                continue
            scan.encrypted += 1
            if header[5] == coins.Encryption.AES256_CTR:
                scan.ours += 1
                if check is not None and header[8:15] == check:
                    scan.matching += 1
                    return
