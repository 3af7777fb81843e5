"""Watching jobs: waiting for a job's end, and following its changes as a coalesced stream of snapshots.

Each job has at most two futures, shared by all its watchers: one its next change resolves, one its
end resolves; a resolved future is replaced on the next watch. A slow watcher therefore gets the
latest state, never a backlog, and a watcher going away never touches the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .history import JobHistory
from .models import Job


class Watchers:
    """The futures the runner resolves on a job's changes and at its end."""

    def __init__(self, history: JobHistory) -> None:
        self._history = history
        self._changed: dict[str, asyncio.Future[None]] = {}
        self._finished: dict[str, asyncio.Future[None]] = {}
        self._closed = False

    def changed(self, job_id: str) -> None:
        """The job changed: wake whoever follows it."""
        _wake(self._changed, job_id)

    def finished(self, job_id: str) -> None:
        """The job reached its final state: wake whoever waits for it."""
        _wake(self._finished, job_id)

    def wake_all(self) -> None:
        """Wake every follower (the runner is closing: they look whether to end)."""
        for job_id in list(self._changed):
            _wake(self._changed, job_id)

    def close(self) -> None:
        """The runner has closed: streams end."""
        self._closed = True

    async def wait(self, job_id: str, timeout: float | None) -> Job:
        """Return the job once it has finished or ``timeout`` seconds passed. Cancelling the waiter never cancels the job."""
        job = self._history.get(job_id)
        if job.status.finished or (timeout is not None and timeout <= 0):
            return job
        # asyncio.wait never cancels what it waits on: a disconnecting client leaves the job alone.
        await asyncio.wait((_watch(self._finished, job_id),), timeout=timeout)
        return job

    async def events(self, job_id: str, *, after: int = 0, keepalive: float | None = None) -> AsyncIterator[Job | None]:
        """Snapshots of the job: now if ``job.seq > after``, then on each change, ending after the final state.

        Coalesced: a slow consumer gets the latest state, never a backlog. With ``keepalive``, yields
        None when that many seconds pass without a change (time for an SSE comment). Ends early when
        the runner closes. Raises JobNotFound on the first iteration (check with ``get`` first).
        """
        job = self._history.get(job_id)
        last = after
        while True:
            if job.seq > last:
                last = job.seq
                yield job.snapshot()
                continue  # the job may have changed again while the consumer was busy
            if job.status.finished or self._closed:
                return
            done, _ = await asyncio.wait((_watch(self._changed, job_id),), timeout=keepalive)
            if not done:
                yield None


def _watch(futures: dict[str, asyncio.Future[None]], job_id: str) -> asyncio.Future[None]:
    """The future in ``futures`` that the job's next change (or its end) resolves; shared by all watchers."""
    future = futures.get(job_id)
    if future is None:
        future = futures[job_id] = asyncio.get_running_loop().create_future()
    return future


def _wake(futures: dict[str, asyncio.Future[None]], job_id: str) -> None:
    future = futures.pop(job_id, None)
    if future is not None and not future.done():
        future.set_result(None)
