"""How the plan service queues its runs: one plan-run job each, and a watcher for jobs that end unrecorded."""

from __future__ import annotations

import asyncio
from typing import Any

from jobs.models import JobKind, JobStatus
from jobs.runner import JobRunner

from .models import Plan, RunStatus
from .run import PlanRunPlan, failure_message
from .service import PlanService


class PlanSubmitter:
    """Queues plan-run jobs for the plan service, and settles a run whose job ended without recording it
    (cancelled while still queued, or failed before its function ran)."""

    def __init__(self, runner: JobRunner, plans: PlanService) -> None:
        self._runner = runner
        self._plans = plans
        self._watchers: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<PlanSubmitter watching={len(self._watchers)}>"

    async def __call__(self, plan: Plan, run: dict[str, Any]) -> str:
        planned = PlanRunPlan(
            wallet_path=plan.wallet_path, plan_id=plan.id, run_id=run["run_id"], trigger=run["trigger"],
            scheduled_for=run["scheduled_for"], destinations=plan.destinations, keep=plan.keep.to_json(),
            encrypted_only=plan.encrypted_only,
        )  # fmt: skip
        job = await self._runner.submit(JobKind.PLAN_RUN, wallet_path=planned.lane, params=planned.params())
        task = asyncio.get_running_loop().create_task(self._watch(plan.id, run["run_id"], job.id))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return job.id

    async def _watch(self, plan_id: str, run_id: str, job_id: str) -> None:
        job = await self._runner.wait(job_id, None)
        if job.status is JobStatus.CANCELLED:
            await self._plans.settle(plan_id, run_id, RunStatus.CANCELLED, None)
        elif job.status is JobStatus.FAILED:
            body: dict[str, Any] = job.error["body"] if job.error else {}
            await self._plans.settle(plan_id, run_id, RunStatus.FAILED, failure_message(body))
        self._plans.on_change()

    async def close(self) -> None:
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
