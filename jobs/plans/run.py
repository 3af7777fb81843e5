"""The plan-run job: one archive written once, verified copies in every reachable destination, retention.

1. The wallet (the lane's path: a rename queued before this run moved it) and, for an
   `encrypted_only` plan, the login key are read when the run starts.
2. Each destination is checked as the backup seed checks one, and must exist: a plan run never
   creates a destination folder (a missing one is that destination's `failed`).
3. The archive is written once, exactly as the backup endpoint writes it (its manifest and summary
   also carry the plan id), into the first reachable destination where that works; every other
   reachable destination gets a copy verified by its SHA-256 (jobs/plans/placing.py).
4. From here on the run cannot be cancelled: retention runs in each destination where this run's
   archive was made, over this plan's own archives only, never the one just made.
5. The run is recorded with the plan service after every destination, so a restart finds the
   archives already finished; the job's result is the run record, whatever the run's status.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.wallet.config import Config
from app.wallet.errors import ApiError, WalletNotFound
from app.wallet.paths import canonical
from app.wallet.storage import fsync_dir
from jobs.backup.backup import BackupRun, write_backup
from jobs.backup.checks import resolve_destination, temp_name
from jobs.context import JobContext, JobView
from jobs.models import Job, JobCancelled, JobFailed
from jobs.services import Services
from jobs.shape import Params

from .models import RunStatus
from .placing import CopyFailed, copy_name, place_copy, prune
from .retention import KeepPolicy
from .service import PlanService
from .store import FOLDER as PLANS_FOLDER
from .store import PlanStore

log = logging.getLogger(__name__)

NOT_LOGGED_IN = "Not logged in: this plan writes only encrypted backups"
NO_DESTINATION = "Destination directory does not exist"


@dataclass(frozen=True, slots=True)
class PlanRunPlan:
    """One run of a plan, fixed when it is queued: the plan's settings at that moment."""

    wallet_path: str
    plan_id: str
    run_id: str
    trigger: str
    scheduled_for: str | None
    destinations: tuple[str, ...]
    keep: dict[str, int]
    encrypted_only: bool

    @property
    def lane(self) -> str:
        return self.wallet_path

    def params(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id, "run_id": self.run_id, "trigger": self.trigger,
            "scheduled_for": self.scheduled_for, "destinations": list(self.destinations),
            "keep": dict(self.keep), "encrypted_only": self.encrypted_only,
        }  # fmt: skip

    @classmethod
    def from_job(cls, job: JobView) -> PlanRunPlan:
        # The job's wallet path: a rename queued before this run moved the lane and the wallet.
        p = job.params
        return cls(
            wallet_path=job.wallet_path, plan_id=str(p["plan_id"]), run_id=str(p["run_id"]),
            trigger=str(p.get("trigger", "manual")), scheduled_for=p.get("scheduled_for"),
            destinations=tuple(str(d) for d in p.get("destinations") or ()), keep=dict(p.get("keep") or {}),
            encrypted_only=bool(p.get("encrypted_only", False)),
        )  # fmt: skip


def plan_plan_run(params: Params, services: Services) -> PlanRunPlan:
    """A run of the plan `plan_id`, as the plan service queues it (run_id, trigger, scheduled_for given)."""
    plans = _plans(services)
    plan = plans.get(str(params.get("plan_id", "")))
    return PlanRunPlan(
        wallet_path=plan.wallet_path, plan_id=plan.id, run_id=str(params["run_id"]),
        trigger=str(params.get("trigger", "manual")), scheduled_for=params.get("scheduled_for"),
        destinations=plan.destinations, keep=plan.keep.to_json(), encrypted_only=plan.encrypted_only,
    )  # fmt: skip


async def run_plan_run(plan: PlanRunPlan, ctx: JobContext) -> dict[str, Any]:
    """The job: record the run as running, do it, record how it ended; the result is the run record."""
    return await PlanRunJob(ctx.services).run(plan, ctx)


def cleanup_plan_run(config: Config, job: Job) -> None:
    remove_temporary_files(job)


def plan_places(config: Config) -> list[Path]:
    """Every plan's destinations: where a run's temporary archive or copy may lie (the start sweep)."""
    return [Path(d) for plan, _ in PlanStore(config.data_dir / PLANS_FOLDER).load() for d in plan.destinations]


def _plans(services: Services) -> PlanService:
    if not isinstance(services.plans, PlanService):
        raise RuntimeError("the job runner was made without the plan service")
    return services.plans


class PlanRunJob:
    """One plan run's work, with the services it reads."""

    def __init__(self, services: Services) -> None:
        self._plans = _plans(services)
        self._wallets = services.wallets
        self._keyring = services.keyring
        self._data_dir = services.config.data_dir

    def __repr__(self) -> str:
        return f"<PlanRunJob {self._plans!r}>"

    async def run(self, plan: PlanRunPlan, ctx: JobContext) -> dict[str, Any]:
        run = dict(self._plans.find_run(plan.plan_id, plan.run_id) or _fresh_run(plan))
        run.update(job_id=ctx.job.id, status=str(RunStatus.RUNNING), started_at=self._now(), destinations=[])
        await self._plans.record(plan.plan_id, run)
        try:
            await self._work(ctx, plan, run)
        except JobCancelled:
            run.update(status=str(RunStatus.CANCELLED), finished_at=self._now())
            await self._plans.record(plan.plan_id, run)
            raise
        except Exception:  # the job completes with a recorded run, whatever went wrong
            log.exception("plan %s run %s failed", plan.plan_id, plan.run_id)
            run.update(status=str(RunStatus.FAILED), error="Internal server error")
        run["finished_at"] = self._now()
        await self._plans.record(plan.plan_id, run)
        return run

    async def _work(self, ctx: JobContext, plan: PlanRunPlan, run: dict[str, Any]) -> None:
        plan_id = plan.plan_id
        try:
            wallet = await self._wallets.resolve(plan.wallet_path)
        except WalletNotFound:
            wallet = None
        if wallet is None or not wallet.online:
            # Gone or offline: a failed run with the reason; the plan keeps its schedule.
            run.update(status=str(RunStatus.FAILED), error=f"Wallet not found: {plan.wallet_path}")
            return
        run.update(wallet_path=str(wallet.path), wallet_name=wallet.name)
        key = self._keyring.key  # read once, at the start: a logout mid-run does not change this run
        if plan.encrypted_only and key is None:
            run.update(status=str(RunStatus.FAILED), error=NOT_LOGGED_IN)
            return
        zone = self._plans.zone
        date = datetime.now(zone).strftime("%Y-%m-%d")
        results: list[dict[str, Any]] = [{"destination": d} for d in plan.destinations]
        run["destinations"] = results
        reachable = await ctx.run_blocking(self._reachable, results)
        await self._plans.record(plan_id, run)

        original: dict[str, Any] | None = None
        for entry in reachable:
            ctx.report(message=f"Archiving {wallet.name} into {entry['destination']}", phase="archiving")
            backup = BackupRun(
                job_id=ctx.job.id, wallet_path=wallet.path, destination=Path(entry["destination"]),
                data_dir=canonical(self._data_dir), key=key, date=date, plan_id=plan_id, create_destination=False,
            )  # fmt: skip
            try:
                original = await ctx.run_blocking(write_backup, backup, cancel=ctx.cancel_event, report=ctx.report)
            except JobFailed as failure:
                entry.update(status=str(RunStatus.FAILED), error=failure_message(failure.body))
                await self._plans.record(plan_id, run)
                continue
            entry.update(
                status=str(RunStatus.COMPLETED),
                zip_path=original["zip_path"],
                bytes=original["zip_size"],
                verified=True,
            )
            run.update(
                {
                    name: original[name]
                    for name in ("files_added", "files_reencrypted_for_backup", "files_added_plaintext")
                }
            )
            await self._mark_verified(ctx, original["zip_path"])
            await self._plans.record(plan_id, run)
            break

        if original is not None:
            await self._place_copies(ctx, run, reachable, original, wallet.name, date)

        made = [entry for entry in results if entry.get("status") == RunStatus.COMPLETED]
        ctx.check_cancelled()
        ctx.forbid_cancel()  # retention is never interrupted half-way, and never runs after a cancel
        keep = KeepPolicy.from_json(plan.keep)
        for n, entry in enumerate(made, 1):
            ctx.report(message=f"Pruning ({n} of {len(made)} destinations)", phase="pruning")
            pruned, failed = await ctx.run_blocking(
                prune, Path(entry["destination"]), plan_id=plan_id, keep=keep, zone=zone,
                protect=os.path.basename(entry["zip_path"]),
            )  # fmt: skip
            entry["pruned"] = pruned
            if failed:
                entry["prune_failed"] = failed
        if len(made) == len(results):
            run["status"] = str(RunStatus.COMPLETED)
        elif made:
            run["status"] = str(RunStatus.PARTIAL)
        else:
            run.update(status=str(RunStatus.FAILED), error="No destination has a verified archive")

    async def _place_copies(
        self, ctx: JobContext, run: dict[str, Any], reachable: list[dict[str, Any]], original: dict[str, Any],
        wallet_name: str, date: str,
    ) -> None:  # fmt: skip
        source = Path(original["zip_path"])
        size = int(original["zip_size"])
        others = [entry for entry in reachable if "status" not in entry]
        for n, entry in enumerate(others, 1):
            ctx.check_cancelled()
            label = f"Placing copy {n} of {len(others)} in {entry['destination']}"
            ctx.report(message=label, bytes_done=0, bytes_total=size, phase="placing")
            try:
                final = await ctx.run_blocking(
                    place_copy, source, original["zip_sha256"], Path(entry["destination"]), job_id=ctx.job.id,
                    wallet_name=wallet_name, date=date, cancel=ctx.cancel_event,
                    progress=lambda done: ctx.report(bytes_done=done),
                    on_verify=functools.partial(
                        ctx.report, message=f"Verifying the copy in {entry['destination']}", phase="verifying"
                    ),
                )  # fmt: skip
            except CopyFailed as exc:
                entry.update(status=str(RunStatus.FAILED), error=str(exc))
            else:
                entry.update(status=str(RunStatus.COMPLETED), zip_path=str(final), bytes=size, verified=True)
                await self._mark_verified(ctx, str(final))
            await self._plans.record(ctx.job.params["plan_id"], run)

    def _reachable(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Check every destination again (a link may have changed); the ones that exist, in plan order."""
        root = canonical(self._data_dir)
        reachable = []
        for entry in results:
            try:
                resolve_destination(entry["destination"], data_dir=root)
            except ApiError as error:
                entry.update(status=str(RunStatus.FAILED), error=error.message)
                continue
            if not os.path.isdir(entry["destination"]):
                entry.update(status=str(RunStatus.FAILED), error=NO_DESTINATION)
                continue
            reachable.append(entry)
        return reachable

    async def _mark_verified(self, ctx: JobContext, path: str) -> None:
        try:
            st = await ctx.run_blocking(os.stat, path)
        except OSError:
            return
        await self._plans.mark_verified(path, st.st_size, st.st_mtime_ns)

    def _now(self) -> str:
        return datetime.now(self._plans.zone).isoformat(timespec="seconds")


def _fresh_run(plan: PlanRunPlan) -> dict[str, Any]:
    return {
        "run_id": plan.run_id, "job_id": None, "trigger": plan.trigger, "scheduled_for": plan.scheduled_for,
        "started_at": None, "finished_at": None, "status": str(RunStatus.QUEUED), "destinations": [],
    }  # fmt: skip


def failure_message(body: dict[str, Any]) -> str:
    """The words of a failed job's body (the backup page's `message`, or api.md's `error`)."""
    return str(body.get("message") or body.get("error") or "Backup failed")


def remove_temporary_files(job: Job) -> None:
    """The restart cleanup: the half-written archive and any half-placed copy, in every destination."""
    for destination in job.params.get("destinations") or []:
        if not isinstance(destination, str) or not os.path.isabs(destination):
            continue
        removed = False
        for name in (temp_name(job.id), copy_name(job.id)):
            try:
                os.unlink(os.path.join(destination, name))
                removed = True
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("plan run %s: cannot remove %s in %s: %s", job.id, name, destination, exc)
        if removed:
            log.info("plan run %s: removed unfinished files in %s", job.id, destination)
            try:
                fsync_dir(Path(destination))
            except OSError:
                pass
