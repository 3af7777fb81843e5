"""The jobs the runner knows: in creation order, found by id or filters, by idempotency key, pruned like the store.

The history holds every job since the start (loaded ones and new ones) until the store's count or age
limits drop the oldest finished ones, the same rule a restart applies when it loads the store.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .errors import IdempotencyMismatch, JobNotFound
from .models import Job, utcnow

#: how long an idempotency key finds the job it created
IDEMPOTENCY_WINDOW = timedelta(hours=24)


class JobHistory:
    """Every job known, oldest first; the live objects (read them, never change them outside the runner)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        # The same order as _jobs, for pruning from the oldest end.
        self._order: deque[str] = deque()
        self._idempotency: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._order.append(job.id)
        if job.idempotency_key is not None:
            self._idempotency[job.idempotency_key] = job.id

    def forget(self, job: Job) -> None:
        """Drop a job that never came to exist (its save failed)."""
        self._jobs.pop(job.id, None)
        try:
            self._order.remove(job.id)
        except ValueError:
            pass
        self._drop_key(job)

    def get(self, job_id: str) -> Job:
        """The live job. Raises JobNotFound."""
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(job_id) from None

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        wallet_path: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs matching every given filter, newest first, at most ``limit``."""
        found: list[Job] = []
        if limit <= 0:
            return found
        for job in reversed(self._jobs.values()):
            if status is not None and job.status != status:
                continue
            if kind is not None and job.kind != kind:
                continue
            if wallet_path is not None and job.wallet_path != wallet_path:
                continue
            found.append(job)
            if len(found) >= limit:
                break
        return found

    def by_key(self, key: str, fingerprint: str) -> Job | None:
        """The job made within 24 h for ``key`` (saved or not); None if there is none.

        IdempotencyMismatch when it was made for another request (method, path or parameters):
        a retry must never be answered with somebody else's result. A job stored before
        fingerprints were kept matches any request, as it did then.
        """
        job = self._jobs.get(self._idempotency.get(key, ""))
        if job is None or utcnow() - job.created_at > IDEMPOTENCY_WINDOW:
            return None
        if job.idempotency_fingerprint is not None and job.idempotency_fingerprint != fingerprint:
            raise IdempotencyMismatch(key)
        return job

    def prune(self, *, keep_max: int, keep_days: float, delete: Callable[[str], None]) -> None:
        """Drop the oldest finished jobs past the count or age limits (``delete`` drops each from the store)."""
        cutoff = utcnow() - timedelta(days=keep_days)
        while self._order:
            job = self._jobs.get(self._order[0])
            if job is None:
                self._order.popleft()
                continue
            if not job.status.finished or job.finished_at is None:
                return
            if len(self._jobs) <= keep_max and job.finished_at >= cutoff:
                return
            self._order.popleft()
            del self._jobs[job.id]
            self._drop_key(job)
            delete(job.id)

    def _drop_key(self, job: Job) -> None:
        if job.idempotency_key is not None and self._idempotency.get(job.idempotency_key) == job.id:
            del self._idempotency[job.idempotency_key]


def request_fingerprint(*parts: Any) -> str:
    """A short digest of what a request asked for (JSON-able parts), to tell a retry from another request."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
