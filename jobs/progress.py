"""A running job's progress: its phases, percentages, byte rate and time left, from the values it reports.

A job reports plain values (``done``, ``total``, ``bytes_done``, ``phase``, ...) through its context;
this turns them into the fields a client reads. A phase owns a span of the overall percentage and
counts from zero; the overall progress never goes back and stays below 100 until the job completes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .models import Job, JobStatus

#: a rate is only estimated after this long in a phase (earlier figures are noise)
_ESTIMATE_AFTER_S = 0.3


@dataclass(frozen=True, slots=True)
class _Phase:
    """When the running job's current phase began, and its part of the overall percentage."""

    started: float
    span: tuple[int, int] = (0, 100)


class Progress:
    """The phases of the running jobs, and the rule that turns reported values into a job's progress fields."""

    def __init__(self) -> None:
        self._phases: dict[str, _Phase] = {}

    def apply(self, job: Job, values: dict[str, Any]) -> bool:
        """Apply reported ``values`` to the running ``job``; True when anything a client reads changed."""
        if job.status is not JobStatus.RUNNING:
            return False
        now = time.monotonic()
        phase = self._phases.setdefault(job.id, _Phase(now))
        changed = False
        if "phase" in values:
            span = values.pop("span", (0, 100))
            if values["phase"] != job.phase:
                # A new phase counts from zero: its own done/total, bytes, rate and percentage.
                self._phases[job.id] = phase = _Phase(now, span)
                job.done = job.total = job.bytes_done = 0
                job.bytes_total = job.rate = job.eta_seconds = None
                job.phase_progress = 0
                changed = True
        if values.get("bytes_total") == 0:
            values["bytes_total"] = None  # an empty total is "unknown" until the job ends
        for name, value in values.items():
            if getattr(job, name) != value:
                setattr(job, name, value)
                changed = True
        percent = _percent(job)
        if percent != job.phase_progress:
            job.phase_progress = percent
            changed = True
        start, end = phase.span
        progress = min(99, start + percent * (end - start) // 100)
        if progress > job.progress:
            job.progress = progress
            changed = True
        rate, eta = _estimate(job, now - phase.started)
        if (rate, eta) != (job.rate, job.eta_seconds):
            job.rate, job.eta_seconds = rate, eta
            changed = True
        return changed

    def end(self, job_id: str) -> None:
        """The job stopped running: forget its phase."""
        self._phases.pop(job_id, None)


def _estimate(job: Job, elapsed: float) -> tuple[float | None, float | None]:
    """(bytes per second, seconds left) of the current phase; None where it cannot be estimated yet."""
    if elapsed < _ESTIMATE_AFTER_S or job.bytes_done <= 0:
        return None, None
    rate = job.bytes_done / elapsed
    if job.bytes_total:
        eta = max(0.0, (job.bytes_total - job.bytes_done) / rate)
    elif job.total and job.done:
        eta = max(0.0, (job.total - job.done) * elapsed / job.done)
    else:
        eta = None
    return round(rate), None if eta is None else round(eta, 1)


def _percent(job: Job) -> int:
    """Progress from bytes when known, else from items; capped at 99 until the job completes."""
    if job.bytes_total:
        percent = job.bytes_done * 100 // job.bytes_total
    elif job.total > 0:
        percent = job.done * 100 // job.total
    else:
        return 0
    return max(0, min(99, percent))
