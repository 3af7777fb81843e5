"""Taking a new job in: it holds its lane place while the store commits it, and exists only once committed.

``enter`` returns (and the job may start) after the commit, so an id handed out is never unknown after
a crash; when the commit fails the job is forgotten and ``StoreUnavailable`` raised. A caller going
away does not stop the save: it goes on and settles the job. A retry with the same idempotency key
waits for the first caller's save and gets its outcome.
"""

from __future__ import annotations

import asyncio
import logging

from . import joblog
from .errors import StoreUnavailable
from .history import JobHistory
from .lanes import Lanes
from .models import Job, JobStatus
from .store import JobStore

log = logging.getLogger(__name__)


class Intake:
    """The saves in flight of new jobs, and what their outcome does to the history and the lanes."""

    def __init__(self, store: JobStore, history: JobHistory, lanes: Lanes) -> None:
        self._store = store
        self._history = history
        self._lanes = lanes
        self._saving: dict[str, asyncio.Task[None]] = {}

    async def enter(self, job: Job) -> None:
        """Remember and queue the new job, and return once the store has committed it (else StoreUnavailable)."""
        self._history.remember(job)
        self._lanes.add(job)
        saving = self._saving[job.id] = asyncio.create_task(self._store.save(job), name=f"job-save-{job.id}")
        saving.add_done_callback(_retrieve)
        try:
            await asyncio.shield(saving)
        except asyncio.CancelledError:
            # The caller went away (a disconnecting client): the save goes on, and settles the job.
            saving.add_done_callback(lambda done: self._saved_quietly(job, done))
            raise
        except StoreUnavailable:
            pass  # _saved raises it below, once the job is forgotten
        self._saved(job, saving)
        self._history.prune(keep_max=self._store.keep_max, keep_days=self._store.keep_days, delete=self._store.delete)

    async def find_idempotent(self, key: str, fingerprint: str) -> Job | None:
        """The job made within 24 h for `key`, once it is saved; None if there is none (see ``JobHistory.by_key``)."""
        job = self._history.by_key(key, fingerprint)
        if job is not None and (saving := self._saving.get(job.id)) is not None:
            await asyncio.shield(saving)  # raises StoreUnavailable as it does for the first caller
        return job

    def _saved(self, job: Job, saving: asyncio.Task[None]) -> None:
        """The new job's save ended: it may start (after its caller has it), or it is forgotten."""
        if self._saving.pop(job.id, None) is None:
            return  # settled already
        error = StoreUnavailable("the save was cut short") if saving.cancelled() else saving.exception()
        if error is not None:
            log.error("job %s (%s) on %s could not be saved; it is dropped", job.id, job.kind, job.wallet_path)
            if job.status is JobStatus.QUEUED:
                self._lanes.remove(job)
            self._history.forget(job)
            self._store.discard(job.id)
            raise error
        joblog.queued(job)
        self._lanes.admit(job)

    def _saved_quietly(self, job: Job, saving: asyncio.Task[None]) -> None:
        try:
            self._saved(job, saving)
        except StoreUnavailable:
            pass  # logged; nobody is waiting for the answer


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a save's outcome as seen (the intake handles it; asyncio need not warn about it)."""
    if not task.cancelled():
        task.exception()
