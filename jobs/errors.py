"""How the job runner says no, and the failure bodies it records for jobs that never got to answer.

Exceptions, as the HTTP side maps them::

    QueueFull            submit refused, too many queued jobs          -> 503 + Retry-After
      RunnerClosed       submit refused, the runner is shutting down   -> 503 + Retry-After
    JobNotFound          no such job id (a LookupError)                -> 404
    JobNotCancellable    finished, or past its point of no return      -> 409
    StoreUnavailable     the job store cannot save a new job           -> 503, no job, no work
    IdempotencyMismatch  an Idempotency-Key reused for another request -> 422, no job

Job code raises ``JobFailed`` (an exact HTTP answer) or ``JobCancelled`` (see ``models``).
"""

from __future__ import annotations

from .models import Job, JobError

#: Retry-After while shutting down: a restarted server needs a few seconds
CLOSED_RETRY_AFTER_S = 10

INTERRUPTED_MESSAGE = "Interrupted by server restart"
#: the error of a job a restart (or a shutdown that gave up waiting) cut short
INTERRUPTED_ERROR = JobError(http_status=500, body={"success": False, "error": INTERRUPTED_MESSAGE, "code": 500})
#: the error of a job whose function broke its contract; the details go to the log, not the client
INTERNAL_ERROR = JobError(http_status=500, body={"success": False, "error": "Internal server error", "code": 500})


class QueueFull(Exception):
    """Too many jobs are queued; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int, message: str = "Too many jobs queued") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RunnerClosed(QueueFull):
    """The runner is shutting down and takes no new jobs."""

    def __init__(self) -> None:
        super().__init__(CLOSED_RETRY_AFTER_S, "Server is shutting down")


class JobNotFound(LookupError):
    """No job has this id (or it has left the history)."""


class JobNotCancellable(Exception):
    """The job has finished, or can no longer stop (a rename whose folder move has begun)."""

    def __init__(self, job: Job) -> None:
        state = job.status if job.status.finished else "past its point of no return"
        super().__init__(f"job {job.id} cannot be cancelled: {state}")
        self.job = job


class StoreUnavailable(Exception):
    """The job store could not commit a new job (disk full, read-only): it was not created."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdempotencyMismatch(Exception):
    """An Idempotency-Key seen before with another method, path or parameters."""
