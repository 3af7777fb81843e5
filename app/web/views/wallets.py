"""Handlers of the wallet endpoints: list, balance, show-coins, locations, create, switch."""

from __future__ import annotations

from aiohttp import web

from app.wallet.coinfolders import VALUE_FOLDERS
from app.wallet.errors import missing_parameter
from app.wallet.model import Wallet
from app.wallet.paths import trimmed
from app.web.params import choice, integer, read_params
from app.web.state import wallets_key


async def list_wallets(request: web.Request) -> web.Response:
    return web.json_response(await request.app[wallets_key].list())


async def wallet_balance(request: web.Request) -> web.Response:
    params = await read_params(request)
    service = request.app[wallets_key]
    wallet = await service.resolve(params.get("wallet_path"))
    return web.json_response(await service.balance(wallet))


async def show_coins(request: web.Request) -> web.Response:
    params = await read_params(request)
    folder = choice(params, "folder", (*VALUE_FOLDERS, "all"), default="all")
    offset = integer(params, "offset", default=0)
    limit = integer(params, "limit", default=1000, minimum=1, maximum=10000)
    service = request.app[wallets_key]
    wallet = await service.resolve(params.get("wallet_path"))
    body = await service.show_coins(wallet, folder=folder, offset=offset, limit=limit)
    return web.json_response(body)


async def wallet_locations(request: web.Request) -> web.Response:
    params = await read_params(request)
    service = request.app[wallets_key]
    path = params.get("path", "").strip()
    if not path:
        listing = await service.list()
        return web.json_response({"command": "wallet-locations", "success": True, "locations": listing["locations"]})
    added = await service.add_location(path)
    return web.json_response(
        {
            "status": "success",
            "success": True,
            "operation": "add-location",
            "location": path,
            "wallets_added": added,
            "message": f"{len(added)} wallet(s) registered" if added else "Every wallet there was already registered",
        }
    )


async def create_wallet(request: web.Request) -> web.Response:
    params = await read_params(request)
    wallet = await request.app[wallets_key].create(_wallet_path(params))
    return _wallet_answer("wallet-create", wallet, "Wallet created successfully")


async def switch_wallet(request: web.Request) -> web.Response:
    params = await read_params(request)
    wallet = await request.app[wallets_key].switch(_wallet_path(params))
    return _wallet_answer("wallet-switch", wallet, "Active wallet switched")


def _wallet_path(params: dict[str, str]) -> str:
    """The wallet_path that create and switch require, trimmed as every path parameter is."""
    raw = params.get("wallet_path", "")
    if not raw.strip():
        raise missing_parameter("wallet_path")
    return trimmed(raw)


def _wallet_answer(command: str, wallet: Wallet, message: str) -> web.Response:
    return web.json_response(
        {
            "command": command,
            "success": True,
            "wallet_name": wallet.name,
            "wallet_path": str(wallet.path),
            "message": message,
        }
    )
