"""Wallets: the data directory, resolving wallet_path arguments, listing, balances, coins, create, switch.

The service runs every disk touch (registry reads and writes, folder walks, header reads) on the app's
own thread pool through `run_blocking`; the event loop only awaits. Registry changes are serialised by
`registry_lock`, which the rename job holds too.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.wallet.coinfolders import HeaderScan, is_wallet_folder, scan_coin_headers, wallet_balance, wallet_coins
from app.wallet.config import Config
from app.wallet.errors import ApiError, WalletNotFound
from app.wallet.model import Wallet
from app.wallet.paths import (
    Unresolvable,
    canonical,
    is_inside,
    sibling_names,
    wallet_argument,
    wallet_name_problem,
    write_refusal,
)
from app.wallet.registry import Registry, RegistryEntry, location_type, path_problem, read_registry, write_registry
from app.wallet.storage import atomic_write_bytes

log = logging.getLogger(__name__)

#: The reference client's wallet layout (storage.md).
WALLET_FOLDERS = (
    "Bank",
    "Corrupted",
    "Counterfeit",
    "Duplicates",
    "Encryption_Failed",
    "Errored",
    "Export",
    "Fracked",
    "Grade",
    "Import",
    "Imported",
    "Limbo",
    "Lockered",
    "Pending",
    "Receipts",
    "Sent",
    "Suspect",
    "Trash",
    "Withdrawn",
)
TRANSACTIONS_HEADER = "Symbol,Task ID,Date & Time,Remarks,Deposit,Withdraw,Description,Balance\n"
DEFAULT_WALLET = "Default"

RunBlocking = Callable[..., Awaitable[Any]]


def make_wallet_folder(path: Path) -> None:
    """Create a complete new wallet (storage.md) at `path`, which must not exist yet."""
    path.mkdir(mode=0o700)
    complete_wallet_folder(path)


def complete_wallet_folder(path: Path) -> None:
    """Give the folder `path` what a wallet has and it lacks (folders, transactions.csv, config.toml);
    nothing it has is changed."""
    for folder in WALLET_FOLDERS:
        (path / folder).mkdir(mode=0o700, exist_ok=True)
    if not os.path.lexists(path / "transactions.csv"):
        atomic_write_bytes(path / "transactions.csv", TRANSACTIONS_HEADER.encode())
    if not os.path.lexists(path / "config.toml"):
        created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        config = (
            f'[wallet]\nname = "{_toml_escape(path.name)}"\ncreated = "{created}"\nversion = 1\n\n'
            "[settings]\nencryption_enabled = false\n"
        )
        atomic_write_bytes(path / "config.toml", config.encode())


def _registration_problem(path: Path, registry: Registry) -> str | None:
    """Why the wallet folder at canonical `path` cannot be added to `registry`, or None.

    A wallet inside another one (or around one) would be archived with it and left behind by its
    rename, so the registry never holds two nested wallets."""
    problem = path_problem(str(path))
    if problem:
        return f"the path cannot be a registry row ({problem})"
    for entry in registry.entries:
        other = Path(entry.wallet_path)
        if other != path and (is_inside(path, other) or is_inside(other, path)):
            return f"it is nested with the registered wallet {other}"
    return None


def _remove_new_wallet(path: Path) -> None:
    """Undo make_wallet_folder: the folder was created by this request and holds no coin yet."""
    shutil.rmtree(path, ignore_errors=True)


def _toml_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class WalletService:
    def __init__(self, config: Config, *, run_blocking: RunBlocking) -> None:
        self._config = config
        self._run = run_blocking
        self.registry_lock = asyncio.Lock()

    @property
    def data_dir(self) -> Path:
        return canonical(self._config.data_dir)

    # -- the data directory and the registry -------------------------------------------------

    def prepare_data_dir(self) -> None:
        """First start: Client_Data, Wallets/Default and a registry naming it (blocking; run at startup)."""
        config = self._config
        for folder in (config.data_dir, config.wallets_dir, config.jobs_dir, config.logs_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        default = canonical(config.wallets_dir) / DEFAULT_WALLET
        if not os.path.lexists(default):
            make_wallet_folder(default)
        elif default.is_dir() and not default.is_symlink() and not is_wallet_folder(default):
            # A Default folder made by hand (or left half made): a wallet, not an offline row.
            complete_wallet_folder(default)
        registry = read_registry(config.registry_path)
        try:
            default = canonical(default)
        except Unresolvable:
            # A link to a drive that is not mounted now: the server starts, the wallet is offline. Its
            # row (if any) names where the link led, which cannot be told now: only a registry with
            # no row at all gets one, the link itself.
            if not registry.entries and not registry.bad_rows:
                write_registry(config.registry_path, [RegistryEntry(str(default), "local")])
            return
        if not config.registry_path.exists() or not registry.entries and not registry.bad_rows:
            write_registry(config.registry_path, [RegistryEntry(str(default), "local")])
        elif registry.index_of(str(default)) is None:
            # storage.md: the Default wallet is always registered (after the others, so the active one stays).
            write_registry(config.registry_path, [*registry.entries, RegistryEntry(str(default), "local")])

    def read(self) -> Registry:
        return read_registry(self._config.registry_path)

    def save(self, entries: list[RegistryEntry] | tuple[RegistryEntry, ...]) -> None:
        write_registry(self._config.registry_path, entries)

    # -- resolving ---------------------------------------------------------------------------

    def wallet_at(self, registry: Registry, index: int) -> Wallet:
        entry = registry.entries[index]
        path = Path(entry.wallet_path)
        return Wallet(path, index, index == 0, is_wallet_folder(path), entry.type)

    def find(self, raw: str | None) -> Wallet:
        """The registered wallet `raw` names (None: the active one), or WalletNotFound (blocking)."""
        registry = self.read()
        if raw is None or raw == "":
            if not registry.entries:
                raise WalletNotFound("(no active wallet)")
            return self.wallet_at(registry, 0)
        try:
            path = wallet_argument(raw, self._config.wallets_dir)
        except Unresolvable:
            raise WalletNotFound(raw) from None
        index = registry.index_of(str(path))
        if index is None:
            raise WalletNotFound(raw)
        return self.wallet_at(registry, index)

    async def resolve(self, raw: str | None) -> Wallet:
        return await self._run(self.find, raw)

    # -- listing -----------------------------------------------------------------------------

    def _list(self) -> dict[str, Any]:
        registry = self.read()
        wallets = [self.wallet_at(registry, i) for i in range(len(registry.entries))]
        locations: dict[str, list[dict[str, Any]]] = {}
        for wallet in wallets:
            locations.setdefault(str(wallet.path.parent), []).append(
                {"index": wallet.index, "name": wallet.name, "active": wallet.active}
            )
        return {
            "command": "wallet-list",
            "success": True,
            "count": len(wallets),
            "wallets": [wallet.to_json() for wallet in wallets],
            "locations": [{"path": path, "wallets": items} for path, items in locations.items()],
        }

    async def list(self) -> dict[str, Any]:
        return await self._run(self._list)

    # -- balance and coins -------------------------------------------------------------------

    async def balance(self, wallet: Wallet) -> dict[str, Any]:
        return await self._run(wallet_balance, wallet)

    async def coin_headers(self, check: bytes | None) -> HeaderScan:
        """Coin files of every registered wallet counted by header (login, encryption-status)."""
        return await self._run(lambda: scan_coin_headers(self.read(), check))

    async def show_coins(self, wallet: Wallet, *, folder: str, offset: int, limit: int) -> dict[str, Any]:
        return await self._run(wallet_coins, wallet, folder, offset, limit)

    # -- changes to the registry -------------------------------------------------------------

    async def create(self, raw: str) -> Wallet:
        async with self.registry_lock:
            return await self._run(self._create, raw)

    def _create(self, raw: str) -> Wallet:
        name = os.path.basename(raw.rstrip("/"))
        registry = self.read()
        try:
            parent = wallet_argument(raw, self._config.wallets_dir).parent
        except Unresolvable:
            parent = None
        siblings = [] if parent is None else sibling_names((e.wallet_path for e in registry.entries), parent)
        problem = wallet_name_problem(name, siblings)
        if problem:
            raise ApiError(400, f"Invalid wallet name: {problem}")
        try:
            path = wallet_argument(raw, self._config.wallets_dir)
        except Unresolvable:
            raise ApiError(400, f"Invalid wallet path: {raw}") from None
        problem = path_problem(str(path))
        if problem:
            raise ApiError(400, f"Invalid wallet path: {problem}")
        if is_inside(path, self.data_dir) and not is_inside(path, canonical(self._config.wallets_dir)):
            raise ApiError(400, "A wallet cannot live inside Client_Data outside its Wallets folder")
        if registry.index_of(str(path)) is not None:
            # Registered but its folder is missing (an unplugged stick): a new folder would shadow it.
            raise ApiError(409, f"A wallet is already registered at: {path}")
        if os.path.lexists(path):
            raise ApiError(409, f"A wallet or file already exists at: {path}")
        for entry in registry.entries:
            if is_inside(path, Path(entry.wallet_path)):
                raise ApiError(400, f"A wallet cannot live inside another wallet: {entry.wallet_path}")
        if not path.parent.is_dir():
            raise ApiError(400, f"Parent folder does not exist: {path.parent}")
        try:
            make_wallet_folder(path)
        except OSError as exc:
            if not isinstance(exc, FileExistsError):
                _remove_new_wallet(path)
            refusal = write_refusal(exc, "Cannot create the wallet folder", path)
            if refusal is not None:
                raise refusal from None
            raise ApiError(500, f"Cannot create wallet folder: {exc.strerror}") from exc
        entries = [*registry.entries, RegistryEntry(str(path), location_type(str(path)))]
        try:
            self.save(entries)
        except OSError:
            # Either both happen or neither: an unregistered new folder would be invisible and block the name.
            _remove_new_wallet(path)
            raise
        return self.wallet_at(Registry(tuple(entries)), len(entries) - 1)

    async def switch(self, raw: str) -> Wallet:
        async with self.registry_lock:
            return await self._run(self._switch, raw)

    def _switch(self, raw: str) -> Wallet:
        wallet = self.find(raw)
        registry = self.read()
        entries = list(registry.entries)
        entries.insert(0, entries.pop(wallet.index))
        self.save(entries)
        return self.wallet_at(Registry(tuple(entries)), 0)

    async def add_location(self, raw: str) -> builtins.list[str]:
        async with self.registry_lock:
            return await self._run(self._add_location, raw)

    def _add_location(self, raw: str) -> builtins.list[str]:
        if not os.path.isabs(raw):
            raise ApiError(400, "Location must be an absolute path")
        try:
            path = canonical(raw)
        except Unresolvable:
            raise ApiError(400, f"Location could not be resolved: {raw}") from None
        if not path.is_dir():
            raise ApiError(404, f"Location does not exist: {raw}")
        if is_inside(path, self.data_dir) and not is_inside(path, canonical(self._config.wallets_dir)):
            raise ApiError(400, "Wallets inside Client_Data live in its Wallets folder")
        if is_wallet_folder(path):
            found = [path]
        else:
            try:
                names = os.listdir(path)
            except OSError as exc:
                raise ApiError(400, f"Location cannot be read: {raw} ({exc.strerror})") from exc
            found = sorted(
                # Dot folders are never wallets (names cannot start with '.'); a restore in progress
                # extracts into one and must not be registered half-written.
                child
                for child in (path / name for name in names if not name.startswith("."))
                if not child.is_symlink() and child.is_dir() and is_wallet_folder(child)
            )
        registry = self.read()
        usable = []
        for candidate in found:
            problem = _registration_problem(candidate, registry)
            if problem is None:
                usable.append(candidate)
            else:
                log.warning("wallet folder %r is not registered: %s", str(candidate), problem)
        if found and not usable:
            raise ApiError(400, f"Cannot register {raw}: {_registration_problem(found[0], registry)}")
        if not usable:
            raise ApiError(404, f"No wallet folder (with Bank and Fracked) found at: {raw}")
        added = [str(p) for p in usable if registry.index_of(str(p)) is None]
        if added:
            self.save([*registry.entries, *(RegistryEntry(p, location_type(p)) for p in added)])
        return added
