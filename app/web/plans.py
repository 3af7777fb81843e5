"""Backup plans' aiohttp boundary: the plan service before the job runner, the scheduler task after it."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from app.web.jobhttp import runner_key
from app.web.state import catalog_key, config_key, plans_key, run_blocking, wallet_moves_key, wallets_key
from jobs.plans.catalog import BackupCatalog
from jobs.plans.schedule import system_zone, zone_named
from jobs.plans.scheduler import PlanScheduler
from jobs.plans.service import PlanService
from jobs.plans.store import FOLDER, PlanStore
from jobs.plans.submitter import PlanSubmitter


def setup_service(app: web.Application) -> None:
    """The plan service, made before the job runner (whose jobs record runs in it)."""
    app.cleanup_ctx.append(_service)


def setup_scheduler(app: web.Application) -> None:
    """Plans loaded, runs a restart interrupted settled, catch-up, then the one scheduler task."""
    app.cleanup_ctx.append(_scheduler)


async def _service(app: web.Application) -> AsyncIterator[None]:
    config = app[config_key]
    wallets = app[wallets_key]

    async def resolve_wallet(raw: str | None) -> Path:
        return (await wallets.resolve(raw)).path

    blocking = functools.partial(run_blocking, app)
    app[plans_key] = PlanService(
        PlanStore(config.data_dir / FOLDER),
        zone=zone_named(config.timezone) if config.timezone else system_zone(),
        data_dir=config.data_dir,
        run_blocking=blocking,
        resolve_wallet=resolve_wallet,
    )
    app[catalog_key] = BackupCatalog(run_blocking=blocking)
    yield


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    plans = app[plans_key]
    submitter = PlanSubmitter(app[runner_key], plans)
    plans.connect(submitter)
    due = await plans.load()
    for old, new in app.get(wallet_moves_key, []):
        await plans.retarget(old, new)  # a rename the start settled: plans follow as after a finished one
    scheduler = PlanScheduler(next_due=plans.next_due, run_due=plans.run_due, clock=plans.clock)
    plans.on_change = scheduler.wake
    await plans.catch_up(due)
    scheduler.start()
    yield
    await scheduler.stop()
    await submitter.close()
