"""The table of every job kind, and how the runner learns them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.wallet.config import Config
from jobs import rename
from jobs.backup import backup, recovery
from jobs.context import JobContext
from jobs.endings import CleanupFunc, JobFunc
from jobs.models import Job, JobKind
from jobs.plans import run as plan_run
from jobs.restore import restore, verify
from jobs.runner import JobRunner
from jobs.services import Services
from jobs.shape import JobSpec

#: Every kind: its plan (the request's checks), how the plan comes back from a stored job, the run,
#: the cleanup that settles a run a crash cut short, where its temporary names may lie, and whether
#: its queued jobs follow a renamed wallet.
JOB_KINDS: tuple[JobSpec[Any], ...] = (
    JobSpec(
        JobKind.BACKUP,
        plan=backup.plan_backup,
        load=backup.BackupPlan.from_job,
        run=backup.run_backup,
        cleanup=recovery.cleanup_backup,
        places=recovery.backup_places,
    ),
    JobSpec(
        JobKind.RENAME,
        plan=rename.plan_rename,
        load=rename.RenamePlan.from_job,
        run=rename.run_rename,
        cleanup=rename.cleanup_rename,
        follows_wallet=False,
    ),
    JobSpec(
        JobKind.RESTORE,
        plan=restore.plan_restore,
        load=restore.RestorePlan.from_job,
        run=restore.run_restore,
        cleanup=restore.cleanup_restore,
        places=restore.restore_places,
    ),
    JobSpec(
        JobKind.VERIFY,
        plan=verify.plan_verify,
        load=verify.VerifyPlan.from_job,
        run=verify.run_verify,
    ),
    JobSpec(
        JobKind.PLAN_RUN,
        plan=plan_run.plan_plan_run,
        load=plan_run.PlanRunPlan.from_job,
        run=plan_run.run_plan_run,
        cleanup=plan_run.cleanup_plan_run,
        places=plan_run.plan_places,
    ),
)
SPECS: dict[JobKind, JobSpec[Any]] = {spec.kind: spec for spec in JOB_KINDS}


def register_kinds(runner: JobRunner, services: Services) -> None:
    """Register every kind of the table: its plan loaded from the job, then run; its cleanup."""
    for spec in JOB_KINDS:
        runner.register(
            spec.kind,
            _job_function(spec),
            cleanup=_cleanup_function(spec, services),
            follows_wallet=spec.follows_wallet,
        )


def _job_function(spec: JobSpec[Any]) -> JobFunc:
    async def run(context: JobContext) -> dict[str, Any]:
        return await spec.run(spec.load(context.job), context)

    return run


def _cleanup_function(spec: JobSpec[Any], services: Services) -> CleanupFunc | None:
    cleanup = spec.cleanup
    if cleanup is None:
        return None

    def settle(job: Job) -> dict[str, Any] | None:
        return cleanup(services.config, job)

    return settle


def temporary_places(config: Config) -> list[Path]:
    """Every folder where a kind may leave a `.cloudcoin-*.tmp` name (each kind's `places`), once each."""
    found: dict[Path, None] = {}
    for spec in JOB_KINDS:
        if spec.places is not None:
            for place in spec.places(config):
                found.setdefault(Path(place), None)
    return list(found)
