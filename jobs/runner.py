"""The job runner: registering kinds, starting up, submitting, running, cancelling, and shutting down.

The runner ties the queue's parts together: the ``history`` of jobs, the ``intake`` of new ones (a job
exists only once the store has committed it), the per-wallet ``lanes`` and their workers, the
``watchers`` of changes, the ``progress`` rule, and the ``endings`` of jobs. A job function runs on the
event loop and hands its blocking parts to the app's executor through ``JobContext.run_blocking`` (see
``context``). The exceptions the runner raises, and how the HTTP side maps them, are drawn in ``errors``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from . import joblog
from .context import JobContext
from .endings import CleanupFunc, JobFunc, interrupted, record_end, run_to_end, settle_interrupted
from .errors import JobNotCancellable, QueueFull, RunnerClosed
from .history import JobHistory, request_fingerprint
from .intake import Intake
from .lanes import Lanes
from .memory import release_memory
from .models import Job, JobError, JobKind, JobStatus, utcnow
from .progress import Progress
from .services import Services
from .store import JobStore
from .watchers import Watchers

#: a job that ran this long gives its freed memory back to the system afterwards (jobs/memory.py);
#: the many short ones do not pay the call
RELEASE_MEMORY_AFTER_S = 0.5


@dataclass(frozen=True, slots=True)
class _Registration:
    func: JobFunc
    cleanup: CleanupFunc | None
    cancellable: bool
    follows_wallet: bool


class JobRunner:
    """Runs registered job functions: per-wallet FIFO lanes, ``workers`` lanes at once, a bounded queue."""

    def __init__(
        self,
        store: JobStore,
        *,
        executor: concurrent.futures.ThreadPoolExecutor,
        workers: int = 2,
        max_queued: int = 1000,
        services: Services | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._store = store
        self._services = services
        self._executor = executor
        self._n_workers = workers
        self._max_queued = max_queued
        self._registry: dict[JobKind, _Registration] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._history = JobHistory()
        self._lanes = Lanes()
        self._watchers = Watchers(self._history)
        self._progress = Progress()
        self._intake = Intake(store, self._history, self._lanes)
        self._running: dict[str, JobContext] = {}
        self._avg_run_s = 0.0
        self._closing = False
        self._closed: asyncio.Event | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("running" if self._loop else "new")
        return f"<JobRunner {state} queued={self._lanes.queued} running={len(self._running)} workers={self._n_workers}>"

    # -- set-up -------------------------------------------------------------------------------

    def register(
        self,
        kind: JobKind,
        func: JobFunc,
        *,
        cleanup: CleanupFunc | None = None,
        cancellable: bool = True,
        follows_wallet: bool = True,
    ) -> None:
        """Say which function runs jobs of ``kind``; ``cleanup`` settles one interrupted by a restart;
        ``follows_wallet``: a queued job moves with its wallet when a rename moves it."""
        self._registry[JobKind(kind)] = _Registration(func, cleanup, cancellable, follows_wallet)

    async def start(self) -> None:
        """Load the history, settle jobs a restart interrupted, start the workers."""
        if self._loop is not None:
            raise RuntimeError("job runner already started")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        jobs = await self._store.open(self._executor)
        for job in jobs:
            if not job.status.finished:
                registration = self._registry.get(job.kind)
                cleanup = registration.cleanup if registration is not None else None
                # Settled only after its cleanup ran, so a crash during cleanup retries it next start.
                self._finish(job, *await settle_interrupted(job, cleanup, self._loop, self._executor))
            self._history.remember(job)
        self._lanes.start(self._n_workers, self._run)

    # -- submitting and reading ---------------------------------------------------------------

    async def submit(
        self,
        kind: JobKind,
        *,
        wallet_path: str,
        params: dict[str, Any],
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> Job:
        """Queue a job on ``wallet_path``'s lane and return it once the store has committed it.

        The same idempotency key within 24 h returns the earlier job when ``fingerprint`` (what the
        request was; by default the kind, wallet and parameters) matches, else IdempotencyMismatch.
        StoreUnavailable when the job could not be saved: then it does not exist and never runs.
        """
        if self._closing:
            raise RunnerClosed()
        if self._loop is None:
            raise RuntimeError("job runner not started")
        kind = JobKind(kind)
        registration = self._registry.get(kind)
        if registration is None:
            raise ValueError(f"no job function registered for {kind}")
        if fingerprint is None:
            fingerprint = request_fingerprint(str(kind), wallet_path, params)
        if idempotency_key is not None:
            earlier = await self.find_idempotent(idempotency_key, fingerprint)
            if earlier is not None:
                return earlier
        if self._lanes.queued >= self._max_queued:
            raise QueueFull(self._retry_after())
        job = Job.new(
            kind,
            wallet_path=wallet_path,
            params=params,
            idempotency_key=idempotency_key,
            idempotency_fingerprint=fingerprint if idempotency_key is not None else None,
            cancellable=registration.cancellable,
        )
        await self._intake.enter(job)
        return job

    async def find_idempotent(self, key: str, fingerprint: str) -> Job | None:
        """The job made within 24 h for `key`, once it is saved; None if there is none (see ``Intake``)."""
        return await self._intake.find_idempotent(key, fingerprint)

    def get(self, job_id: str) -> Job:
        """The live job (read it, never change it). Raises JobNotFound."""
        return self._history.get(job_id)

    def list(
        self, *, status: str | None = None, kind: str | None = None, wallet_path: str | None = None, limit: int = 100
    ) -> list[Job]:
        """Jobs matching every given filter, newest first, at most ``limit``."""
        return self._history.list(status=status, kind=kind, wallet_path=wallet_path, limit=limit)

    def counts(self) -> dict[str, int]:
        return {"queued": self._lanes.queued, "running": len(self._running)}

    async def wait(self, job_id: str, timeout: float | None) -> Job:
        """Return the job once it has finished or ``timeout`` seconds passed (see ``Watchers.wait``)."""
        return await self._watchers.wait(job_id, timeout)

    def events(self, job_id: str, *, after: int = 0, keepalive: float | None = None) -> AsyncIterator[Job | None]:
        """Snapshots of the job on each change until its end (see ``Watchers.events``)."""
        return self._watchers.events(job_id, after=after, keepalive=keepalive)

    # -- cancelling ---------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once, a running one at its next check. Raises JobNotCancellable."""
        job = self.get(job_id)
        if job.status.finished:
            raise JobNotCancellable(job)
        if job.status is JobStatus.QUEUED:
            self._lanes.remove(job)
            self._finish(job, JobStatus.CANCELLED)
            return job
        if not self._request_cancel(job):
            raise JobNotCancellable(job)
        if job.message != "Cancelling":
            job.message = "Cancelling"
            self._publish(job, persist=False)
        return job

    def _request_cancel(self, job: Job) -> bool:
        """Ask a running job to stop; False if its kind never stops or it is past its point of no return."""
        return self._registry[job.kind].cancellable and self._running[job.id]._request_cancel()

    # -- shutting down ------------------------------------------------------------------------

    async def close(self, *, timeout: float = 8.0) -> None:
        """Stop: refuse new jobs, cancel queued ones, cancel running cancellable ones and await the rest
        (for at most ``timeout`` seconds, then they are interrupted), stop the workers, flush the store.
        Idempotent; a second caller waits for the first."""
        if self._closed is not None:
            await self._closed.wait()
            return
        self._closed = asyncio.Event()
        self._closing = True
        try:
            if self._loop is None:
                return
            # (a job still being saved is saved cancelled: the store drains before it closes)
            for job in self._lanes.drain():
                self._finish(job, JobStatus.CANCELLED)
            for job_id in self._running:
                self._request_cancel(self._history.get(job_id))
            await self._lanes.stop(timeout)
            self._watchers.wake_all()
            await self._store.close()
        finally:
            self._watchers.close()
            self._closed.set()

    # -- running a job ------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        context = JobContext(self, job)
        self._running[job.id] = context
        job.status = JobStatus.RUNNING
        job.started_at = utcnow()
        job.message = "Running"
        self._publish(job, persist=True)
        joblog.started(job)
        loop = self._loop_or_fail()
        began = loop.time()
        try:
            ending = await run_to_end(job, self._registry[job.kind].func, context)
        except asyncio.CancelledError:
            # close() gave up waiting. The store keeps "running", so the next start runs the
            # kind's cleanup and records the same failure this reports now.
            self._end_run(job, context)
            self._finish(job, *interrupted(), persist=False)
            raise
        ran = loop.time() - began
        self._avg_run_s = 0.8 * self._avg_run_s + 0.2 * ran
        self._end_run(job, context)
        self._finish(job, *ending)
        if ran >= RELEASE_MEMORY_AFTER_S:  # a big job: its thread's freed heap goes back to the system
            self._executor.submit(release_memory)

    def _end_run(self, job: Job, context: JobContext) -> None:
        self._running.pop(job.id, None)
        self._progress.apply(job, context._close())
        self._progress.end(job.id)

    def _finish(
        self,
        job: Job,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        error: JobError | None = None,
        *,
        persist: bool = True,
    ) -> None:
        record_end(job, status, result, error)
        self._publish(job, persist=persist)
        joblog.finished(job)
        self._watchers.finished(job.id)

    def _publish(self, job: Job, *, persist: bool) -> None:
        job.seq += 1
        if persist:
            self._store.put(job)
        self._watchers.changed(job.id)

    def _retry_after(self) -> int:
        # A slot frees when one of the running jobs ends.
        return max(1, min(60, math.ceil(self._avg_run_s / self._n_workers)))

    # -- what a JobContext may use (context.JobHost) ---------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop_or_fail()

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        return self._executor

    @property
    def services(self) -> Services | None:
        return self._services

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def publish_report(self, job: Job, values: dict[str, Any]) -> None:
        if self._progress.apply(job, values):
            self._publish(job, persist=False)

    def move_wallet(self, job_id: str, old_path: str, new_path: str) -> None:
        """A running job moved its wallet: queued jobs of kinds that follow it move along."""
        if old_path == new_path:
            return
        # A rename names one folder: it stays on the path it named (and fails there with the seed's
        # 404); the other kinds act on the wallet, wherever it now is.
        for job in self._lanes.move(job_id, old_path, new_path, self._follows_wallet):
            job.wallet_path = new_path
            if "wallet_path" in job.params:
                job.params = {**job.params, "wallet_path": new_path}
            self._publish(job, persist=True)

    def _follows_wallet(self, job: Job) -> bool:
        return self._registry[job.kind].follows_wallet

    def _loop_or_fail(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("job runner not started")
        return self._loop
