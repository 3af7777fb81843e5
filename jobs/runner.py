"""The job runner: the bounded queue, per-wallet lanes, the workers, cancelling, watching and shutdown.

Jobs on one wallet form a lane and run one at a time in submission order; lanes run in parallel on
``workers`` async workers. A job function runs on the event loop and hands its blocking parts to the
app's executor through ``JobContext.run_blocking`` (see ``context``). Whatever the function raises
becomes the job's final state (errors are data); nothing escapes as an unretrieved task exception.
The exceptions the runner raises, and how the HTTP side maps them, are drawn in ``errors``; they are
re-exported here so callers need only this module.

A new job exists only once the store has committed it: ``submit`` returns (and the job may start)
after that commit, so an id handed out is never unknown after a crash; when the commit fails the job
is forgotten and ``StoreUnavailable`` raised. A job keeps its lane position while it is being saved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import hashlib
import json
import logging
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from . import joblog
from .context import JobContext
from .errors import (
    INTERNAL_ERROR,
    INTERRUPTED_ERROR,
    IdempotencyMismatch,
    JobNotCancellable,
    JobNotFound,
    QueueFull,
    RunnerClosed,
    StoreUnavailable,
)
from .models import Job, JobCancelled, JobError, JobFailed, JobKind, JobStatus, utcnow
from .services import Services
from .store import JobStore

log = logging.getLogger(__name__)

JobFunc = Callable[[JobContext], Awaitable[dict[str, Any]]]
#: settles a job a restart interrupted: the result of work that had finished (marked "recovered"),
#: or None when the work was undone (the job fails "Interrupted by server restart")
CleanupFunc = Callable[[Job], "dict[str, Any] | None"]

#: how long an idempotency key finds the job it created
IDEMPOTENCY_WINDOW = timedelta(hours=24)


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
        # Every job known, in creation order (oldest first); _history is the same order for pruning.
        self._jobs: dict[str, Job] = {}
        self._history: deque[str] = deque()
        self._idempotency: dict[str, str] = {}
        # New jobs whose store commit is in flight: they hold their lane place but do not start yet.
        self._unsaved: set[str] = set()
        self._saving: dict[str, asyncio.Task[None]] = {}
        # Lanes: queued jobs per wallet. A lane is dispatchable when it has jobs and nobody runs on it.
        self._lanes: dict[str, deque[Job]] = {}
        self._busy: dict[str, int] = {}
        self._ready: asyncio.Queue[str | None] | None = None
        self._ready_set: set[str] = set()
        self._n_queued = 0
        self._running: dict[str, JobContext] = {}
        self._lane_of: dict[str, str] = {}
        self._workers: list[asyncio.Task[None]] = []
        # Watchers: one future per job, resolved (and replaced) on its next change / at its end.
        self._changed: dict[str, asyncio.Future[None]] = {}
        self._finished: dict[str, asyncio.Future[None]] = {}
        self._avg_run_s = 0.0
        self._closing = False
        self._closed: asyncio.Event | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("running" if self._loop else "new")
        return f"<JobRunner {state} queued={self._n_queued} running={len(self._running)} workers={self._n_workers}>"

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
        self._ready = asyncio.Queue()
        jobs = await self._store.open(self._executor)
        for job in jobs:
            if not job.status.finished:
                await self._settle_interrupted(job)
            self._remember(job)
        self._workers = [asyncio.create_task(self._work(), name=f"job-worker-{n}") for n in range(self._n_workers)]

    async def _settle_interrupted(self, job: Job) -> None:
        log.warning("job %s (%s) on %s was interrupted by a restart", job.id, job.kind, job.wallet_path)
        registration = self._registry.get(job.kind)
        recovered: dict[str, Any] | None = None
        if registration is not None and registration.cleanup is not None:
            try:
                recovered = await self._loop_or_fail().run_in_executor(
                    self._executor, registration.cleanup, job.snapshot()
                )
            except Exception:
                log.exception("cleanup of interrupted job %s (%s) failed", job.id, job.kind)
        # Settled only after its cleanup ran, so a crash during cleanup retries it next start.
        if recovered is not None:
            log.warning("job %s (%s) had finished its work before the restart: completed", job.id, job.kind)
            self._finish(job, JobStatus.COMPLETED, result=recovered)
        else:
            self._finish(job, JobStatus.FAILED, error=copy.deepcopy(INTERRUPTED_ERROR))

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
        if self._n_queued >= self._max_queued:
            raise QueueFull(self._retry_after())
        job = Job.new(
            kind,
            wallet_path=wallet_path,
            params=params,
            idempotency_key=idempotency_key,
            idempotency_fingerprint=fingerprint if idempotency_key is not None else None,
            cancellable=registration.cancellable,
        )
        self._remember(job)
        self._lanes.setdefault(wallet_path, deque()).append(job)
        self._n_queued += 1
        self._unsaved.add(job.id)
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
        self._forget_old()
        return job

    def _saved(self, job: Job, saving: asyncio.Task[None]) -> None:
        """The new job's save ended: it may start (after its caller has it), or it is forgotten."""
        if job.id not in self._unsaved:
            return  # settled already
        self._unsaved.discard(job.id)
        self._saving.pop(job.id, None)
        error = StoreUnavailable("the save was cut short") if saving.cancelled() else saving.exception()
        if error is not None:
            log.error("job %s (%s) on %s could not be saved; it is dropped", job.id, job.kind, job.wallet_path)
            if job.status is JobStatus.QUEUED:
                self._unqueue(job)
            self._forget(job)
            self._store.discard(job.id)
            raise error
        joblog.queued(job)
        self._make_ready(job.wallet_path)

    def _saved_quietly(self, job: Job, saving: asyncio.Task[None]) -> None:
        try:
            self._saved(job, saving)
        except StoreUnavailable:
            pass  # logged; nobody is waiting for the answer

    def get(self, job_id: str) -> Job:
        """The live job (read it, never change it). Raises JobNotFound."""
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

    def counts(self) -> dict[str, int]:
        return {"queued": self._n_queued, "running": len(self._running)}

    # -- watching -----------------------------------------------------------------------------

    async def wait(self, job_id: str, timeout: float | None) -> Job:
        """Return the job once it has finished or ``timeout`` seconds passed. Cancelling the waiter never cancels the job."""
        job = self.get(job_id)
        if job.status.finished or (timeout is not None and timeout <= 0):
            return job
        # asyncio.wait never cancels what it waits on: a disconnecting client leaves the job alone.
        await asyncio.wait((self._watch(self._finished, job_id),), timeout=timeout)
        return job

    async def events(self, job_id: str, *, after: int = 0, keepalive: float | None = None) -> AsyncIterator[Job | None]:
        """Snapshots of the job: now if ``job.seq > after``, then on each change, ending after the final state.

        Coalesced: a slow consumer gets the latest state, never a backlog. With ``keepalive``, yields
        None when that many seconds pass without a change (time for an SSE comment). Ends early when
        the runner closes. Raises JobNotFound on the first iteration (check with ``get`` first).
        """
        job = self.get(job_id)
        last = after
        while True:
            if job.seq > last:
                last = job.seq
                yield job.snapshot()
                continue  # the job may have changed again while the consumer was busy
            if job.status.finished or (self._closed is not None and self._closed.is_set()):
                return
            if not await self._next_change(job_id, keepalive):
                yield None

    async def _next_change(self, job_id: str, timeout: float | None) -> bool:
        done, _ = await asyncio.wait((self._watch(self._changed, job_id),), timeout=timeout)
        return bool(done)

    def _watch(self, futures: dict[str, asyncio.Future[None]], job_id: str) -> asyncio.Future[None]:
        """The future in ``futures`` that the job's next change (or its end) resolves; shared by all watchers."""
        future = futures.get(job_id)
        if future is None:
            future = futures[job_id] = self._loop_or_fail().create_future()
        return future

    @staticmethod
    def _wake(futures: dict[str, asyncio.Future[None]], job_id: str) -> None:
        future = futures.pop(job_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    # -- cancelling ---------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once, a running one at its next check. Raises JobNotCancellable."""
        job = self.get(job_id)
        if job.status.finished:
            raise JobNotCancellable(job)
        if job.status is JobStatus.QUEUED:
            self._unqueue(job)
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

    def _unqueue(self, job: Job) -> None:
        lane = self._lanes[job.wallet_path]
        lane.remove(job)
        if not lane:
            del self._lanes[job.wallet_path]
        self._n_queued -= 1

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
            for lane in list(self._lanes.values()):
                for job in lane:
                    self._finish(job, JobStatus.CANCELLED)
            # (a job still being saved is saved cancelled: the store drains before it closes)
            self._lanes.clear()
            self._n_queued = 0
            for job_id in self._running:
                self._request_cancel(self._jobs[job_id])
            await self._stop_workers(timeout)
            for job_id in list(self._changed):
                self._wake(self._changed, job_id)
            await self._store.close()
        finally:
            self._closed.set()

    async def _stop_workers(self, timeout: float) -> None:
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

    # -- the workers --------------------------------------------------------------------------

    async def _work(self) -> None:
        assert self._ready is not None
        while True:
            wallet = await self._ready.get()
            if wallet is None:
                return
            self._ready_set.discard(wallet)
            lane = self._lanes.get(wallet)
            if not lane or self._busy.get(wallet) or lane[0].id in self._unsaved:
                continue  # stale: its jobs were cancelled or moved, it is taken, or its next job is not saved yet
            job = lane.popleft()
            if not lane:
                del self._lanes[wallet]
            self._n_queued -= 1
            self._occupy(wallet)
            self._lane_of[job.id] = wallet
            try:
                await self._run(job)
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
        if wallet in self._ready_set or self._busy.get(wallet) or not lane or lane[0].id in self._unsaved:
            return
        assert self._ready is not None
        self._ready_set.add(wallet)
        self._ready.put_nowait(wallet)

    async def _run(self, job: Job) -> None:
        registration = self._registry[job.kind]
        context = JobContext(self, job)
        self._running[job.id] = context
        job.status = JobStatus.RUNNING
        job.started_at = utcnow()
        job.message = "Running"
        self._publish(job, persist=True)
        joblog.started(job)
        loop = self._loop_or_fail()
        began = loop.time()
        result: dict[str, Any] | None = None
        error: JobError | None = None
        try:
            result = await registration.func(context)
            if not isinstance(result, dict):
                raise TypeError(f"job function for {job.kind} returned {type(result).__name__}, not dict")
            status = JobStatus.COMPLETED
        except JobCancelled:
            status = JobStatus.CANCELLED
        except JobFailed as exc:
            status, error = JobStatus.FAILED, exc.error
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # close() gave up waiting. The store keeps "running", so the next start runs the
                # kind's cleanup and records the same failure this reports now.
                self._end_run(job, context)
                self._finish(job, JobStatus.FAILED, error=copy.deepcopy(INTERRUPTED_ERROR), persist=False)
                raise
            log.error("job %s (%s) was cancelled from inside", job.id, job.kind)
            status, error = JobStatus.FAILED, copy.deepcopy(INTERNAL_ERROR)
        except Exception:
            log.exception("job %s (%s) on %s failed unexpectedly", job.id, job.kind, job.wallet_path)
            status, error = JobStatus.FAILED, copy.deepcopy(INTERNAL_ERROR)
        self._avg_run_s = 0.8 * self._avg_run_s + 0.2 * (loop.time() - began)
        self._end_run(job, context)
        self._finish(job, status, result=result, error=error)

    def _end_run(self, job: Job, context: JobContext) -> None:
        self._running.pop(job.id, None)
        self._apply_report(job, context._close(), publish=False)

    # -- state changes ------------------------------------------------------------------------

    def _apply_report(self, job: Job, values: dict[str, Any], *, publish: bool) -> None:
        if job.status is not JobStatus.RUNNING:
            return
        changed = False
        for name, value in values.items():
            if getattr(job, name) != value:
                setattr(job, name, value)
                changed = True
        progress = _percent(job)
        if progress > job.progress:
            job.progress = progress
            changed = True
        if changed and publish:
            self._publish(job, persist=False)

    def _finish(
        self,
        job: Job,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: JobError | None = None,
        persist: bool = True,
    ) -> None:
        assert status.finished and not job.status.finished
        job.status = status
        job.finished_at = utcnow()
        job.cancellable = False
        if status is JobStatus.COMPLETED:
            job.progress = 100
            job.result = result
            job.message = _message_of(result, "Completed")
        elif status is JobStatus.FAILED:
            job.error = error
            job.message = _message_of(error["body"] if error else None, "Failed")
        else:
            job.message = "Cancelled"
        self._publish(job, persist=persist)
        joblog.finished(job)
        self._wake(self._finished, job.id)

    def _publish(self, job: Job, *, persist: bool) -> None:
        job.seq += 1
        if persist:
            self._store.put(job)
        self._wake(self._changed, job.id)

    def move_wallet(self, job_id: str, old_path: str, new_path: str) -> None:
        if old_path == new_path:
            return
        lane = self._lanes.pop(old_path, None) or deque()
        # A rename names one folder: it stays on the path it named (and fails there with the seed's
        # 404); the other kinds act on the wallet, wherever it now is.
        moved = deque(job for job in lane if self._registry[job.kind].follows_wallet)
        staying = deque(job for job in lane if not self._registry[job.kind].follows_wallet)
        if staying:
            self._lanes[old_path] = staying
        if moved:
            for job in moved:
                job.wallet_path = new_path
                if "wallet_path" in job.params:
                    job.params = {**job.params, "wallet_path": new_path}
                self._publish(job, persist=True)
            waiting = self._lanes.get(new_path)
            if waiting:
                # sorted() is stable: on equal times the jobs already on new_path stay first.
                moved = deque(sorted([*waiting, *moved], key=lambda queued: queued.created_at))
            self._lanes[new_path] = moved
        if self._lane_of.get(job_id) == old_path:
            # The mover keeps the lane, now under its new name, until it finishes.
            self._lane_of[job_id] = new_path
            self._release(old_path)
            self._occupy(new_path)
        self._make_ready(new_path)
        self._make_ready(old_path)

    # -- history ------------------------------------------------------------------------------

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._history.append(job.id)
        if job.idempotency_key is not None:
            self._idempotency[job.idempotency_key] = job.id

    def _forget(self, job: Job) -> None:
        """Drop a job that never came to exist (its save failed)."""
        self._jobs.pop(job.id, None)
        try:
            self._history.remove(job.id)
        except ValueError:
            pass
        if job.idempotency_key is not None and self._idempotency.get(job.idempotency_key) == job.id:
            del self._idempotency[job.idempotency_key]

    async def find_idempotent(self, key: str, fingerprint: str) -> Job | None:
        """The job made within 24 h for `key`, once it is saved; None if there is none.

        IdempotencyMismatch when it was made for another request (method, path or parameters):
        a retry must never be answered with somebody else's result. A job stored before
        fingerprints were kept matches any request, as it did then.
        """
        job = self._jobs.get(self._idempotency.get(key, ""))
        if job is None or utcnow() - job.created_at > IDEMPOTENCY_WINDOW:
            return None
        if job.idempotency_fingerprint is not None and job.idempotency_fingerprint != fingerprint:
            raise IdempotencyMismatch(key)
        saving = self._saving.get(job.id)
        if saving is not None:
            await asyncio.shield(saving)  # raises StoreUnavailable as it does for the first caller
        return job

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs past the store's count or age limits, as a restart would."""
        cutoff = utcnow() - timedelta(days=self._store.keep_days)
        while self._history:
            job = self._jobs.get(self._history[0])
            if job is None:
                self._history.popleft()
                continue
            if not job.status.finished or job.finished_at is None:
                return
            if len(self._jobs) <= self._store.keep_max and job.finished_at >= cutoff:
                return
            self._history.popleft()
            del self._jobs[job.id]
            if job.idempotency_key is not None and self._idempotency.get(job.idempotency_key) == job.id:
                del self._idempotency[job.idempotency_key]
            self._store.delete(job.id)

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
        self._apply_report(job, values, publish=True)

    def _loop_or_fail(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("job runner not started")
        return self._loop


def request_fingerprint(*parts: Any) -> str:
    """A short digest of what a request asked for (JSON-able parts), to tell a retry from another request."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a save's outcome as seen (the runner handles it; asyncio need not warn about it)."""
    if not task.cancelled():
        task.exception()


def _percent(job: Job) -> int:
    """Progress from bytes when known, else from items; capped at 99 until the job completes."""
    if job.bytes_total > 0:
        percent = job.bytes_done * 100 // job.bytes_total
    elif job.total > 0:
        percent = job.done * 100 // job.total
    else:
        return 0
    return max(0, min(99, percent))


def _message_of(body: Any, default: str) -> str:
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                return body[key]
    return default
