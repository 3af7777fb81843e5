"""The one scheduler task: sleep until the next plan is due, start what is due, sleep again.

It never polls: it sleeps until the earliest `next_run_at`, and `wake()` (a plan created, changed,
deleted, or a run finished) cuts the sleep short so it recomputes. The sleep is capped at
`MAX_SLEEP_S` because the event loop's clock is monotonic and stops while a laptop sleeps: after a
resume, a due time that passed is found within that cap and run once as a catch-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

log = logging.getLogger(__name__)

#: longest uninterrupted sleep, so a wall clock that jumped (suspend, resume) is noticed soon
MAX_SLEEP_S = 300.0


class PlanScheduler:
    """Runs `run_due(now)` whenever `next_due()` has come; `clock` gives the aware wall-clock time."""

    def __init__(
        self,
        *,
        next_due: Callable[[], datetime | None],
        run_due: Callable[[datetime], Awaitable[None]],
        clock: Callable[[], datetime],
    ) -> None:
        self._next_due = next_due
        self._run_due = run_due
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        running = self._task is not None and not self._task.done()
        return f"<PlanScheduler running={running} next_due={self._next_due()}>"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="backup-plan-scheduler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Plans changed: recompute the sleep now."""
        self._wake.set()

    def seconds_until_due(self) -> float | None:
        due = self._next_due()
        if due is None:
            return None
        return max(0.0, (due - self._clock()).total_seconds())

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            floor = 0.0
            try:
                await self._run_due(self._clock())
            except Exception:  # one bad plan must not stop every schedule, nor spin the loop
                log.exception("backup plan scheduler: starting due runs failed")
                floor = 1.0
            delay = self.seconds_until_due()
            # A timer may fire a hair early; the margin keeps it from waking to find nothing due yet.
            timeout = MAX_SLEEP_S if delay is None else min(max(delay + 0.005, floor), MAX_SLEEP_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
