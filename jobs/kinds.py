"""The table of every job kind, and how the runner learns them."""

from __future__ import annotations

from typing import Any

from jobs import rename
from jobs.backup import backup
from jobs.context import JobContext
from jobs.models import Job, JobKind
from jobs.plans import run as plan_run
from jobs.restore import restore, verify
from jobs.runner import JobRunner
from jobs.services import Services
from jobs.shape import JobSpec

JOB_KINDS: tuple[JobSpec[Any], ...] = (
    JobSpec(JobKind.BACKUP, backup.plan_backup, backup.BackupPlan.from_job, backup.run_backup, backup.cleanup_backup),
    JobSpec(JobKind.RENAME, rename.plan_rename, rename.RenamePlan.from_job, rename.run_rename),
    JobSpec(
        JobKind.RESTORE, restore.plan_restore, restore.RestorePlan.from_job, restore.run_restore,
        restore.cleanup_restore,
    ),  # fmt: skip
    JobSpec(JobKind.VERIFY, verify.plan_verify, verify.VerifyPlan.from_job, verify.run_verify),
    JobSpec(
        JobKind.PLAN_RUN, plan_run.plan_plan_run, plan_run.PlanRunPlan.from_job, plan_run.run_plan_run,
        plan_run.cleanup_plan_run,
    ),  # fmt: skip
)
SPECS: dict[JobKind, JobSpec[Any]] = {spec.kind: spec for spec in JOB_KINDS}


def register_kinds(runner: JobRunner, services: Services) -> None:
    """Register every kind of the table: its plan loaded from the job, then run; its cleanup."""
    for spec in JOB_KINDS:
        runner.register(spec.kind, _job_function(spec), cleanup=_cleanup_function(spec, services))


def _job_function(spec: JobSpec[Any]) -> Any:
    async def run(context: JobContext) -> dict[str, Any]:
        return await spec.run(spec.load(context.job), context)

    return run


def _cleanup_function(spec: JobSpec[Any], services: Services) -> Any:
    cleanup = spec.cleanup
    if cleanup is None:
        return None

    def settle(job: Job) -> None:
        cleanup(services.config, job)

    return settle
