"""Reading a wallet's coin folders: the balance and coin pages (blocking; the wallet service runs them on
its thread pool). One bad file never fails a request: it is valued by its name or listed as unreadable."""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.wallet import coins
from app.wallet.coins import units_to_json as _units_to_json
from app.wallet.errors import ApiError
from app.wallet.model import Wallet
from app.wallet.registry import Registry

log = logging.getLogger("app.wallet.wallets")

#: Folders whose coins count towards the balance, in reporting order.
VALUE_FOLDERS = ("Bank", "Fracked", "Limbo")


def is_wallet_folder(path: Path) -> bool:
    """storage.md: a folder counts as a wallet when it has Bank/ and Fracked/."""
    return (path / "Bank").is_dir() and (path / "Fracked").is_dir()


def _require_online(wallet: Wallet) -> None:
    if not is_wallet_folder(wallet.path):
        raise ApiError(404, f"Wallet folder is missing (offline): {wallet.path}")


class _CoinFolder:
    """One coin folder opened once: its .bin names, and each file opened relative to the folder's
    descriptor (no path walk per file, and a file swapped for a link after the listing is not followed).

    A missing folder (the server tolerates all but Bank and Fracked missing) holds no coin; a folder
    that cannot be opened or listed raises OSError for the caller to report."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self._error: OSError | None = None
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            self._error = exc

    def __enter__(self) -> _CoinFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def names(self, *, ordered: bool = True) -> list[str]:
        """Names of the regular .bin files (sorted unless `ordered` is false); links are never followed.

        Sorting 100,000 names holds the GIL for tens of milliseconds in one stretch, stalling the event
        loop; a balance does not need the order."""
        if self._error is not None:
            raise self._error
        if self.fd is None:
            return []
        with os.scandir(self.fd) as it:
            names = [e.name for e in it if e.name.lower().endswith(".bin") and e.is_file(follow_symlinks=False)]
        if ordered:
            names.sort()
        return names

    def inspect(self, name: str) -> coins.CoinFileInfo | None:
        """The file's headers, or None (logged) when it cannot be read or is not a coin file."""
        if self.fd is None:  # the folder is gone: never fall back to a path relative to the cwd
            return None
        try:
            return coins.inspect_coin_file(_read_file(self.fd, name))
        except (OSError, coins.CoinFileError) as exc:
            log.info("coin file %s is unreadable: %s", self.path / name, exc)
            return None


def _coin_files(folder: Path) -> list[str]:
    with _CoinFolder(folder) as coin_folder:
        return coin_folder.names()


#: The largest well-formed coin file: 65,535 records with PANs. Anything larger is not read whole.
_MAX_COIN_FILE = coins.HEADER_SIZE + coins.NONCE_SIZE + 0xFFFF * (coins.COIN_HEADER_SIZE + 2 * coins.AN_BLOCK)
#: One read takes a whole single-coin file (439 or 455 bytes) and most export files.
_READ_CHUNK = 1 << 16


def _read_file(dir_fd: int | None, name: str) -> bytes:
    """The whole file `name` in the folder `dir_fd`; never follows a link, never blocks on a FIFO."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        data = os.read(fd, _READ_CHUNK)
        if len(data) < _READ_CHUNK:
            return data
        chunks, size = [data], len(data)
        while chunk := os.read(fd, _READ_CHUNK):
            size += len(chunk)
            if size > _MAX_COIN_FILE:
                raise coins.CoinFileError("too large for a coin file")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _denomination_of(units: int) -> int | None:
    for denomination in range(-8, 7):
        if coins.denomination_value(denomination) == units:
            return denomination
    return None


def coin_file_value(name: str, data: bytes | None) -> tuple[int, int] | None:
    """(units, notes) a coin file called `name` holding `data` adds to its folder's balance, exactly as
    `wallet_balance` counts it (the headers, else the value in the name); None when it adds nothing.
    `data` None: too big to be read whole, so only its name can tell."""
    if data is not None and len(data) <= _MAX_COIN_FILE:
        try:
            info = coins.inspect_coin_file(data)
        except coins.CoinFileError:
            pass
        else:
            return info.total_value, info.coin_count
    units = coins.value_from_file_name(name)
    return None if units is None else (units, 1)


def wallet_balance(wallet: Wallet) -> dict[str, Any]:
    _require_online(wallet)
    body: dict[str, Any] = {
        "command": "wallet-balance",
        "success": True,
        "wallet_name": wallet.name,
        "wallet_path": str(wallet.path),
        "total_value": 0,
        "total_notes": 0,
    }
    denominations: Counter[int] = Counter()
    encrypted = 0
    unreadable: list[str] = []
    for folder in VALUE_FOLDERS:
        value = notes = 0
        try:
            with _CoinFolder(wallet.path / folder) as coin_folder:
                for name in coin_folder.names(ordered=False):
                    info = coin_folder.inspect(name)
                    if info is None:
                        units = coins.value_from_file_name(name)
                        if units is None:
                            unreadable.append(f"{folder}/{name}")
                            continue
                        value += units
                        notes += 1
                        denomination = _denomination_of(units)
                        if denomination is not None:
                            denominations[denomination] += 1
                        continue
                    encrypted += info.encrypted
                    for coin in info.coins:
                        denominations[coin.denomination] += 1
                    value += info.total_value
                    notes += info.coin_count
        except OSError as exc:  # the folder itself cannot be opened or listed
            log.warning("coin folder %s cannot be listed: %s", wallet.path / folder, exc)
            unreadable.append(f"{folder}/")
        key = folder.lower()
        body[f"{key}_value"] = _units_to_json(value)
        body[f"{key}_notes"] = notes
        body["total_value"] += value
        body["total_notes"] += notes
    body["total_value"] = _units_to_json(body["total_value"])
    body["denominations"] = {str(d): n for d, n in sorted(denominations.items())}
    body["encrypted_notes"] = encrypted
    body["unreadable_files"] = sorted(unreadable)
    return body


def wallet_coins(wallet: Wallet, folder: str, offset: int, limit: int) -> dict[str, Any]:
    _require_online(wallet)
    folders = VALUE_FOLDERS if folder == "all" else (folder,)
    listing: list[tuple[str, str]] = []
    for f in folders:
        try:
            listing.extend((f, name) for name in _coin_files(wallet.path / f))
        except OSError as exc:
            log.warning("coin folder %s cannot be listed: %s", wallet.path / f, exc)
    page = []
    opened: dict[str, _CoinFolder] = {}
    with contextlib.ExitStack() as stack:
        for f, name in listing[offset : offset + limit]:
            if f not in opened:
                opened[f] = stack.enter_context(_CoinFolder(wallet.path / f))
            info = opened[f].inspect(name)
            coin = info.coins[0] if info is not None and info.coins else None
            page.append(
                {
                    "folder": f,
                    "file": name,
                    "serial_number": coin.serial_number if coin else None,
                    "denomination": coin.denomination if coin else None,
                    "value": _units_to_json(info.total_value) if info else _name_value(name),
                    "encrypted": bool(info.encrypted) if info else None,
                    "pown": info.pown if info else None,
                    **({"coin_count": info.coin_count} if info and info.is_multi else {}),
                    **({} if info else {"unreadable": True}),
                }
            )
    return {
        "command": "show-coins",
        "success": True,
        "wallet_name": wallet.name,
        "wallet_path": str(wallet.path),
        "folder": folder,
        "total": len(listing),
        "offset": offset,
        "limit": limit,
        "coins": page,
    }


def _name_value(name: str) -> int | float | None:
    units = coins.value_from_file_name(name)
    return None if units is None else _units_to_json(units)


# -- coin headers of every registered wallet: login and encryption-status --------------------------

#: The folders whose coin files login and encryption-status look at (api.md, storage.md).
SCANNED_FOLDERS = ("Bank", "Fracked")


@dataclass(slots=True)
class HeaderScan:
    encrypted: int = 0  # any encryption type
    plaintext: int = 0
    ours: int = 0  # type 4, this project's scheme
    matching: int = 0  # type-4 files under the key check asked about


_MAGIC = bytes((coins.FORMAT, coins.CLOUD_ID)) + coins.COIN_ID.to_bytes(2, "big")


def scan_coin_headers(registry: Registry, check: bytes | None) -> HeaderScan:
    """Count the coin files in Bank/ and Fracked/ of every registered wallet by their header.

    With `check`, stop at the first type-4 file under that key check: login needs to know only
    whether one exists. Files that are not coin files (no format-9 header) count as neither.
    """
    scan = HeaderScan()
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
