"""The queue's log for people: one line when a job is queued, starts, and ends (how, why, after how long)."""

from __future__ import annotations

import logging

from jobs.models import Job, JobStatus, utcnow

log = logging.getLogger("jobs")


def queued(job: Job) -> None:
    log.info("job %s %s queued on %s", job.id, job.kind, job.wallet_path)


def started(job: Job) -> None:
    waited = ((job.started_at or utcnow()) - job.created_at).total_seconds()
    log.info("job %s %s started on %s (%.1f s in the queue)", job.id, job.kind, job.wallet_path, waited)


def finished(job: Job) -> None:
    """Completed, failed with the reason the caller got, or cancelled; timed from its start (or its queueing)."""
    began = job.started_at or job.created_at
    seconds = ((job.finished_at or utcnow()) - began).total_seconds()
    if job.status is JobStatus.COMPLETED:
        log.info("job %s %s completed in %.1f s", job.id, job.kind, seconds)
    elif job.status is JobStatus.FAILED:
        http_status = job.error["http_status"] if job.error else 500
        log.warning("job %s %s failed after %.1f s: %s (HTTP %s)", job.id, job.kind, seconds, job.message, http_status)
    else:
        where = "" if job.started_at else " while queued"
        log.info("job %s %s cancelled%s after %.1f s", job.id, job.kind, where, seconds)
