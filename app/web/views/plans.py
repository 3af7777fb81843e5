"""Handlers of backup plans (/api/backup-plans…), the backups the server knows, and the GUI's dropdown files."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.wallet.errors import ApiError, missing_parameter
from app.wallet.paths import Unresolvable, wallet_argument
from app.web.jobhttp import answer_submitted, find_job, runner_errors, runner_key
from app.web.params import read_json_body, read_params
from app.web.state import catalog_key, config_key, plans_key, run_blocking, wallets_key
from jobs.models import Job
from jobs.plans.catalog import read_places_file
from jobs.plans.service import PlanService

PLANS_PATH = "/api/backup-plans"


def _plans(request: web.Request) -> PlanService:
    return request.app[plans_key]


async def create_plan(request: web.Request) -> web.Response:
    plans = _plans(request)
    plan = await plans.create(await read_json_body(request))
    return web.json_response(plans.show(plan), status=201, headers={"Location": f"{PLANS_PATH}/{plan.id}"})


async def list_plans(request: web.Request) -> web.Response:
    params = await read_params(request)
    plans = _plans(request)
    raw = params.get("wallet_path") or None
    wallet_path = None
    if raw is not None:
        wallets_dir = request.app[config_key].wallets_dir
        try:
            wallet_path = str(await run_blocking(request.app, wallet_argument, raw, wallets_dir))
        except Unresolvable:
            raise ApiError(400, f"Invalid wallet_path: {raw}") from None
    shown = [plans.show(plan) for plan in plans.plans(wallet_path)]
    return web.json_response({"plans": shown, "count": len(shown)})


async def get_plan(request: web.Request) -> web.Response:
    plans = _plans(request)
    return web.json_response(plans.show(plans.get(request.match_info["plan_id"])))


async def change_plan(request: web.Request) -> web.Response:
    plans = _plans(request)
    plan = await plans.change(request.match_info["plan_id"], await read_json_body(request))
    return web.json_response(plans.show(plan))


async def delete_plan(request: web.Request) -> web.Response:
    await _plans(request).delete(request.match_info["plan_id"])
    return web.Response(status=204)


async def plan_runs(request: web.Request) -> web.Response:
    runs = _plans(request).runs(request.match_info["plan_id"])
    return web.json_response({"runs": runs, "count": len(runs)})


async def run_plan(request: web.Request) -> web.Response:
    """Run now: the jobs.md contract, answering the run record whatever the run's status."""
    plans = _plans(request)
    plan_id = request.match_info["plan_id"]
    await read_json_body(request)
    with runner_errors():
        job_id = await plans.run_now(plan_id)
    job = find_job(request.app[runner_key], job_id)

    def finished(job: Job) -> web.Response:
        run = plans.run_of_job(plan_id, job.id) or job.result
        return web.json_response(run)

    return await answer_submitted(request, job, finished)


async def list_backups(request: web.Request) -> web.Response:
    """The archives of a wallet in every place the server has written backups to."""
    params = await read_params(request)
    wallet = await request.app[wallets_key].resolve(params.get("wallet_path"))
    plans = _plans(request)
    config = request.app[config_key]
    places = await run_blocking(request.app, read_places_file, config.backup_places_path)
    places = list(dict.fromkeys([*places, *plans.destinations()]))
    known = [str(wallet.path), *plans.memory.former_paths(str(wallet.path))]
    listing = await request.app[catalog_key].find(
        places=places, wallet_paths=known, verified_at=plans.memory.verified_at
    )
    return web.json_response({"wallet_path": str(wallet.path), **listing})


#: the files the reference GUI reads its suggestions from; a name is never joined to a path unless listed here
DROPDOWN_FILES = ("BackupPlaces.txt", "wallet-locations.csv")


async def dropdown(request: web.Request) -> web.Response:
    params = await read_params(request)
    name = params.get("file")
    if not name:
        raise missing_parameter("file")
    if name not in DROPDOWN_FILES:
        raise ApiError(400, f"Unknown dropdown file: {name} (one of {', '.join(DROPDOWN_FILES)})")
    config = request.app[config_key]
    items: list[Any]
    if name == "BackupPlaces.txt":
        path = config.backup_places_path
        items = await run_blocking(request.app, read_places_file, path)
    else:
        path = config.registry_path
        registry = await run_blocking(request.app, request.app[wallets_key].read)
        items = [entry.wallet_path for entry in registry.entries]
    body = {"status": "success", "operation": "dropdown", "file": name, "path": str(path), "items": items}
    return web.json_response(body)
