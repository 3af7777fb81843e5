"""The plan service's timing with an injected clock: due runs, catch-up once after downtime, skips, the scheduler task."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.wallet.errors import WalletNotFound
from jobs.plans.models import RunStatus
from jobs.plans.scheduler import PlanScheduler
from jobs.plans.service import PlanBusy, PlanService
from jobs.plans.store import PlanStore

BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def inline(fn, *args, **kwargs):
    return fn(*args, **kwargs)


class Jobs:
    """Stands in for the runner: remembers what was submitted."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, dict]] = []

    async def __call__(self, plan, run) -> str:
        job_id = f"job{len(self.submitted)}"
        self.submitted.append((plan.id, dict(run)))
        return job_id


def make_service(tmp_path: Path, clock: Clock, jobs: Jobs | None = None) -> PlanService:
    wallet = tmp_path / "Wallets" / "Default"
    wallet.mkdir(parents=True, exist_ok=True)

    async def resolve(raw):
        if raw in (None, "Default", str(wallet)):
            return wallet
        raise WalletNotFound(raw)

    service = PlanService(
        PlanStore(tmp_path / "Client_Data" / "backup-plans"), zone=BERLIN, data_dir=tmp_path / "Client_Data",
        run_blocking=inline, resolve_wallet=resolve, clock=clock,
    )  # fmt: skip
    service.connect(jobs or Jobs())
    return service


def new_plan(tmp_path: Path, **changes) -> dict:
    (tmp_path / "usb").mkdir(exist_ok=True)
    return {"wallet_path": "Default", "destinations": [str(tmp_path / "usb")], "schedule": "30 2 * * *", **changes}


async def test_next_run_is_computed_at_creation_in_the_zone(tmp_path):
    clock = Clock(datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN))
    service = make_service(tmp_path, clock)
    plan = await service.create(new_plan(tmp_path))
    assert service.show(plan)["next_run_at"] == "2026-06-11T02:30:00+02:00"
    disabled = await service.create(new_plan(tmp_path, enabled=False))
    assert disabled.next_run_at is None and service.next_due() == plan.next_run_at


async def test_a_due_plan_runs_once_and_its_next_time_moves_on(tmp_path):
    clock = Clock(datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN))
    jobs = Jobs()
    service = make_service(tmp_path, clock, jobs)
    plan = await service.create(new_plan(tmp_path))
    clock.now = plan.next_run_at + timedelta(seconds=1)
    await service.run_due(clock.now)
    await service.run_due(clock.now)  # a second wake at the same moment starts nothing more
    assert len(jobs.submitted) == 1
    [run] = service.runs(plan.id)
    assert run["trigger"] == "schedule" and run["status"] == "queued" and run["job_id"] == "job0"
    assert run["scheduled_for"] == "2026-06-11T02:30:00+02:00"
    assert service.get(plan.id).next_run_at == datetime(2026, 6, 12, 0, 30, tzinfo=UTC)


async def test_catch_up_after_downtime_runs_once_not_once_per_missed_time(tmp_path):
    clock = Clock(datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN))
    service = make_service(tmp_path, clock)
    plan = await service.create(new_plan(tmp_path, schedule="@hourly"))
    # The server is down for three days: 72 scheduled times pass.
    clock.now = clock.now + timedelta(days=3, minutes=10)
    jobs = Jobs()
    restarted = make_service(tmp_path, clock, jobs)
    due = await restarted.load()
    assert due == [plan.id]
    await restarted.catch_up(due)
    await restarted.run_due(clock.now)
    assert len(jobs.submitted) == 1
    [run] = restarted.runs(plan.id)
    assert run["trigger"] == "catch-up"
    # the next time is computed from now
    assert restarted.get(plan.id).next_run_at == datetime(2026, 6, 13, 11, 0, tzinfo=UTC)


async def test_a_late_wake_after_sleep_is_a_catch_up(tmp_path):
    clock = Clock(datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN))
    jobs = Jobs()
    service = make_service(tmp_path, clock, jobs)
    plan = await service.create(new_plan(tmp_path))
    clock.now = plan.next_run_at + timedelta(hours=5)  # the laptop slept through 02:30
    await service.run_due(clock.now)
    assert [run["trigger"] for run in service.runs(plan.id)] == ["catch-up"]


async def test_a_run_still_active_at_the_next_time_is_skipped(tmp_path):
    clock = Clock(datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN))
    jobs = Jobs()
    service = make_service(tmp_path, clock, jobs)
    plan = await service.create(new_plan(tmp_path, schedule="*/5 * * * *"))
    clock.now = service.get(plan.id).next_run_at
    await service.run_due(clock.now)
    clock.now = service.get(plan.id).next_run_at
    await service.run_due(clock.now)
    skipped, first = service.runs(plan.id)
    assert len(jobs.submitted) == 1
    assert skipped["status"] == "skipped" and skipped["job_id"] is None and skipped["reason"]
    assert skipped["started_at"] == skipped["finished_at"] == skipped["scheduled_for"]
    assert service.last_run(plan.id)["run_id"] == first["run_id"]  # a skip is never the last run
    with pytest.raises(PlanBusy):
        await service.run_now(plan.id)


async def test_a_run_interrupted_by_a_restart_fails_and_counts_as_missed(tmp_path):
    clock = Clock(datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN))
    service = make_service(tmp_path, clock)
    plan = await service.create(new_plan(tmp_path))
    clock.now = service.get(plan.id).next_run_at
    await service.run_due(clock.now)
    next_time = service.get(plan.id).next_run_at
    jobs = Jobs()
    restarted = make_service(tmp_path, clock, jobs)
    due = await restarted.load()
    [run] = restarted.runs(plan.id)
    assert run["status"] == RunStatus.FAILED and run["error"] == "Interrupted by server restart"
    assert restarted.get(plan.id).next_run_at == next_time
    assert due == [plan.id]


async def test_enabling_never_catches_up(tmp_path):
    clock = Clock(datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN))
    jobs = Jobs()
    service = make_service(tmp_path, clock, jobs)
    plan = await service.create(new_plan(tmp_path, enabled=False))
    clock.now += timedelta(days=2)
    plan = await service.change(plan.id, {"enabled": True})
    await service.run_due(clock.now)
    assert jobs.submitted == [] and plan.next_run_at > clock.now


async def test_the_scheduler_sleeps_until_due_and_wakes_on_change(tmp_path):
    start = datetime.now(UTC)
    fired: list[datetime] = []
    due: list[datetime] = []

    async def run_due(now):
        while due and due[0] <= now:
            fired.append(due.pop(0))

    scheduler = PlanScheduler(
        next_due=lambda: due[0] if due else None, run_due=run_due, clock=lambda: datetime.now(UTC)
    )
    scheduler.start()
    try:
        await asyncio.sleep(0.05)
        assert fired == [] and scheduler.seconds_until_due() is None
        due.append(start + timedelta(seconds=0.2))
        scheduler.wake()
        await asyncio.sleep(0.1)
        assert fired == []  # not yet due
        await asyncio.sleep(0.3)
        assert len(fired) == 1
    finally:
        await scheduler.stop()


async def test_a_manual_run_cut_short_is_failed_on_disk_and_not_caught_up(tmp_path):
    clock = Clock(datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN))
    service = make_service(tmp_path, clock)
    plan = await service.create(new_plan(tmp_path))
    await service.run_now(plan.id)
    restarted = make_service(tmp_path, clock)
    assert await restarted.load() == []
    again = make_service(tmp_path, clock)
    await again.load()
    [run] = again.runs(plan.id)
    assert run["trigger"] == "manual" and run["status"] == "failed" and run["error"] == "Interrupted by server restart"
