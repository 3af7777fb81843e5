"""The job runner: lifecycle, ordering, the queue bound, progress, cancelling, watching, restart, shutdown."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs.context import JobContext
from jobs.errors import (
    INTERRUPTED_MESSAGE,
    IdempotencyMismatch,
    JobNotCancellable,
    JobNotFound,
    QueueFull,
    RunnerClosed,
    StoreUnavailable,
)
from jobs.models import Job, JobCancelled, JobFailed, JobKind, JobStatus, utcnow
from jobs.runner import JobRunner
from jobs.store import JobStore

THREAD_PREFIX = "test-jobs"


class Script:
    """Job functions driven by the test: each job's ``name`` param picks its gate; a log records what ran."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.started: dict[str, asyncio.Event] = {}
        self.contexts: dict[str, JobContext] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def started_event(self, name: str) -> asyncio.Event:
        return self.started.setdefault(name, asyncio.Event())

    async def gated(self, ctx: JobContext) -> dict[str, Any]:
        """Runs until the test opens its gate (jobs without a gate sleep ``sleep`` seconds)."""
        name = ctx.job.params["name"]
        self.contexts[name] = ctx
        self.log.append(("start", name))
        self.started_event(name).set()
        if name in self.gates:
            await self.gates[name].wait()
        else:
            await asyncio.sleep(ctx.job.params.get("sleep", 0))
        self.log.append(("end", name))
        return {"success": True, "name": name, "wallet_path": ctx.job.wallet_path}


@pytest.fixture
def executor() -> Any:
    pool = ThreadPoolExecutor(4, thread_name_prefix=THREAD_PREFIX)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def script() -> Script:
    return Script()


MakeRunner = Callable[..., Awaitable[JobRunner]]


@pytest.fixture
async def make_runner(tmp_path: Path, executor: ThreadPoolExecutor, script: Script) -> AsyncIterator[MakeRunner]:
    runners: list[JobRunner] = []

    async def make(
        *,
        workers: int = 2,
        max_queued: int = 1000,
        directory: Path | None = None,
        funcs: dict[JobKind, Any] | None = None,
        cleanups: dict[JobKind, Any] | None = None,
        uncancellable: tuple[JobKind, ...] = (),
        keep_max: int = 10_000,
    ) -> JobRunner:
        store = JobStore(directory or tmp_path / "jobs", keep_max=keep_max)
        runner = JobRunner(store, executor=executor, workers=workers, max_queued=max_queued)
        for kind in JobKind:
            func = (funcs or {}).get(kind, script.gated)
            runner.register(kind, func, cleanup=(cleanups or {}).get(kind), cancellable=kind not in uncancellable)
        runners.append(runner)
        await runner.start()
        return runner

    yield make
    for runner in runners:
        await runner.close(timeout=2)


async def submit(
    runner: JobRunner, name: str, wallet: str = "/w/A", kind: JobKind = JobKind.BACKUP, **params: Any
) -> Job:
    return await runner.submit(kind, wallet_path=wallet, params={"name": name, **params})


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def collect(runner: JobRunner, job_id: str, *, after: int = 0) -> list[Job]:
    return await collect_stream(runner.events(job_id, after=after))


async def collect_stream(stream: AsyncIterator[Job | None]) -> list[Job]:
    return [job async for job in stream if job is not None]


# -- lifecycle -------------------------------------------------------------------------------


async def test_job_goes_queued_running_completed_and_never_changes_after(
    make_runner: MakeRunner, script: Script
) -> None:
    runner = await make_runner()
    script.gate("a")
    job = await submit(runner, "a")
    assert job.status is JobStatus.QUEUED and job.progress == 0 and job.started_at is None
    stream = runner.events(job.id)
    seen = [await anext(stream)]  # the current state, at once
    watcher = asyncio.create_task(collect_stream(stream))
    await script.started_event("a").wait()
    assert runner.get(job.id).status is JobStatus.RUNNING and job.started_at is not None
    script.gate("a").set()
    finished = await runner.wait(job.id, 2)
    seen += await watcher

    assert [s.status for s in seen] == [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED]
    assert finished.status is JobStatus.COMPLETED
    assert finished.progress == 100
    assert finished.result == {"success": True, "name": "a", "wallet_path": "/w/A"}
    assert finished.error is None and finished.finished_at is not None
    final = finished.to_json()
    await asyncio.sleep(0.05)
    with pytest.raises(JobNotCancellable):
        await runner.cancel(job.id)
    assert runner.get(job.id).to_json() == final


async def test_same_wallet_jobs_run_one_at_a_time_in_submission_order(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner(workers=4)
    jobs = [await submit(runner, f"a{i}", sleep=0.02) for i in range(4)]
    for job in jobs:
        await runner.wait(job.id, 5)
    assert script.log == [(edge, f"a{i}") for i in range(4) for edge in ("start", "end")]
    for earlier, later in zip(jobs, jobs[1:]):
        assert earlier.finished_at is not None and later.started_at is not None
        assert earlier.finished_at <= later.started_at


async def test_different_wallets_run_in_parallel_up_to_workers(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner(workers=2)
    for name in "abc":
        script.gate(name)
    a = await submit(runner, "a", "/w/A")
    b = await submit(runner, "b", "/w/B")
    c = await submit(runner, "c", "/w/C")
    await script.started_event("a").wait()
    await script.started_event("b").wait()
    await asyncio.sleep(0.05)
    # Both workers are busy: A and B overlap, C waits for a free worker.
    assert script.log == [("start", "a"), ("start", "b")]
    assert runner.counts() == {"queued": 1, "running": 2}
    assert c.status is JobStatus.QUEUED
    script.gate("b").set()
    await script.started_event("c").wait()
    assert script.log == [("start", "a"), ("start", "b"), ("end", "b"), ("start", "c")]
    script.gate("a").set()
    script.gate("c").set()
    for job in (a, b, c):
        assert (await runner.wait(job.id, 2)).status is JobStatus.COMPLETED
    assert runner.counts() == {"queued": 0, "running": 0}


async def test_a_busy_wallet_does_not_hold_up_other_wallets(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner(workers=2)
    script.gate("a1")
    await submit(runner, "a1", "/w/A")
    await submit(runner, "a2", "/w/A")
    b = await submit(runner, "b", "/w/B")
    assert (await runner.wait(b.id, 2)).status is JobStatus.COMPLETED
    assert ("start", "a2") not in script.log
    script.gate("a1").set()


async def test_queue_is_bounded(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner(workers=1, max_queued=3)
    script.gate("running")
    await submit(runner, "running")
    await script.started_event("running").wait()
    queued = [await submit(runner, f"q{i}") for i in range(3)]
    with pytest.raises(QueueFull) as refused:
        await submit(runner, "one too many")
    assert refused.value.retry_after >= 1
    assert runner.counts() == {"queued": 3, "running": 1}
    await runner.cancel(queued[0].id)
    assert (await submit(runner, "fits again")).status is JobStatus.QUEUED
    script.gate("running").set()


async def test_unknown_job_is_not_found(make_runner: MakeRunner) -> None:
    runner = await make_runner()
    with pytest.raises(JobNotFound):
        runner.get("nope")
    with pytest.raises(JobNotFound):
        await runner.cancel("nope")
    with pytest.raises(JobNotFound):
        await runner.wait("nope", 0.1)


# -- progress --------------------------------------------------------------------------------


async def test_progress_never_decreases_and_reaches_100_only_on_completion(make_runner: MakeRunner) -> None:
    steps = asyncio.Queue[tuple[dict[str, Any], asyncio.Event]]()

    async def stepping(ctx: JobContext) -> dict[str, Any]:
        while True:
            values, applied = await steps.get()
            if not values:
                return {"success": True}
            ctx.report(**values)
            await asyncio.sleep(0.12)  # past the throttle: each step is published
            applied.set()

    runner = await make_runner(funcs={JobKind.BACKUP: stepping})
    job = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})
    progress: list[int] = []

    async def step(**values: Any) -> int:
        applied = asyncio.Event()
        await steps.put((values, applied))
        await applied.wait()
        progress.append(job.progress)
        return job.progress

    assert await step(done=10, total=40, message="Archiving") == 25
    assert job.message == "Archiving" and job.done == 10 and job.total == 40
    assert await step(done=5) == 25  # a smaller count never lowers progress
    assert await step(done=40) == 99  # all items done, but not completed yet
    assert await step(bytes_done=10, bytes_total=100) == 99  # bytes take over; still never lower
    assert await step(bytes_done=100, done=40) == 99
    await steps.put(({}, asyncio.Event()))
    assert (await runner.wait(job.id, 2)).progress == 100
    assert progress == sorted(progress)


async def test_report_from_a_worker_thread_is_published_and_throttled(make_runner: MakeRunner) -> None:
    threads: set[str] = set()

    def archive(ctx: JobContext, files: int) -> int:
        threads.add(threading.current_thread().name)
        for n in range(1, files + 1):
            ctx.check_cancelled()
            ctx.report(done=n, total=files, message=f"Archiving ({n} of {files} files)")
            time.sleep(0.0005)
        return files

    async def backup(ctx: JobContext) -> dict[str, Any]:
        files = await ctx.run_blocking(archive, ctx, 400)
        return {"success": True, "files": files}

    runner = await make_runner(funcs={JobKind.BACKUP: backup})
    job = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})
    began = time.monotonic()
    seen = await collect(runner, job.id)
    elapsed = time.monotonic() - began

    assert len(threads) == 1 and threads.pop().startswith(THREAD_PREFIX)  # the runner's pool, not the default
    updates = [s for s in seen if s.status is JobStatus.RUNNING and s.done > 0]
    assert updates, "progress from the thread was never published"
    assert all(s.progress == min(99, s.done * 100 // 400) for s in updates)
    assert [s.progress for s in seen] == sorted(s.progress for s in seen)
    # at most ~10 progress events per second (plus the first, immediate one)
    assert len(updates) <= elapsed * 10 + 2
    assert seen[-1].status is JobStatus.COMPLETED and seen[-1].done == 400 and seen[-1].progress == 100


# -- failures --------------------------------------------------------------------------------


async def test_job_failed_keeps_its_http_status_and_body(make_runner: MakeRunner) -> None:
    body = {"error": True, "message": "Destination directory does not exist", "code": 400}

    async def failing(ctx: JobContext) -> dict[str, Any]:
        raise JobFailed(400, body)

    runner = await make_runner(funcs={JobKind.BACKUP: failing})
    job = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})
    done = await runner.wait(job.id, 2)
    assert done.status is JobStatus.FAILED
    assert done.error == {"http_status": 400, "body": body}
    assert done.result is None and done.progress < 100
    assert done.message == "Destination directory does not exist"
    assert done.to_json()["error"] == {"http_status": 400, "body": body}


async def test_unexpected_exception_is_a_500_and_is_logged(
    make_runner: MakeRunner, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(ctx: JobContext) -> dict[str, Any]:
        await ctx.run_blocking(lambda: 1 / 0)
        return {}

    runner = await make_runner(funcs={JobKind.BACKUP: broken})
    with caplog.at_level(logging.ERROR, logger="jobs.endings"):
        job = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})
        done = await runner.wait(job.id, 2)
    assert done.status is JobStatus.FAILED
    assert done.error == {
        "http_status": 500,
        "body": {"success": False, "error": "Internal server error", "code": 500},
    }
    [record] = [r for r in caplog.records if job.id in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    # The runner carries on with the next job.
    again = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})
    assert (await runner.wait(again.id, 2)).status is JobStatus.FAILED


async def test_a_result_that_is_not_a_dict_is_a_500(make_runner: MakeRunner, caplog: pytest.LogCaptureFixture) -> None:
    async def sloppy(ctx: JobContext) -> Any:
        return ["not", "a", "dict"]

    runner = await make_runner(funcs={JobKind.VERIFY: sloppy})
    with caplog.at_level(logging.ERROR, logger="jobs.endings"):
        job = await runner.submit(JobKind.VERIFY, wallet_path="/w/A", params={})
        done = await runner.wait(job.id, 2)
    assert done.status is JobStatus.FAILED and done.error is not None and done.error["http_status"] == 500


# -- cancelling ------------------------------------------------------------------------------


async def test_cancelled_queued_job_never_runs(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner(workers=1)
    script.gate("first")
    first = await submit(runner, "first")
    second = await submit(runner, "second")
    third = await submit(runner, "third")
    await script.started_event("first").wait()
    cancelled = await runner.cancel(second.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None
    assert runner.counts()["queued"] == 1
    script.gate("first").set()
    assert (await runner.wait(third.id, 2)).status is JobStatus.COMPLETED
    assert first.status is JobStatus.COMPLETED
    assert ("start", "second") not in script.log
    assert second.status is JobStatus.CANCELLED and second.started_at is None


async def test_cancel_of_running_job_stops_it_in_its_thread_and_it_cleans_up(
    make_runner: MakeRunner, tmp_path: Path
) -> None:
    partial = tmp_path / "backup.zip.part"
    in_thread = threading.Event()

    def archive(ctx: JobContext) -> None:
        partial.write_bytes(b"PK")
        try:
            while True:
                in_thread.set()
                ctx.check_cancelled()
                time.sleep(0.005)
        except JobCancelled:
            partial.unlink()
            raise

    async def backup(ctx: JobContext) -> dict[str, Any]:
        await ctx.run_blocking(archive, ctx)
        return {"success": True}

    runner = await make_runner(funcs={JobKind.BACKUP: backup})
    job = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})
    await asyncio.get_running_loop().run_in_executor(None, in_thread.wait, 2)
    answer = await runner.cancel(job.id)
    assert answer is job and answer.status is JobStatus.RUNNING  # it stops at its next check
    done = await runner.wait(job.id, 2)
    assert done.status is JobStatus.CANCELLED
    assert done.error is None and done.result is None
    assert not partial.exists()
    with pytest.raises(JobNotCancellable):
        await runner.cancel(job.id)


async def test_cancel_of_finished_job_is_not_cancellable(make_runner: MakeRunner) -> None:
    runner = await make_runner()
    job = await submit(runner, "quick")
    await runner.wait(job.id, 2)
    with pytest.raises(JobNotCancellable) as refused:
        await runner.cancel(job.id)
    assert refused.value.job is job and job.status is JobStatus.COMPLETED


async def test_cancel_after_forbid_cancel_is_refused_and_the_job_completes(make_runner: MakeRunner) -> None:
    moving = threading.Event()
    release = threading.Event()

    def move_folder(ctx: JobContext) -> None:
        ctx.check_cancelled()
        ctx.forbid_cancel()
        moving.set()
        release.wait(2)

    async def rename(ctx: JobContext) -> dict[str, Any]:
        await ctx.run_blocking(move_folder, ctx)
        return {"success": True, "command": "wallet-rename"}

    runner = await make_runner(funcs={JobKind.RENAME: rename})
    job = await runner.submit(JobKind.RENAME, wallet_path="/w/A", params={})
    await asyncio.get_running_loop().run_in_executor(None, moving.wait, 2)
    with pytest.raises(JobNotCancellable) as refused:
        await runner.cancel(job.id)
    assert refused.value.job is job
    release.set()
    assert (await runner.wait(job.id, 2)).status is JobStatus.COMPLETED


async def test_forbid_cancel_after_a_cancel_raises_cancelled(make_runner: MakeRunner) -> None:
    started = asyncio.Event()
    go = asyncio.Event()
    moved: list[bool] = []

    async def rename(ctx: JobContext) -> dict[str, Any]:
        started.set()
        await go.wait()
        ctx.forbid_cancel()  # the cancel came first: no folder is moved
        moved.append(True)
        return {"success": True}

    runner = await make_runner(funcs={JobKind.RENAME: rename})
    job = await runner.submit(JobKind.RENAME, wallet_path="/w/A", params={})
    await started.wait()
    await runner.cancel(job.id)
    go.set()
    assert (await runner.wait(job.id, 2)).status is JobStatus.CANCELLED
    assert moved == []


async def test_running_job_of_an_uncancellable_kind_is_not_cancellable(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner(uncancellable=(JobKind.RENAME,), workers=1)
    script.gate("r")
    running = await submit(runner, "r", kind=JobKind.RENAME)
    queued = await submit(runner, "q", kind=JobKind.RENAME)
    await script.started_event("r").wait()
    with pytest.raises(JobNotCancellable):
        await runner.cancel(running.id)
    assert (await runner.cancel(queued.id)).status is JobStatus.CANCELLED  # not started yet: it may go
    script.gate("r").set()
    assert (await runner.wait(running.id, 2)).status is JobStatus.COMPLETED


# -- waiting and events ----------------------------------------------------------------------


async def test_wait_returns_the_unfinished_job_when_the_timeout_elapses(
    make_runner: MakeRunner, script: Script
) -> None:
    runner = await make_runner()
    script.gate("slow")
    job = await submit(runner, "slow")
    began = time.monotonic()
    answer = await runner.wait(job.id, 0.1)
    assert 0.09 <= time.monotonic() - began < 1
    assert answer is job and answer.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert (await runner.wait(job.id, 0)).status is not JobStatus.COMPLETED
    script.gate("slow").set()


async def test_wait_returns_as_soon_as_the_job_finishes(make_runner: MakeRunner) -> None:
    runner = await make_runner()
    job = await submit(runner, "quick", sleep=0.05)
    began = time.monotonic()
    answer = await runner.wait(job.id, 10)
    assert time.monotonic() - began < 1
    assert answer.status is JobStatus.COMPLETED
    assert (await runner.wait(job.id, None)) is answer


async def test_a_cancelled_waiter_does_not_cancel_the_job(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner()
    script.gate("long")
    job = await submit(runner, "long")
    waiters = [asyncio.create_task(runner.wait(job.id, 10)) for _ in range(2)]
    await script.started_event("long").wait()
    waiters[0].cancel()  # a client disconnects
    with pytest.raises(asyncio.CancelledError):
        await waiters[0]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(runner.wait(job.id, 10), 0.05)  # and another times out
    assert job.status is JobStatus.RUNNING
    script.gate("long").set()
    assert (await waiters[1]).status is JobStatus.COMPLETED


async def test_events_send_current_state_then_changes_then_the_final_one(
    make_runner: MakeRunner, script: Script
) -> None:
    runner = await make_runner()
    script.gate("a")
    job = await submit(runner, "a")
    await script.started_event("a").wait()
    stream = runner.events(job.id)
    first = await anext(stream)
    assert first is not None and first.status is JobStatus.RUNNING and first.seq == job.seq
    script.contexts["a"].report(done=1, total=2, message="Half way")
    second = await anext(stream)
    assert second is not None and second.progress == 50 and second.seq > first.seq
    assert first.progress == 0  # snapshots: earlier events are not rewritten
    script.gate("a").set()
    rest = [s async for s in stream]
    assert [s.status for s in rest if s is not None] == [JobStatus.COMPLETED]


async def test_events_resume_after_a_given_sequence_number(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner()
    script.gate("a")
    job = await submit(runner, "a")
    await script.started_event("a").wait()
    running_seq = job.seq
    # A reconnect with Last-Event-ID = the current seq: nothing until the next change.
    resumed = asyncio.create_task(collect(runner, job.id, after=running_seq))
    await asyncio.sleep(0.05)
    assert not resumed.done()
    script.gate("a").set()
    seen = await resumed
    assert [s.status for s in seen] == [JobStatus.COMPLETED]
    assert all(s.seq > running_seq for s in seen)
    # After the final event there is nothing left: the stream ends at once.
    assert await asyncio.wait_for(collect(runner, job.id, after=job.seq), 1) == []
    # From an older id it sends the final state once.
    assert [s.seq for s in await collect(runner, job.id, after=running_seq)] == [job.seq]


async def test_events_coalesce_for_a_slow_consumer(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner()
    script.gate("a")
    job = await submit(runner, "a")
    await script.started_event("a").wait()
    stream = runner.events(job.id)
    await anext(stream)
    for n in range(1, 4):
        script.contexts["a"].report(done=n, total=10)
        await asyncio.sleep(0.12)
    latest = await anext(stream)  # three changes happened; the consumer gets the latest state
    assert latest is not None and latest.done == 3 and latest.seq == job.seq
    script.gate("a").set()
    assert [s.status for s in [s async for s in stream] if s is not None] == [JobStatus.COMPLETED]


async def test_events_yield_none_on_keepalive(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner()
    script.gate("a")
    job = await submit(runner, "a")
    stream = runner.events(job.id, keepalive=0.05)
    assert (await anext(stream)) is not None
    await script.started_event("a").wait()
    items = [await anext(stream) for _ in range(3)]
    assert items[0] is not None and items[0].status is JobStatus.RUNNING
    assert items[1:] == [None, None]
    script.gate("a").set()
    await stream.aclose()


# -- idempotency and wallet moves ------------------------------------------------------------


async def test_same_idempotency_key_returns_the_same_job(make_runner: MakeRunner) -> None:
    runner = await make_runner()
    first = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "a"}, idempotency_key="k1")
    again = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "a"}, idempotency_key="k1")
    assert again is first
    other_key = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "a"}, idempotency_key="k2")
    assert other_key.id != first.id
    # The same key for another request (kind, wallet or parameters) is refused and makes no job.
    for kind, wallet, params in (
        (JobKind.VERIFY, "/w/A", {"name": "a"}),
        (JobKind.BACKUP, "/w/B", {"name": "a"}),
        (JobKind.BACKUP, "/w/A", {}),
    ):
        with pytest.raises(IdempotencyMismatch):
            await runner.submit(kind, wallet_path=wallet, params=params, idempotency_key="k1")
    assert len(runner.list()) == 2
    await runner.wait(first.id, 2)
    # After it finished, still the same job (a retry must not back up twice) ...
    assert await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "a"}, idempotency_key="k1") is first
    with pytest.raises(IdempotencyMismatch):
        await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={}, idempotency_key="k1")
    # ... but not after 24 hours.
    first.created_at -= timedelta(hours=25)
    fresh = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "b"}, idempotency_key="k1")
    assert fresh is not first


async def test_idempotency_key_survives_a_restart(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = await make_runner(directory=tmp_path / "j")
    first = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "a"}, idempotency_key="k")
    await runner.wait(first.id, 2)
    await runner.close()
    again = await make_runner(directory=tmp_path / "j")
    assert (
        await again.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "a"}, idempotency_key="k")
    ).id == first.id
    with pytest.raises(IdempotencyMismatch):
        await again.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "b"}, idempotency_key="k")


async def test_move_wallet_retargets_queued_jobs_and_their_lane(make_runner: MakeRunner, script: Script) -> None:
    renamed = asyncio.Event()
    finish_rename = asyncio.Event()

    async def rename(ctx: JobContext) -> dict[str, Any]:
        ctx.forbid_cancel()
        await ctx.run_blocking(ctx.move_wallet, "/w/Old", "/w/New")  # called from the thread
        renamed.set()
        await finish_rename.wait()
        return {"success": True}

    runner = await make_runner(funcs={JobKind.RENAME: rename}, workers=2)
    script.gate("on-new")
    on_new = await submit(runner, "on-new", "/w/New")
    rename_job = await runner.submit(JobKind.RENAME, wallet_path="/w/Old", params={"wallet_path": "/w/Old"})
    backup = await submit(runner, "backup", "/w/Old", wallet_path="/w/Old", destination="/b")
    await renamed.wait()

    assert backup.status is JobStatus.QUEUED
    assert backup.wallet_path == "/w/New"
    assert backup.params == {"name": "backup", "wallet_path": "/w/New", "destination": "/b"}
    assert rename_job.wallet_path == "/w/Old"  # the rename itself still reads as a job on its source
    assert runner.list(wallet_path="/w/Old", status="queued") == []
    assert runner.list(wallet_path="/w/New", status="queued") == [backup]
    # The lane followed: nothing more starts on /w/New while the rename runs, then FIFO by submission.
    script.gate("on-new").set()
    await runner.wait(on_new.id, 2)
    await asyncio.sleep(0.05)
    assert ("start", "backup") not in script.log
    finish_rename.set()
    done = await runner.wait(backup.id, 2)
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"success": True, "name": "backup", "wallet_path": "/w/New"}
    assert script.log.index(("end", "on-new")) < script.log.index(("start", "backup"))


# -- listing ---------------------------------------------------------------------------------


async def test_list_is_newest_first_with_filters_and_limit(make_runner: MakeRunner, script: Script) -> None:
    runner = await make_runner(workers=1)
    script.gate("a")
    a = await submit(runner, "a", "/w/A")
    b = await submit(runner, "b", "/w/B", kind=JobKind.VERIFY)
    c = await submit(runner, "c", "/w/A")
    await script.started_event("a").wait()
    assert runner.list() == [c, b, a]
    assert runner.list(limit=2) == [c, b]
    assert runner.list(limit=0) == []
    assert runner.list(status="queued") == [c, b]
    assert runner.list(status="running") == [a]
    assert runner.list(kind="backup-verify") == [b]
    assert runner.list(wallet_path="/w/A", status="queued") == [c]
    script.gate("a").set()


# -- restart ---------------------------------------------------------------------------------


async def test_restart_fails_interrupted_jobs_and_runs_their_cleanup(
    make_runner: MakeRunner, tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    directory = tmp_path / "jobs"
    queued = Job.new(JobKind.BACKUP, wallet_path="/w/A", params={"destination": "/b"})
    running = Job.new(JobKind.RESTORE, wallet_path="/w/R", params={})
    running.status, running.started_at, running.progress = JobStatus.RUNNING, utcnow(), 40
    finished = Job.new(JobKind.BACKUP, wallet_path="/w/B", params={})
    finished.status, finished.finished_at, finished.result = JobStatus.COMPLETED, utcnow(), {"success": True}
    store = JobStore(directory)
    await store.open(executor)
    for job in (queued, running, finished):
        store.put(job)
    await store.close()  # as a killed server left it

    cleaned: list[tuple[str, str]] = []

    def cleanup(job: Job) -> None:
        assert threading.current_thread().name.startswith(THREAD_PREFIX)
        cleaned.append((job.id, str(job.status)))

    cleanups = {JobKind.BACKUP: cleanup, JobKind.RESTORE: cleanup}
    runner = await make_runner(directory=directory, cleanups=cleanups)
    assert sorted(cleaned) == sorted([(queued.id, "queued"), (running.id, "running")])
    for job_id in (queued.id, running.id):
        job = runner.get(job_id)
        assert job.status is JobStatus.FAILED and job.finished_at is not None
        assert job.message == INTERRUPTED_MESSAGE
        assert job.error == {
            "http_status": 500,
            "body": {"success": False, "error": "Interrupted by server restart", "code": 500},
        }
    assert runner.get(finished.id).to_json() == finished.to_json()
    assert runner.counts() == {"queued": 0, "running": 0}
    assert runner.list() == [runner.get(finished.id), runner.get(running.id), runner.get(queued.id)]
    await runner.close()

    # Settled once: the next start finds them failed and cleans nothing again.
    cleaned.clear()
    again = await make_runner(directory=directory, cleanups=cleanups)
    assert cleaned == []
    assert again.get(running.id).status is JobStatus.FAILED


async def test_history_is_pruned_in_memory_past_the_count_limit(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = await make_runner(keep_max=3, directory=tmp_path / "j")
    jobs = []
    for n in range(5):
        jobs.append(await submit(runner, f"j{n}", f"/w/{n}"))
        await runner.wait(jobs[-1].id, 2)
    assert runner.list() == jobs[:1:-1]
    with pytest.raises(JobNotFound):
        runner.get(jobs[0].id)
    await runner.close()
    reloaded = await make_runner(keep_max=3, directory=tmp_path / "j")
    assert [job.id for job in reloaded.list()] == [job.id for job in jobs[:1:-1]]


# -- shutdown --------------------------------------------------------------------------------


async def test_close_cancels_queued_and_running_awaits_uncancellable_and_leaves_no_task(
    make_runner: MakeRunner, tmp_path: Path, executor: ThreadPoolExecutor, script: Script
) -> None:
    cleaned_up = threading.Event()
    renaming = asyncio.Event()
    rename_may_finish = asyncio.Event()
    in_thread = threading.Event()

    def archive(ctx: JobContext) -> None:
        try:
            while True:
                in_thread.set()
                ctx.check_cancelled()
                time.sleep(0.005)
        except JobCancelled:
            cleaned_up.set()
            raise

    async def backup(ctx: JobContext) -> dict[str, Any]:
        await ctx.run_blocking(archive, ctx)
        return {"success": True}

    async def rename(ctx: JobContext) -> dict[str, Any]:
        ctx.forbid_cancel()
        renaming.set()
        await rename_may_finish.wait()
        await asyncio.sleep(0.1)
        return {"success": True, "command": "wallet-rename"}

    directory = tmp_path / "jobs"
    runner = await make_runner(directory=directory, funcs={JobKind.BACKUP: backup, JobKind.RENAME: rename})
    backing_up = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})
    renamed = await runner.submit(JobKind.RENAME, wallet_path="/w/B", params={})
    queued = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})
    await renaming.wait()
    await asyncio.get_running_loop().run_in_executor(None, in_thread.wait, 2)
    watcher = asyncio.create_task(collect(runner, renamed.id))

    closing = asyncio.create_task(runner.close(timeout=5))
    await asyncio.sleep(0.05)
    with pytest.raises(RunnerClosed):
        await runner.submit(JobKind.BACKUP, wallet_path="/w/C", params={})
    assert issubclass(RunnerClosed, QueueFull)
    assert not closing.done()  # the rename is past its point of no return: close waits for it
    rename_may_finish.set()
    await closing
    await runner.close()  # idempotent

    assert queued.status is JobStatus.CANCELLED
    assert backing_up.status is JobStatus.CANCELLED and cleaned_up.is_set()
    assert renamed.status is JobStatus.COMPLETED
    assert (await watcher)[-1].status is JobStatus.COMPLETED
    assert asyncio.all_tasks() == {asyncio.current_task()}

    reloaded = JobStore(directory)
    try:
        stored = {job.id: job for job in reloaded.load_sync()}
    finally:
        reloaded.close_sync()
    assert {job_id: job.status for job_id, job in stored.items()} == {
        backing_up.id: JobStatus.CANCELLED,
        renamed.id: JobStatus.COMPLETED,
        queued.id: JobStatus.CANCELLED,
    }
    assert stored[renamed.id] == renamed


async def test_close_interrupts_a_job_that_ignores_its_cancel_and_the_restart_cleans_it(
    make_runner: MakeRunner, tmp_path: Path
) -> None:
    started = asyncio.Event()

    async def stubborn(ctx: JobContext) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(30)  # never checks cancel_event
        return {}

    cleaned: list[str] = []
    directory = tmp_path / "jobs"
    runner = await make_runner(directory=directory, funcs={JobKind.RESTORE: stubborn})
    job = await runner.submit(JobKind.RESTORE, wallet_path="/w/A", params={})
    waiter = asyncio.create_task(runner.wait(job.id, None))
    await started.wait()
    began = time.monotonic()
    await runner.close(timeout=0.2)
    assert time.monotonic() - began < 2
    assert waiter.done()  # the job reached a final state, so its waiters were released
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert (await waiter).status is JobStatus.FAILED
    assert job.message == INTERRUPTED_MESSAGE

    # The store still says "running": the next start cleans up after it.
    again = await make_runner(directory=directory, cleanups={JobKind.RESTORE: lambda j: cleaned.append(j.id)})
    assert cleaned == [job.id]
    assert again.get(job.id).status is JobStatus.FAILED


async def test_close_of_a_runner_never_started_is_harmless(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    runner = JobRunner(JobStore(tmp_path / "jobs"), executor=executor)
    await runner.close()
    with pytest.raises(RunnerClosed):
        await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})


# -- a job exists once it is saved; a restart records what really happened ------------------------------


def stored(directory: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(f"file:{directory / 'jobs.sqlite3'}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT id FROM jobs")}


async def test_submit_returns_once_the_job_is_committed_and_not_before(
    make_runner: MakeRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = JobStore.write_sync

    def slow(self: JobStore, batch: dict[str, Any]) -> None:
        time.sleep(0.2)
        write(self, batch)

    monkeypatch.setattr(JobStore, "write_sync", slow)
    runner = await make_runner(directory=tmp_path / "j")
    jobs = await asyncio.gather(*(submit(runner, f"n{n}", f"/w/{n}") for n in range(20)))
    assert {job.id for job in jobs} <= stored(tmp_path / "j")


async def test_a_job_the_store_cannot_save_never_runs_and_is_forgotten(
    make_runner: MakeRunner, script: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    runner = await make_runner(directory=tmp_path / "j")
    write = JobStore.write_sync

    def full(self: JobStore, batch: dict[str, Any]) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(JobStore, "write_sync", full)
    first = asyncio.ensure_future(
        runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "lost"}, idempotency_key="k")
    )
    await asyncio.sleep(0)
    # A retry with the same key while the first is being saved shares its fate.
    retry = runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={"name": "lost"}, idempotency_key="k")
    for attempt in (first, retry):
        with pytest.raises(StoreUnavailable, match="disk is full"):
            await attempt
    assert runner.list() == [] and runner.counts() == {"queued": 0, "running": 0}
    monkeypatch.setattr(JobStore, "write_sync", write)
    await asyncio.sleep(1.2)  # past the writer's retry
    job = await submit(runner, "next", "/w/A")
    assert (await runner.wait(job.id, 2)).status is JobStatus.COMPLETED
    assert script.log == [("start", "next"), ("end", "next")]  # "lost" never ran
    assert stored(tmp_path / "j") == {job.id}


async def test_restart_completes_a_job_whose_cleanup_found_its_work_finished(
    make_runner: MakeRunner, tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    directory = tmp_path / "jobs"
    done, undone = (Job.new(JobKind.BACKUP, wallet_path=f"/w/{n}", params={}) for n in "AB")
    for job in (done, undone):
        job.status, job.started_at = JobStatus.RUNNING, utcnow()
    store = JobStore(directory)
    await store.open(executor)
    for job in (done, undone):
        store.put(job)
    await store.close()

    def cleanup(job: Job) -> dict[str, Any] | None:
        return (
            {"success": True, "message": "Wallet backup created successfully", "recovered": True}
            if job.id == done.id
            else None
        )

    runner = await make_runner(directory=directory, cleanups={JobKind.BACKUP: cleanup})
    completed = runner.get(done.id)
    assert completed.status is JobStatus.COMPLETED and completed.progress == 100
    assert completed.result == {"success": True, "message": "Wallet backup created successfully", "recovered": True}
    assert completed.message == "Wallet backup created successfully"
    assert runner.get(undone.id).status is JobStatus.FAILED
    await runner.close()
    again = await make_runner(directory=directory)
    assert again.get(done.id).status is JobStatus.COMPLETED


async def test_a_queued_job_of_a_kind_that_names_one_folder_stays_when_the_wallet_moves(
    make_runner: MakeRunner, executor: ThreadPoolExecutor, tmp_path: Path, script: Script
) -> None:
    moved = asyncio.Event()

    async def mover(ctx: JobContext) -> dict[str, Any]:
        if ctx.job.params["name"] == "first":
            await ctx.run_blocking(ctx.move_wallet, "/w/Old", "/w/New")
            moved.set()
        return {"ran_on": ctx.job.wallet_path}

    runner = JobRunner(JobStore(tmp_path / "own"), executor=executor, workers=2)
    runner.register(JobKind.RENAME, mover, follows_wallet=False)
    runner.register(JobKind.BACKUP, script.gated)
    await runner.start()
    try:
        script.gate("hold")
        holder = await submit(runner, "hold", "/w/Old")
        first = await runner.submit(JobKind.RENAME, wallet_path="/w/Old", params={"name": "first"})
        second = await runner.submit(JobKind.RENAME, wallet_path="/w/Old", params={"name": "second"})
        backup = await submit(runner, "backup", "/w/Old")
        script.gate("hold").set()
        for job in (holder, first, second, backup):
            await runner.wait(job.id, 2)
        assert moved.is_set()
        assert second.wallet_path == "/w/Old" and second.result == {"ran_on": "/w/Old"}
        assert backup.wallet_path == "/w/New" and backup.result is not None
        assert backup.result["wallet_path"] == "/w/New"
    finally:
        await runner.close()
