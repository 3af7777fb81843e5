"""Shared fixtures: a fresh app on tmp_path served through aiohttp_client, and coin-file makers."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.main import create_app
from app.wallet import coins
from app.wallet.config import Config
from app.wallet.registry import RegistryEntry, write_registry
from app.web.server import GuardedAppRunner


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "Client_Data"


@pytest.fixture
def make_config(data_dir: Path) -> Callable[..., Config]:
    def make(**overrides: Any) -> Config:
        return Config(**{"data_dir": data_dir, **overrides})

    return make


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], make_config: Callable[..., Config]
) -> Callable[..., Awaitable[TestClient]]:
    """`await make_client(**config_overrides)`: a real server on a fresh Client_Data under tmp_path."""

    async def make(**overrides: Any) -> TestClient:
        app: web.Application = create_app(make_config(**overrides))
        return await aiohttp_client(GuardedTestServer(app))

    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    return await make_client()


def coin_bytes(serial: int, denomination: int = 0, *, pans: bool = False) -> bytes:
    ans = tuple(os.urandom(16) for _ in range(25))
    coin = coins.Coin(denomination, serial, ans, ans if pans else None)
    return coins.build_coin_file([coin], pown="p" * 25)


def write_coins(folder: Path, serials: range | list[int], denomination: int = 0) -> list[Path]:
    """Plaintext single-coin files named as the reference client names them."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for serial in serials:
        data = coin_bytes(serial, denomination)
        info = coins.inspect_coin_file(data)
        path = folder / coins.coin_file_name(info.coins, tag="test")
        path.write_bytes(data)
        written.append(path)
    return written


def register_offline_wallet(data_dir: Path, tmp_path: Path) -> Path:
    """A registry (written before the server starts) naming Default and a wallet on an unplugged stick."""
    gone = tmp_path / "unplugged" / "Stick"
    data_dir.mkdir()
    write_registry(
        data_dir / "wallet-locations.csv",
        [RegistryEntry(str(data_dir / "Wallets" / "Default")), RegistryEntry(str(gone), "removable")],
    )
    return gone


class GuardedTestServer(TestServer):
    """aiohttp's TestServer serving the way `python -m app` does: JSON for what the parser refuses, a connection cap."""

    def __init__(self, app: web.Application, *, max_connections: int = 512, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._max_connections = max_connections

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return GuardedAppRunner(self.app, max_connections=self._max_connections, **kwargs)
