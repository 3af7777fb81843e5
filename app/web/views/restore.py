"""Handlers of /api/wallets/restore and /api/wallets/backup/verify: the immediate checks, then the job."""
from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from app.wallet.errors import missing_parameter
from app.web.jobhttp import answer_with_job
from app.web.params import read_params
from app.web.state import config_key, run_blocking, wallets_key
from jobs.restore import plan as restore_plan
from jobs.models import JobKind


async def restore_wallet(request: web.Request) -> web.Response:
    """POST /api/wallets/restore: zip_path (required), location, new_name, async."""
    params = await read_params(request)
    zip_raw = _required_zip_path(params)
    config, wallets = request.app[config_key], request.app[wallets_key]

    def check() -> restore_plan.RestorePlan:
        return restore_plan.plan_restore(
            config, wallets.read(), zip_raw, params.get("location", ""), params.get("new_name", "").strip()
        )

    plan = await run_blocking(request.app, check)
    # The restore is a job on the wallet it creates (jobs.md): its lane is the target folder.
    return await answer_with_job(request, JobKind.RESTORE, wallet_path=str(plan.target), params=plan.params())


async def verify_backup(request: web.Request) -> web.Response:
    """POST /api/wallets/backup/verify: zip_path (required), async."""
    params = await read_params(request)
    zip_raw = _required_zip_path(params)
    zip_path = await run_blocking(request.app, restore_plan.resolve_zip_path, zip_raw)
    return await answer_with_job(request, JobKind.VERIFY, wallet_path=str(zip_path), params={"zip_path": str(zip_path)})


def _required_zip_path(params: Mapping[str, str]) -> str:
    zip_raw = params.get("zip_path", "")
    if not zip_raw.strip():
        raise missing_parameter("zip_path")
    return zip_raw

