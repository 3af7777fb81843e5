"""The plan service: plans and their runs in memory, saved on every change; what is due, and starting runs.

All state lives on the event loop thread; every disk touch goes through `run_blocking` (the app's
pool), serialised by one lock so the newest state of a plan file is always the one written last. A
run is started by submitting one `plan-run` job on the wallet's lane; the job itself records the
run's progress and end here (`record`), and a watcher settles the record of a job that ended
without recording (cancelled while queued, failed at its start).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from app.wallet.errors import ApiError

from .memory import ArchiveMemory
from .models import MAX_RUNS, Plan, RunStatus, Trigger, new_plan_id, new_run_id, run_record, show_time
from .retention import KeepPolicy
from .schedule import Schedule
from .store import PlanStore
from .validation import check_fields, check_not_inside_wallet

log = logging.getLogger(__name__)

#: a due time found later than this is a catch-up (the server was down or the machine asleep)
LATE_AFTER = timedelta(minutes=2)
INTERRUPTED = "Interrupted by server restart"

RunBlocking = Callable[..., Awaitable[Any]]


class PlanNotFound(ApiError):
    def __init__(self, plan_id: str) -> None:
        super().__init__(404, f"Backup plan not found: {plan_id}")


class PlanBusy(ApiError):
    def __init__(self, plan_id: str, job_id: str | None) -> None:
        super().__init__(409, f"A run of backup plan {plan_id} is already queued or running", extra={"job_id": job_id})


class Submitter(Protocol):
    """How the service queues a plan-run job; returns the job id. Raises QueueFull."""

    async def __call__(self, plan: Plan, run: dict[str, Any]) -> str: ...


class WalletResolver(Protocol):
    """The canonical path of a registered wallet; raises WalletNotFound."""

    async def __call__(self, raw: str | None) -> Path: ...


class PlanService:
    def __init__(
        self,
        store: PlanStore,
        *,
        zone: ZoneInfo,
        data_dir: Path,
        run_blocking: RunBlocking,
        resolve_wallet: WalletResolver,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.zone = zone
        self._data_dir = data_dir
        self._run_blocking = run_blocking
        self._resolve_wallet = resolve_wallet
        self.clock = clock
        self._plans: dict[str, Plan] = {}
        self._runs: dict[str, list[dict[str, Any]]] = {}
        #: each wallet's former paths, and when archives were verified
        self.memory = ArchiveMemory(store, run_blocking=run_blocking)
        self._write_lock = asyncio.Lock()
        self._submit: Submitter | None = None
        #: called when plans change, so the scheduler recomputes its sleep
        self.on_change: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return f"<PlanService plans={len(self._plans)} zone={self.zone.key}>"

    def connect(self, submit: Submitter) -> None:
        self._submit = submit

    # -- start ------------------------------------------------------------------------------

    async def load(self) -> list[str]:
        """Read the plans; settle runs a restart interrupted. Returns the ids of plans to catch up."""
        loaded = await self._run_blocking(self.store.load)
        await self.memory.load()
        now = self.clock()
        catch_up = []
        for plan, runs in loaded:
            self._plans[plan.id] = plan
            self._runs[plan.id] = runs
            cut_short = [run for run in runs if not RunStatus(run["status"]).finished]
            for run in cut_short:
                run.update(status=str(RunStatus.FAILED), error=INTERRUPTED, finished_at=self._show(now))
            if cut_short:
                await self._save(plan.id)
            # A scheduled run cut short counts as missed; a manual one does not (whoever asked can ask again).
            interrupted = any(run["trigger"] != Trigger.MANUAL for run in cut_short)
            if plan.enabled and (interrupted or (plan.next_run_at is not None and plan.next_run_at <= now)):
                catch_up.append(plan.id)
        return catch_up

    async def catch_up(self, plan_ids: list[str]) -> None:
        """Run each plan once (`catch-up`), whatever number of times it missed; next time from now."""
        now = self.clock()
        for plan_id in plan_ids:
            plan = self._plans.get(plan_id)
            if plan is None:
                continue
            scheduled_for = plan.next_run_at or now
            plan = await self._advance(plan, now)
            await self._start(plan, Trigger.CATCH_UP, min(scheduled_for, now))

    # -- reading ----------------------------------------------------------------------------

    def get(self, plan_id: str) -> Plan:
        plan = self._plans.get(plan_id)
        if plan is None:
            raise PlanNotFound(plan_id)
        return plan

    def show(self, plan: Plan) -> dict[str, Any]:
        return plan.to_json(self.zone, self.last_run(plan.id))

    def last_run(self, plan_id: str) -> dict[str, Any] | None:
        """The latest run that is not a skip (a skip is never the plan's last run)."""
        for run in self._runs.get(plan_id, []):
            if run["status"] != RunStatus.SKIPPED:
                return run
        return None

    def runs(self, plan_id: str) -> list[dict[str, Any]]:
        self.get(plan_id)
        return list(self._runs.get(plan_id, []))

    def plans(self, wallet_path: str | None = None) -> list[Plan]:
        plans = sorted(self._plans.values(), key=lambda p: (p.created_at, p.id))
        if wallet_path is not None:
            plans = [p for p in plans if p.wallet_path == wallet_path]
        return plans

    def active_run(self, plan_id: str) -> dict[str, Any] | None:
        run = self.last_run(plan_id)
        if run is not None and not RunStatus(run["status"]).finished:
            return run
        return None

    def destinations(self) -> list[str]:
        """Every destination of every plan (the places the backup list looks in)."""
        seen: dict[str, None] = {}
        for plan in self._plans.values():
            for destination in plan.destinations:
                seen.setdefault(destination, None)
        return list(seen)

    # -- changing ---------------------------------------------------------------------------

    async def create(self, body: Any) -> Plan:
        fields = await self._run_blocking(check_fields, body, creating=True, data_dir=self._data_dir)
        wallet = await self._resolve_wallet_or_400(fields.get("wallet_path"))
        check_not_inside_wallet(fields["destinations"], wallet)
        now = self.clock()
        schedule: Schedule = fields["schedule"]
        enabled = fields.get("enabled", True)
        plan = Plan(
            id=new_plan_id(),
            name=fields.get("name", ""),
            wallet_path=str(wallet),
            destinations=fields["destinations"],
            schedule=schedule.text,
            keep=fields.get("keep", KeepPolicy()),
            encrypted_only=fields.get("encrypted_only", False),
            enabled=enabled,
            created_at=now,
            next_run_at=schedule.next_after(now, self.zone) if enabled else None,
        )
        self._plans[plan.id] = plan
        self._runs[plan.id] = []
        await self._save(plan.id)
        self.on_change()
        return plan

    async def change(self, plan_id: str, body: Any) -> Plan:
        plan = self.get(plan_id)
        fields = await self._run_blocking(check_fields, body, creating=False, data_dir=self._data_dir)
        if "destinations" in fields:
            check_not_inside_wallet(fields["destinations"], Path(plan.wallet_path))
        changes: dict[str, Any] = {
            k: v for k, v in fields.items() if k in ("name", "destinations", "keep", "encrypted_only", "enabled")
        }
        schedule = fields.get("schedule")
        if schedule is not None:
            changes["schedule"] = schedule.text
        plan = self.get(plan_id).replace(**changes)  # the plan may have been retargeted meanwhile
        if schedule is not None or "enabled" in changes:
            # Enabling never catches up: it only computes the next time.
            nxt = Schedule.parse(plan.schedule).next_after(self.clock(), self.zone) if plan.enabled else None
            plan = plan.replace(next_run_at=nxt)
        self._plans[plan_id] = plan
        await self._save(plan_id)
        self.on_change()
        return plan

    async def delete(self, plan_id: str) -> None:
        """Forget the plan (a run in progress finishes; no archive is ever deleted)."""
        self.get(plan_id)
        del self._plans[plan_id]
        self._runs.pop(plan_id, None)
        async with self._write_lock:
            await self._run_blocking(self.store.delete, plan_id)
        self.on_change()

    async def retarget(self, old_path: str, new_path: str) -> None:
        """A wallet was renamed: its plans follow it, and its former path is remembered."""
        await self.memory.wallet_moved(old_path, new_path)
        for plan in list(self._plans.values()):
            if plan.wallet_path == old_path:
                self._plans[plan.id] = plan.replace(wallet_path=new_path)
                await self._save(plan.id)
                log.info("backup plan %s follows its wallet %s -> %s", plan.id, old_path, new_path)

    async def mark_verified(self, path: str, size: int, mtime_ns: int) -> None:
        await self.memory.mark_verified(path, size, mtime_ns, at=self._show(self.clock()))

    # -- runs -------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        times = [p.next_run_at for p in self._plans.values() if p.enabled and p.next_run_at is not None]
        return min(times) if times else None

    async def run_due(self, now: datetime) -> None:
        """Start every plan whose time has come: once each, however many times it was missed."""
        for plan in list(self._plans.values()):
            if not plan.enabled or plan.next_run_at is None or plan.next_run_at > now:
                continue
            scheduled_for = plan.next_run_at
            trigger = Trigger.CATCH_UP if now - scheduled_for > LATE_AFTER else Trigger.SCHEDULE
            plan = await self._advance(plan, now)
            await self._start(plan, trigger, scheduled_for)

    async def run_now(self, plan_id: str) -> str:
        """Start a manual run; its job id. PlanBusy (409) while a run is queued or running."""
        plan = self.get(plan_id)
        active = self.active_run(plan_id)
        if active is not None:
            raise PlanBusy(plan_id, active.get("job_id"))
        job_id = await self._start(plan, Trigger.MANUAL, self.clock(), raise_queue_full=True)
        assert job_id is not None
        return job_id

    async def record(self, plan_id: str, run: dict[str, Any]) -> None:
        """The job reports its run (progress or end); a deleted plan's run is dropped.

        A copy is kept: the job goes on changing its own record (also on pool threads), while the
        stored one is only ever replaced, so a save on the pool never sees it change mid-write."""
        runs = self._runs.get(plan_id)
        if runs is None:
            return
        run = copy.deepcopy(run)
        for index, known in enumerate(runs):
            if known["run_id"] == run["run_id"]:
                if run["status"] == RunStatus.QUEUED and known["status"] != RunStatus.QUEUED:
                    return  # the job started (or ended) before its queued record arrived: never go back
                runs[index] = run
                break
        else:
            runs.insert(0, run)
        del runs[MAX_RUNS:]
        await self._save(plan_id)

    def run_of_job(self, plan_id: str, job_id: str) -> dict[str, Any] | None:
        for run in self._runs.get(plan_id, []):
            if run.get("job_id") == job_id:
                return run
        return None

    def find_run(self, plan_id: str, run_id: str) -> dict[str, Any] | None:
        for run in self._runs.get(plan_id, []):
            if run["run_id"] == run_id:
                return run
        return None

    async def settle(self, plan_id: str, run_id: str, status: RunStatus, error: str | None) -> dict[str, Any] | None:
        """End a run whose job ended without recording it (cancelled while queued, failed at start)."""
        run = self.find_run(plan_id, run_id)
        if run is None or RunStatus(run["status"]).finished:
            return run
        now = self._show(self.clock())
        settled = {**run, "status": str(status), "finished_at": now, "started_at": run.get("started_at") or now}
        if error:
            settled["error"] = error
        await self.record(plan_id, settled)
        return settled

    async def _advance(self, plan: Plan, now: datetime) -> Plan:
        """Persist the plan's next time, computed from now (never once per missed time)."""
        nxt = Schedule.parse(plan.schedule).next_after(now, self.zone)
        plan = plan.replace(next_run_at=nxt)
        self._plans[plan.id] = plan
        await self._save(plan.id)
        return plan

    async def _start(
        self, plan: Plan, trigger: Trigger, scheduled_for: datetime, *, raise_queue_full: bool = False
    ) -> str | None:
        shown = self._show(scheduled_for)
        if self.active_run(plan.id) is not None:
            reason = "The previous run of this plan was still queued or running"
            skipped = run_record(
                run_id=new_run_id(), job_id=None, trigger=trigger, scheduled_for=shown, status=RunStatus.SKIPPED,
                started_at=shown, finished_at=shown, reason=reason,
            )  # fmt: skip
            await self.record(plan.id, skipped)
            return None
        run = run_record(
            run_id=new_run_id(), job_id=None, trigger=trigger, scheduled_for=shown, status=RunStatus.QUEUED, destinations=[],
        )  # fmt: skip
        if self._submit is None:
            raise RuntimeError("plan service not connected to the job runner")
        try:
            job_id = await self._submit(plan, run)
        except Exception as exc:
            if raise_queue_full:
                raise
            # A queue full at the scheduled time (503) is recorded, not lost.
            now = self._show(self.clock())
            failed = {
                **run,
                "status": str(RunStatus.FAILED),
                "started_at": now,
                "finished_at": now,
                "error": str(exc) or type(exc).__name__,
            }
            await self.record(plan.id, failed)
            return None
        run["job_id"] = job_id
        await self.record(plan.id, run)
        return job_id

    async def _resolve_wallet_or_400(self, raw: str | None) -> Path:
        try:
            return await self._resolve_wallet(raw)
        except ApiError as error:
            if error.status == 404:
                raise ApiError(400, error.message, extra={"field": "wallet_path"}) from None
            raise

    async def _save(self, plan_id: str) -> None:
        async with self._write_lock:
            plan = self._plans.get(plan_id)
            if plan is None:
                return
            await self._run_blocking(self.store.save, plan, list(self._runs.get(plan_id, [])))

    def _show(self, moment: datetime) -> str:
        shown = show_time(moment, self.zone)
        assert shown is not None
        return shown
