"""The typed application keys (where each shared service lives on the app), and the way to its thread pool."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from app.wallet.config import Config
from app.wallet.keyring import KeyRing
from app.wallet.logins import LoginGate
from app.wallet.wallets import WalletService
from jobs.plans.catalog import BackupCatalog
from jobs.plans.service import PlanService

config_key = web.AppKey("config", Config)
#: The requests' thread pool (`run_blocking`); the jobs have their own, `job_executor_key`.
executor_key = web.AppKey("executor", ThreadPoolExecutor)
job_executor_key = web.AppKey("job_executor", ThreadPoolExecutor)
wallets_key = web.AppKey("wallets", WalletService)
started_key = web.AppKey("started", float)
keyring_key = web.AppKey("keyring", KeyRing)
login_gate_key = web.AppKey("login_gate", LoginGate)
#: Headers that every answer of a route carries, by route path (a deprecated route's Deprecation and Link).
route_headers_key = web.AppKey("route_headers", dict)
#: The OpenAPI description of the route table, built once when the routes are added.
openapi_key = web.AppKey("openapi", dict)
#: Paths of the routes whose bodies are JSON documents (objects, lists), not flat parameters.
json_body_paths_key = web.AppKey("json_body_paths", frozenset)
#: Backup plans, and the archives the server knows.
plans_key = web.AppKey("plans", PlanService)
catalog_key = web.AppKey("backup_catalog", BackupCatalog)
#: Renames a crash interrupted and the start settled as completed: (old, new), for the plans to follow.
wallet_moves_key = web.AppKey("wallet_moves", list)


T = TypeVar("T")


async def run_blocking(app: web.Application, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a request's blocking work on the app's request pool (never the default executor); the loop only awaits."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[executor_key], functools.partial(fn, *args, **kwargs))
