"""How a job ends: from what its function returned or raised, or from its kind's cleanup after a restart.

Whatever a job function raises becomes the job's final state (errors are data); nothing escapes as an
unretrieved task exception. A job a restart interrupted is settled by its kind's cleanup: the result
of work that had finished (the job completes), or None when the work was undone (the job fails
"Interrupted by server restart").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .context import JobContext
from .errors import INTERNAL_ERROR, INTERRUPTED_ERROR
from .models import Job, JobCancelled, JobError, JobFailed, JobStatus, utcnow

log = logging.getLogger(__name__)

JobFunc = Callable[[JobContext], Awaitable[dict[str, Any]]]
#: settles a job a restart interrupted: the result of work that had finished (marked "recovered"),
#: or None when the work was undone (the job fails "Interrupted by server restart")
CleanupFunc = Callable[[Job], "dict[str, Any] | None"]
#: a job's final status, with its result (completed) or its error (failed)
Ending = tuple[JobStatus, "dict[str, Any] | None", "JobError | None"]


async def run_to_end(job: Job, func: JobFunc, context: JobContext) -> Ending:
    """Run the job function and say how the job ended. Only a cancel of the worker itself (the runner
    gave up waiting at shutdown) propagates, as ``asyncio.CancelledError``."""
    try:
        result = await func(context)
        if not isinstance(result, dict):
            raise TypeError(f"job function for {job.kind} returned {type(result).__name__}, not dict")
        return JobStatus.COMPLETED, result, None
    except JobCancelled:
        return JobStatus.CANCELLED, None, None
    except JobFailed as exc:
        return JobStatus.FAILED, None, exc.error
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.error("job %s (%s) was cancelled from inside", job.id, job.kind)
        return JobStatus.FAILED, None, copy.deepcopy(INTERNAL_ERROR)
    except Exception:
        log.exception("job %s (%s) on %s failed unexpectedly", job.id, job.kind, job.wallet_path)
        return JobStatus.FAILED, None, copy.deepcopy(INTERNAL_ERROR)


async def settle_interrupted(
    job: Job,
    cleanup: CleanupFunc | None,
    loop: asyncio.AbstractEventLoop,
    executor: concurrent.futures.ThreadPoolExecutor,
) -> Ending:
    """Run the kind's cleanup of a job a restart interrupted (in the pool) and say how the job ended."""
    log.warning("job %s (%s) on %s was interrupted by a restart", job.id, job.kind, job.wallet_path)
    recovered: dict[str, Any] | None = None
    if cleanup is not None:
        try:
            recovered = await loop.run_in_executor(executor, cleanup, job.snapshot())
        except Exception:
            log.exception("cleanup of interrupted job %s (%s) failed", job.id, job.kind)
    if recovered is not None:
        log.warning("job %s (%s) had finished its work before the restart: completed", job.id, job.kind)
        return JobStatus.COMPLETED, recovered, None
    return interrupted()


def interrupted() -> Ending:
    """A job stopped by a restart (or by a shutdown that gave up waiting) and not recovered."""
    return JobStatus.FAILED, None, copy.deepcopy(INTERRUPTED_ERROR)


def record_end(job: Job, status: JobStatus, result: dict[str, Any] | None, error: JobError | None) -> None:
    """Write the final state into the job's fields (the runner publishes it)."""
    assert status.finished and not job.status.finished
    job.status = status
    job.finished_at = utcnow()
    job.cancellable = False
    if status is JobStatus.COMPLETED:
        job.progress = job.phase_progress = 100
        job.eta_seconds = 0.0 if job.eta_seconds is not None else None
        job.result = result
        job.message = _message_of(result, "Completed")
    elif status is JobStatus.FAILED:
        job.error = error
        job.message = _message_of(error["body"] if error else None, "Failed")
    else:
        job.message = "Cancelled"


def _message_of(body: Any, default: str) -> str:
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                return body[key]
    return default
