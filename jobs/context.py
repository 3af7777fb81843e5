"""What a running job sees of the runner: its read-only view, cancel checks, progress reports, the executor.

A ``JobContext`` is made by the runner for each run and lives on the loop thread; methods marked
(thread-safe) may also be called from the executor threads a job hands its blocking work to.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from .models import Job, JobCancelled, JobKind
from .services import Services

T = TypeVar("T")

#: shortest time between two published progress updates of a job (jobs.md: at most 10 per second)
REPORT_INTERVAL_S = 0.1
#: longest a worker thread waits for the event loop to carry out a call it handed over
LOOP_CALL_TIMEOUT_S = 30.0


class JobHost(Protocol):
    """What a context needs of the runner that made it: its loop and pool, and two ways to tell it things."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor: ...

    @property
    def services(self) -> Services | None: ...

    def on_loop_thread(self) -> bool: ...

    def publish_report(self, job: Job, values: dict[str, Any]) -> None: ...

    def move_wallet(self, job_id: str, old_path: str, new_path: str) -> None: ...


@dataclass(frozen=True, slots=True)
class JobView:
    """What a job function may read about its job."""

    id: str
    kind: JobKind
    wallet_path: str
    params: Mapping[str, Any]
    created_at: datetime


class JobContext:
    """Handed to a job function. Methods marked (thread-safe) may also be called from executor threads."""

    def __init__(self, runner: JobHost, job: Job) -> None:
        self._runner = runner
        self._job = job
        self._loop = runner.loop
        self.job = JobView(job.id, job.kind, job.wallet_path, MappingProxyType(dict(job.params)), job.created_at)
        #: set when a cancel is requested; blocking code checks it between files
        self.cancel_event = threading.Event()
        # Guards the cancel/forbid race and the pending report values.
        self._lock = threading.Lock()
        self._forbidden = False
        self._closed = False
        self._pending: dict[str, Any] = {}
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_publish = -math.inf

    def __repr__(self) -> str:
        return f"<JobContext {self._job!r} cancel_requested={self.cancel_event.is_set()}>"

    @property
    def services(self) -> Services:
        """What the job may use of the wallet domain (given to the runner at start)."""
        services = self._runner.services
        if services is None:
            raise RuntimeError("this runner was made without services")
        return services

    def check_cancelled(self) -> None:
        """Raise JobCancelled if a cancel was requested. (thread-safe)"""
        if self.cancel_event.is_set():
            raise JobCancelled()

    def forbid_cancel(self) -> None:
        """From now on a cancel answers JobNotCancellable and the job runs to its end. (thread-safe)

        Raises JobCancelled instead if a cancel came first, so a rename calls this right before its
        folder move and never moves a folder after it told a client "cancelled".
        """
        with self._lock:
            if self.cancel_event.is_set():
                raise JobCancelled()
            self._forbidden = True
        # Only the record's flag; the lock above already settled the race with cancel().
        self._call_in_loop(setattr, self._job, "cancellable", False, wait=False)

    def report(
        self,
        *,
        done: int | None = None,
        total: int | None = None,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
        message: str | None = None,
        phase: str | None = None,
    ) -> None:
        """Record progress; published at most every REPORT_INTERVAL_S, latest values win. (thread-safe)"""
        values: dict[str, Any] = {}
        for name, value in (("done", done), ("total", total), ("bytes_done", bytes_done), ("bytes_total", bytes_total)):
            if value is not None:
                values[name] = max(0, int(value))
        if message is not None:
            values["message"] = str(message)
        if phase is not None:
            values["phase"] = str(phase)
        with self._lock:
            if self._closed:
                return
            self._pending.update(values)
            if self._scheduled:
                return
            self._scheduled = True
        self._post(self._deliver)

    async def run_blocking(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the runner's executor (never the loop's default one)."""
        return await self._loop.run_in_executor(self._runner.executor, functools.partial(fn, *args, **kwargs))

    def move_wallet(self, old_path: str, new_path: str) -> None:
        """Tell the runner the wallet moved: queued jobs on ``old_path`` and the lane follow it. (thread-safe)"""
        self._call_in_loop(self._runner.move_wallet, self._job.id, old_path, new_path)

    # -- runner side (loop thread) ------------------------------------------------------------

    def _request_cancel(self) -> bool:
        with self._lock:
            if self._forbidden:
                return False
            self.cancel_event.set()
            return True

    def _deliver(self) -> None:
        if self._closed:
            return
        delay = self._last_publish + REPORT_INTERVAL_S - self._loop.time()
        if delay > 0:
            self._timer = self._loop.call_later(delay, self._publish_pending)
        else:
            self._publish_pending()

    def _publish_pending(self) -> None:
        self._timer = None
        with self._lock:
            values, self._pending = self._pending, {}
            self._scheduled = False
            if self._closed:
                return
        self._last_publish = self._loop.time()
        self._runner.publish_report(self._job, values)

    def _close(self) -> dict[str, Any]:
        """Stop taking reports; return the values not yet published."""
        with self._lock:
            self._closed = True
            values, self._pending = self._pending, {}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return values

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop has closed; nobody is left to tell
            pass

    def _call_in_loop(self, fn: Callable[..., Any], *args: Any, wait: bool = True) -> Any:
        if self._runner.on_loop_thread():
            return fn(*args)
        if not wait:
            self._post(fn, *args)
            return None
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            try:
                result.set_result(fn(*args))
            except BaseException as exc:  # handed back to the calling thread
                result.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        # Bounded, so a thread never hangs on a loop that has stopped running callbacks.
        return result.result(timeout=LOOP_CALL_TIMEOUT_S)
