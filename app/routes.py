"""One flat table of every route: method, path, handler, and what /api/openapi.json says of it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from app.views import system, wallets

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    required: bool = False
    type: str = "string"
    secret: bool = False  # taken from the body only, never from the query string


@dataclass(frozen=True, slots=True)
class Route:
    methods: tuple[str, ...]
    path: str
    handler: Handler
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    job: bool = False  # answers 202 on request (Prefer: respond-async or async=true)


WALLET_PATH = Param("wallet_path", "Wallet folder: absolute, or relative to Client_Data/Wallets; default the active wallet")
ASYNC = Param("async", "true: answer 202 with the job instead of waiting", type="boolean")

ROUTES: tuple[Route, ...] = (
    Route(("GET",), "/api/health", system.health, "Liveness, version, uptime and job counts", "system"),
    Route(("GET",), "/api/openapi.json", system.openapi, "This description", "system"),
    Route(("GET",), "/api/wallets/list", wallets.list_wallets, "Registered wallets", "wallets"),
    Route(("GET",), "/api/wallet/list", wallets.list_wallets, "Registered wallets (alias)", "wallets"),
    Route(("GET",), "/api/wallets", wallets.list_wallets, "Registered wallets (alias)", "wallets"),
    Route(("GET",), "/api/wallets/balance", wallets.wallet_balance, "Balance of a wallet", "wallets", (WALLET_PATH,)),
    Route(
        ("GET",), "/api/wallets/show-coins", wallets.show_coins, "Coins of a wallet, paginated", "wallets",
        (
            WALLET_PATH,
            Param("folder", "Bank, Fracked, Limbo or all (default)"),
            Param("offset", "First coin to list (default 0)", type="integer"),
            Param("limit", "Coins per page (default 1000, at most 10000)", type="integer"),
        ),
    ),
    Route(
        ("GET", "POST"), "/api/wallets/locations", wallets.wallet_locations,
        "Register a wallet folder, or every wallet folder inside a folder; without path, list locations",
        "wallets", (Param("path", "Absolute path of a wallet folder or of a folder of wallets"),),
    ),
    Route(
        ("GET", "POST"), "/api/wallets/create", wallets.create_wallet, "Create and register a new wallet",
        "wallets", (Param("wallet_path", "New wallet folder: absolute, or a name inside Client_Data/Wallets", True),),
    ),
    Route(
        ("GET", "POST"), "/api/wallets/switch", wallets.switch_wallet, "Make a wallet the active one",
        "wallets", (Param("wallet_path", "Wallet folder to make active", True),),
    ),
)


def add_routes(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    for route in routes:
        for method in route.methods:
            app.router.add_route(method, route.path, route.handler)
