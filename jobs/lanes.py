"""The per-wallet lanes of queued jobs and the async workers that take the next job of a free lane.

Jobs on one wallet form a lane and run one at a time in submission order; lanes run in parallel on
``workers`` async workers. A new job holds its lane place from the start but may not run until it is
admitted (its store commit is done), so a job nobody could find after a crash never starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from .models import Job

log = logging.getLogger(__name__)


class Lanes:
    """Queued jobs by wallet, which lanes are taken, and the workers that run the head of a free lane."""

    def __init__(self) -> None:
        # A lane is dispatchable when it has jobs, its first one is admitted, and nobody runs on it.
        self._lanes: dict[str, deque[Job]] = {}
        self._held: set[str] = set()
        self._busy: dict[str, int] = {}
        self._lane_of: dict[str, str] = {}  # of running jobs
        self._ready: asyncio.Queue[str | None] | None = None
        self._ready_set: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        #: how many jobs wait in the lanes
        self.queued = 0

    def add(self, job: Job) -> None:
        """Queue a new job at the end of its wallet's lane, held until ``admit``."""
        self._lanes.setdefault(job.wallet_path, deque()).append(job)
        self._held.add(job.id)
        self.queued += 1

    def admit(self, job: Job) -> None:
        """The job was saved: it may run when its turn comes."""
        self._held.discard(job.id)
        self._make_ready(job.wallet_path)

    def remove(self, job: Job) -> None:
        """Take a queued job out of its lane (cancelled, or never saved)."""
        self._held.discard(job.id)
        lane = self._lanes[job.wallet_path]
        lane.remove(job)
        if not lane:
            del self._lanes[job.wallet_path]
        self.queued -= 1

    def drain(self) -> list[Job]:
        """Empty every lane (at shutdown) and return the jobs they held, lane by lane."""
        jobs = [job for lane in self._lanes.values() for job in lane]
        self._lanes.clear()
        self.queued = 0
        return jobs

    def move(self, job_id: str, old_path: str, new_path: str, follows: Callable[[Job], bool]) -> list[Job]:
        """A running job moved its wallet: the queued jobs that ``follows`` join the lane of ``new_path``
        (in creation order), and the mover keeps its lane under the new name. Returns the moved jobs,
        for the caller to rewrite and publish."""
        lane = self._lanes.pop(old_path, None) or deque()
        moved = deque(job for job in lane if follows(job))
        staying = deque(job for job in lane if not follows(job))
        if staying:
            self._lanes[old_path] = staying
        if moved:
            waiting = self._lanes.get(new_path)
            # sorted() is stable: on equal times the jobs already on new_path stay first.
            merged = sorted([*waiting, *moved], key=lambda queued: queued.created_at) if waiting else moved
            self._lanes[new_path] = deque(merged)
        if self._lane_of.get(job_id) == old_path:
            self._lane_of[job_id] = new_path
            self._release(old_path)
            self._occupy(new_path)
        self._make_ready(new_path)
        self._make_ready(old_path)
        return list(moved)

    # -- the workers --------------------------------------------------------------------------

    def start(self, workers: int, run: Callable[[Job], Awaitable[None]]) -> None:
        """Start ``workers`` tasks, each running the head of a free lane with ``run`` until stopped."""
        self._ready = asyncio.Queue()
        self._workers = [asyncio.create_task(self._work(run), name=f"job-worker-{n}") for n in range(workers)]

    async def stop(self, timeout: float) -> None:
        """Let each worker finish its job and stop; after ``timeout`` seconds interrupt the late ones."""
        if not self._workers:
            return
        assert self._ready is not None
        for _ in self._workers:
            self._ready.put_nowait(None)
        _, late = await asyncio.wait(self._workers, timeout=timeout)
        for task in late:
            log.warning("job worker %s did not stop within %.1f s; interrupting it", task.get_name(), timeout)
            task.cancel()
        outcomes = await asyncio.gather(*self._workers, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("job worker crashed", exc_info=outcome)
        self._workers = []

    async def _work(self, run: Callable[[Job], Awaitable[None]]) -> None:
        assert self._ready is not None
        while True:
            wallet = await self._ready.get()
            if wallet is None:
                return
            self._ready_set.discard(wallet)
            lane = self._lanes.get(wallet)
            if not lane or self._busy.get(wallet) or lane[0].id in self._held:
                continue  # stale: its jobs were cancelled or moved, it is taken, or its next job is not saved yet
            job = lane.popleft()
            if not lane:
                del self._lanes[wallet]
            self.queued -= 1
            self._occupy(wallet)
            self._lane_of[job.id] = wallet
            try:
                await run(job)
            finally:
                self._release(self._lane_of.pop(job.id))
            # A trivial job never suspends; yield so the store writer and requests get their turn.
            await asyncio.sleep(0)

    def _occupy(self, wallet: str) -> None:
        self._busy[wallet] = self._busy.get(wallet, 0) + 1

    def _release(self, wallet: str) -> None:
        left = self._busy[wallet] - 1
        if left:
            self._busy[wallet] = left
        else:
            del self._busy[wallet]
        self._make_ready(wallet)

    def _make_ready(self, wallet: str) -> None:
        lane = self._lanes.get(wallet)
        if wallet in self._ready_set or self._busy.get(wallet) or not lane or lane[0].id in self._held:
            return
        assert self._ready is not None
        self._ready_set.add(wallet)
        self._ready.put_nowait(wallet)
