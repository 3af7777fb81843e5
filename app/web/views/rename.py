"""Handlers of the rename endpoints: /api/wallets/rename and the legacy index form /api/wallets/active/rename."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from aiohttp import web

from app.wallet.errors import ApiError, missing_parameter
from app.web.jobhttp import answer_with_job
from app.web.params import read_params
from app.web.state import config_key, run_blocking, wallets_key
from jobs import rename
from jobs.models import JobKind

T = TypeVar("T")

async def rename_wallet(request: web.Request) -> web.Response:
    params = await read_params(request)
    raw = params.get("wallet_path", "").strip()
    if not raw:
        raise missing_parameter("wallet_path")
    if "new_name" not in params:
        raise missing_parameter("new_name")
    plan = await _plan(request, rename.plan_rename, raw, params["new_name"])
    return await answer_with_job(request, JobKind.RENAME, wallet_path=str(plan.old_path), params=plan.params())


async def rename_wallet_legacy(request: web.Request) -> web.Response:
    """The deprecated index form; its Deprecation and Link headers come from the route table."""
    params = await read_params(request)
    raw_index = params.get("index", "").strip()
    if not raw_index:
        raise missing_parameter("index")
    if "to" not in params:
        raise missing_parameter("to")
    try:
        index = int(raw_index)
    except ValueError:
        raise ApiError(400, "Parameter index must be an integer") from None
    plan = await _plan(request, rename.plan_rename_at_index, index, params["to"])
    return await answer_with_job(request, JobKind.RENAME, wallet_path=str(plan.old_path), params=plan.params())


async def _plan(request: web.Request, planner: Callable[..., T], *args: Any) -> T:
    """Run the checks that need no folder move on the app's thread pool (they read the registry and stat)."""
    app = request.app
    config, wallets = app[config_key], app[wallets_key]

    def check() -> T:
        return planner(config, wallets.read(), *args)

    return await run_blocking(app, check)
