"""The job model's JSON and the job store: round trips, coalesced writes, pruning, failures."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.web.jobhttp import job_json
from jobs import store as store_module
from jobs.models import Job, JobKind, JobStatus, format_time, utcnow
from jobs.store import DB_NAME, JobStore

JOB_JSON_KEYS = [
    "id", "kind", "status", "progress", "message", "phase", "wallet_path", "params", "done", "total",
    "bytes_done", "bytes_total", "created_at", "started_at", "finished_at", "result", "error", "links",
]  # fmt: skip


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2, thread_name_prefix="test-store")
    yield pool
    pool.shutdown(wait=True)


def finished_job(*, days_ago: float = 0, created: datetime | None = None) -> Job:
    job = Job.new(JobKind.BACKUP, wallet_path="/w/A", params={"destination": "/b"})
    when = utcnow() - timedelta(days=days_ago)
    job.created_at = created or when
    job.started_at = job.finished_at = when
    job.status = JobStatus.COMPLETED
    job.progress = 100
    job.result = {"success": True}
    return job


def read_back(directory: Path, **limits: int) -> list[Job]:
    store = JobStore(directory, **limits)
    try:
        return store.load_sync()
    finally:
        store.close_sync()


# -- the model -------------------------------------------------------------------------------


def test_status_finished_is_true_only_for_final_statuses() -> None:
    assert [s for s in JobStatus if s.finished] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]
    assert JobStatus.COMPLETED == "completed" and JobKind.VERIFY == "backup-verify"


def test_job_json_has_exactly_the_documented_shape() -> None:
    job = Job.new(JobKind.RENAME, wallet_path="/w/Default", params={"new_name": "Bank"})
    job.created_at = datetime(2026, 11, 22, 10, 4, 11, 204_999, tzinfo=UTC)
    body = job_json(job)
    assert list(body) == JOB_JSON_KEYS
    assert body["kind"] == "wallet-rename" and body["status"] == "queued"
    assert body["created_at"] == "2026-11-22T10:04:11.204Z"
    assert body["started_at"] is None and body["finished_at"] is None
    assert body["links"] == {
        "self": f"/api/jobs/{job.id}",
        "events": f"/api/jobs/{job.id}/events",
        "cancel": f"/api/jobs/{job.id}/cancel",
    }
    assert re.fullmatch(r"[0-9a-f]{32}", job.id)
    assert json.loads(json.dumps(body)) == body  # plain JSON types only


def test_format_time_is_utc_with_milliseconds_and_z() -> None:
    local = datetime(2026, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC).astimezone()
    assert format_time(local) == "2026-01-02T03:04:05.006Z"
    assert format_time(None) is None


def test_job_record_round_trips_exactly() -> None:
    job = finished_job()
    job.idempotency_key, job.seq, job.cancellable = "key", 7, False
    assert Job.from_json(json.loads(json.dumps(job.to_record()))) == job


# -- the store -------------------------------------------------------------------------------


async def test_put_then_close_then_reopen_gives_the_same_jobs(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    directory = tmp_path / "Client_Data" / "jobs"
    store = JobStore(directory)
    assert await store.open(executor) == []
    jobs = [finished_job(), Job.new(JobKind.VERIFY, wallet_path="/w/B", params={"zip_path": "/b/x.zip"})]
    for job in jobs:
        store.put(job)
    await store.close()
    await store.close()  # idempotent

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in directory.iterdir()] == [DB_NAME]  # the WAL was folded back at close
    again = JobStore(directory)
    assert await again.open(executor) == jobs
    await again.close()


async def test_put_snapshots_the_job_and_the_latest_state_wins(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    store = JobStore(tmp_path)
    await store.open(executor)
    job = Job.new(JobKind.BACKUP, wallet_path="/w/A", params={})
    store.put(job)
    job.status = JobStatus.RUNNING  # changed after put, not put again: not what is written
    await store.flush()
    assert [j.status for j in read_back(tmp_path)] == [JobStatus.QUEUED]
    job.status = JobStatus.COMPLETED
    store.put(job)
    await store.flush()
    assert [j.status for j in read_back(tmp_path)] == [JobStatus.COMPLETED]
    await store.close()


async def test_many_puts_are_coalesced_into_few_transactions(
    tmp_path: Path, executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(tmp_path)
    await store.open(executor)
    batches: list[int] = []
    write = store.write_sync
    monkeypatch.setattr(store, "write_sync", lambda batch: (batches.append(len(batch)), write(batch))[1])
    jobs = [Job.new(JobKind.BACKUP, wallet_path=f"/w/{n}", params={}) for n in range(500)]
    for job in jobs:
        store.put(job)
    for job in jobs:
        job.status = JobStatus.RUNNING
        store.put(job)
    await store.flush()
    await store.close()
    assert sum(batches) == 500 and len(batches) <= 2
    assert {j.status for j in read_back(tmp_path)} == {JobStatus.RUNNING}


async def test_delete_removes_a_job(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    store = JobStore(tmp_path)
    await store.open(executor)
    keep, drop = finished_job(), finished_job()
    store.put(keep)
    store.put(drop)
    store.delete(drop.id)
    await store.close()
    assert read_back(tmp_path) == [keep]


async def test_open_prunes_old_and_surplus_finished_jobs_but_keeps_unfinished(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    store = JobStore(tmp_path)
    await store.open(executor)
    old = finished_job(days_ago=8)
    recent = [finished_job(days_ago=0.01 * n) for n in range(6, 0, -1)]  # oldest first
    stale_running = Job.new(JobKind.RESTORE, wallet_path="/w/R", params={})
    stale_running.created_at = utcnow() - timedelta(days=30)
    stale_running.status = JobStatus.RUNNING
    for job in (old, *recent, stale_running):
        store.put(job)
    await store.close()

    kept = read_back(tmp_path, keep_max=4)
    # Finished: the 4 newest of the recent ones; the 8-day-old one and the 2 oldest recent ones are gone.
    assert [j.id for j in kept if j.status.finished] == [j.id for j in recent[2:]]
    assert [j.id for j in kept if not j.status.finished] == [stale_running.id]
    assert read_back(tmp_path) == kept  # pruning is on disk, not only in the answer


async def test_jobs_load_oldest_first(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    store = JobStore(tmp_path)
    await store.open(executor)
    now = utcnow()
    jobs = [finished_job(created=now - timedelta(seconds=s)) for s in (1, 3, 2)]
    for job in jobs:
        store.put(job)
    await store.close()
    assert [j.id for j in read_back(tmp_path)] == [jobs[1].id, jobs[2].id, jobs[0].id]


async def test_an_unreadable_record_is_skipped(
    tmp_path: Path, executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(tmp_path)
    await store.open(executor)
    good = finished_job()
    store.put(good)
    await store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    with db:
        db.execute("INSERT INTO jobs VALUES ('bad', 0, NULL, '{\"kind\": \"mystery\"}')")
    db.close()
    with caplog.at_level(logging.WARNING, logger="jobs.store"):
        assert read_back(tmp_path) == [good]
    assert "bad" in caplog.text


async def test_a_failed_write_is_logged_and_retried(
    tmp_path: Path, executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "RETRY_DELAY_S", 0.01)
    store = JobStore(tmp_path)
    await store.open(executor)
    write = store.write_sync
    failures = [OSError(28, "No space left on device")]

    def flaky(batch: dict[str, Job | None]) -> None:
        if failures:
            raise failures.pop()
        write(batch)

    monkeypatch.setattr(store, "write_sync", flaky)
    job = finished_job()
    with caplog.at_level(logging.ERROR, logger="jobs.store"):
        store.put(job)
        await store.flush()  # the first attempt failed ...
        for _ in range(100):
            if read_back(tmp_path):
                break
            await asyncio.sleep(0.01)
    assert "No space left on device" in caplog.text
    assert read_back(tmp_path) == [job]  # ... and the retry wrote it
    await store.close()


async def test_put_on_a_closed_store_is_an_error(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    store = JobStore(tmp_path)
    with pytest.raises(RuntimeError):
        store.put(finished_job())
    await store.open(executor)
    await store.close()
    with pytest.raises(RuntimeError):
        store.put(finished_job())


async def test_an_unreadable_database_is_set_aside_and_a_new_one_started(
    tmp_path: Path, executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    store = JobStore(tmp_path)
    with caplog.at_level(logging.ERROR, logger="jobs.store"):
        assert await store.open(executor) == []
    assert "unreadable" in caplog.text
    job = finished_job()
    store.put(job)
    await store.close()
    assert read_back(tmp_path) == [job]
    [aside] = tmp_path.glob(f"{DB_NAME}.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
