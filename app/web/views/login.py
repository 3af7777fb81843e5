"""Handlers of the login endpoints: login (derive and hold the key), logout, encryption-status.

The password is read from the body only and goes nowhere but `crypto.derive_key`; neither it nor the
key is ever logged, stored or put in a response (only the key's public check).
"""

from __future__ import annotations

import logging

from aiohttp import web

from app.wallet import crypto
from app.wallet.errors import ApiError, FlagError, missing_parameter
from app.wallet.logins import LoginGate
from app.web.params import read_params
from app.web.state import keyring_key, login_gate_key, run_blocking, wallets_key

log = logging.getLogger(__name__)

INCORRECT_PASSWORD = FlagError(401, "Incorrect password")
ALREADY_LOGGED_IN = ApiError(409, "Already logged in with another password: log out first")


async def login(request: web.Request) -> web.Response:
    """POST /api/system/login: password (body only)."""
    if "password" in request.query:
        raise ApiError(400, "The password must be sent in the request body, never in the query string")
    password = (await read_params(request)).get("password", "")
    if password == "":
        raise missing_parameter("password")
    gate = request.app[login_gate_key]
    _refuse_while_limited(gate)
    async with gate.derivation:  # one scrypt at a time; the others wait here, on the loop
        _refuse_while_limited(gate)  # failures may have piled up while this one waited
        key = await run_blocking(request.app, crypto.derive_key, password)
    del password
    check = crypto.key_check(key)
    status = await request.app[wallets_key].coin_headers(check)
    # Only this project's type-4 files carry a key check made the way ours is (storage.md); a
    # type-1 file of another tool can match no password, so it must not make every login fail.
    if status.ours and not status.matching:
        gate.failed()
        log.info("login refused: %d type-4 coin files, none under this key", status.ours)
        raise INCORRECT_PASSWORD
    keyring = request.app[keyring_key]
    current = keyring.key_check
    if current is not None and current != check:
        # Replacing the key would leave files encrypted under the old one that nobody can read back.
        gate.failed()
        log.info("login refused: a key is set and this password derives another one")
        raise ALREADY_LOGGED_IN
    gate.succeeded()
    keyring.set(key)
    log.info("login: coin-file key set")
    return web.json_response({"command": "login", "success": True, "key_set": True, "key_check": check.hex()})


def _refuse_while_limited(gate: LoginGate) -> None:
    retry_after = gate.retry_after()
    if retry_after is not None:
        raise ApiError(
            429,
            f"Too many failed logins: try again in {retry_after} seconds",
            headers={"Retry-After": str(retry_after)},
        )


async def logout(request: web.Request) -> web.Response:
    """POST /api/system/logout: forget the key."""
    request.app[keyring_key].clear()
    log.info("logout: coin-file key cleared")
    return web.json_response({"command": "logout", "success": True, "key_set": False})


async def encryption_status(request: web.Request) -> web.Response:
    """GET /api/system/encryption-status: counts of encrypted and plaintext coin files."""
    key_set = request.app[keyring_key].key is not None
    status = await request.app[wallets_key].coin_headers(None)
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
