"""The job store: the job history on disk (one SQLite file), written by a single coalescing writer.

Layout: ``<directory>/jobs.sqlite3`` (directory mode 0700), one table::

    jobs(id TEXT PRIMARY KEY, created REAL, finished REAL NULL, record TEXT)

``record`` is ``Job.to_record()`` as JSON; ``created``/``finished`` are epoch seconds, kept as
columns only so that pruning and ordering need no JSON. The database runs in WAL mode with
``synchronous=FULL``: every commit is an atomic, fsynced transaction, so a crash leaves either the
old or the new state of a job, never a torn one.

Writing: the runner calls ``put(job)`` on every state change (queued, running, final — not on
progress ticks). ``put`` costs a shallow copy on the event loop; a single writer task takes every
job put since its last write and commits them in ONE transaction on the app's executor. While a
commit is in flight new puts pile up and go into the next one, so 1,000 jobs submitted at once
cost a handful of fsyncs, not 3,000. A state is therefore on disk promptly (one commit later), not
by the time ``put`` returns; ``flush()`` waits until everything put so far is committed, and
``close()`` flushes before it closes the database. ``save(job)`` is ``put`` that waits for the commit
holding the job and raises ``StoreUnavailable`` when that commit failed: a new job is saved before
the runner promises it to anyone or starts it.

Pruning happens in ``open()``: finished jobs older than ``keep_days`` go, then all but the newest
``keep_max`` finished jobs. Unfinished jobs are always kept: the runner must settle them.

A failed commit (disk full, read-only) is logged with its traceback and retried a second later; the
in-memory state stays authoritative meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from .errors import StoreUnavailable
from .models import Job

log = logging.getLogger(__name__)

DB_NAME = "jobs.sqlite3"
#: seconds to wait before retrying a commit that failed (e.g. disk full)
RETRY_DELAY_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    finished REAL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
"""

_UPSERT = """
INSERT INTO jobs (id, created, finished, record) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET finished = excluded.finished, record = excluded.record
"""


class JobStore:
    """The job history under ``directory``. Open it once, ``put`` changes, close it once."""

    def __init__(self, directory: str | os.PathLike[str], *, keep_days: float = 7.0, keep_max: int = 10_000) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self.keep_days = keep_days
        self.keep_max = keep_max
        self._db: sqlite3.Connection | None = None
        # The connection is used from executor threads, one call at a time.
        self._db_lock = threading.Lock()
        self._executor: concurrent.futures.Executor | None = None
        # id -> snapshot to write, or None to delete; latest put wins.
        self._pending: dict[str, Job | None] = {}
        # id -> futures of `save` calls, resolved by the commit that holds that job's put
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._put_count = 0
        self._written_count = 0
        self._wake: asyncio.Event | None = None
        self._written: asyncio.Condition | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    def __repr__(self) -> str:
        state = "open" if self._db is not None else "closed"
        return f"<JobStore {str(self.path)!r} {state} pending={len(self._pending)}>"

    # -- life cycle (event loop) ------------------------------------------------------------

    async def open(self, executor: concurrent.futures.Executor) -> list[Job]:
        """Open (or create) the database, prune the history, start the writer; returns the jobs, oldest first."""
        if self._writer is not None:
            raise RuntimeError("job store already open")
        loop = asyncio.get_running_loop()
        self._executor = executor
        jobs = await loop.run_in_executor(executor, self.load_sync)
        self._wake = asyncio.Event()
        self._written = asyncio.Condition()
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop(), name="job-store-writer")
        return jobs

    def put(self, job: Job) -> None:
        """Schedule the job's current state to be written (loop thread only; cheap)."""
        self._queue(job.id, job.snapshot())

    async def save(self, job: Job) -> None:
        """Put the job's current state and return once it is committed (fsynced); StoreUnavailable if
        that commit failed (the state stays pending and is retried, unless `discard` drops it)."""
        self.put(job)
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job.id, []).append(future)
        await future

    def discard(self, job_id: str) -> None:
        """Drop whatever is pending for the job (a new job whose save failed: it never existed)."""
        self._pending.pop(job_id, None)

    def delete(self, job_id: str) -> None:
        """Schedule the job's removal from the history (loop thread only)."""
        self._queue(job_id, None)

    async def flush(self) -> None:
        """Return once everything put so far has been committed (or its commit was attempted and failed)."""
        if self._writer is None or self._writer.done():
            return
        assert self._written is not None
        target = self._put_count
        async with self._written:
            await self._written.wait_for(lambda: self._written_count >= target or self._writer is None)

    async def close(self) -> None:
        """Flush, stop the writer and close the database. Idempotent."""
        writer = self._writer
        if writer is not None:
            self._closing = True
            assert self._wake is not None
            self._wake.set()
            await writer
            self._writer = None
        if self._db is not None:
            if self._executor is None:
                self.close_sync()
            else:
                await asyncio.get_running_loop().run_in_executor(self._executor, self.close_sync)

    # -- the writer -------------------------------------------------------------------------

    def _queue(self, job_id: str, value: Job | None) -> None:
        if self._writer is None or self._closing:
            raise RuntimeError("job store is not open")
        self._pending[job_id] = value
        self._put_count += 1
        assert self._wake is not None
        self._wake.set()

    async def _write_loop(self) -> None:
        assert self._wake is not None and self._written is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._pending = self._pending, {}
            waiters = [future for job_id in batch for future in self._waiters.pop(job_id, ())]
            upto = self._put_count
            failed = False
            try:
                await loop.run_in_executor(self._executor, self.write_sync, batch)
            except Exception as exc:
                failed = True
                log.exception("cannot write %d job(s) to %s", len(batch), self.path)
                for job_id, value in batch.items():
                    self._pending.setdefault(job_id, value)
                _resolve(waiters, StoreUnavailable(_reason(exc)))
            else:
                _resolve(waiters, None)
            async with self._written:
                self._written_count = upto
                self._written.notify_all()
            if failed:
                if self._closing:
                    log.error("giving up on %d unsaved job(s) at close", len(self._pending))
                    self._pending.clear()
                    return
                await asyncio.sleep(RETRY_DELAY_S)

    # -- blocking primitives (executor threads, or tests and tools) ---------------------------

    def load_sync(self) -> list[Job]:
        """Open the database if needed, prune it, and return its jobs oldest first. Blocking.

        A database SQLite cannot read is moved aside (``jobs.sqlite3.corrupt-<time>``) and a new one
        started: a damaged history must not keep the server from starting.
        """
        with self._db_lock:
            try:
                rows = self._prune_and_read()
            except sqlite3.DatabaseError:
                log.exception("job history %s is unreadable; setting it aside and starting a new one", self.path)
                self._set_aside()
                rows = self._prune_and_read()
        jobs = []
        for job_id, record in rows:
            try:
                jobs.append(Job.from_json(json.loads(record)))
            except (ValueError, KeyError, TypeError):
                log.warning("skipping unreadable job %s in %s", job_id, self.path)
        return jobs

    def write_sync(self, batch: dict[str, Job | None]) -> None:
        """Commit a batch of job states (None deletes) in one transaction. Blocking."""
        upserts = []
        deletes = []
        for job_id, job in batch.items():
            if job is None:
                deletes.append((job_id,))
                continue
            finished = job.finished_at.timestamp() if job.finished_at is not None else None
            record = json.dumps(job.to_record(), ensure_ascii=False, separators=(",", ":"))
            upserts.append((job.id, job.created_at.timestamp(), finished, record))
        with self._db_lock:
            db = self._connect()
            with db:
                if upserts:
                    db.executemany(_UPSERT, upserts)
                if deletes:
                    db.executemany("DELETE FROM jobs WHERE id = ?", deletes)

    def close_sync(self) -> None:
        with self._db_lock:
            if self._db is None:
                return
            try:
                # Fold the WAL back into the main file so a stopped server leaves one file.
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                log.exception("cannot checkpoint %s", self.path)
            finally:
                self._db.close()
                self._db = None

    def _prune_and_read(self) -> list[tuple[str, str]]:
        db = self._connect()
        cutoff = time.time() - self.keep_days * 86400
        with db:
            db.execute("DELETE FROM jobs WHERE finished IS NOT NULL AND finished < ?", (cutoff,))
            db.execute(
                "DELETE FROM jobs WHERE finished IS NOT NULL AND id NOT IN "
                "(SELECT id FROM jobs ORDER BY created DESC, rowid DESC LIMIT ?)",
                (self.keep_max,),
            )
        return db.execute("SELECT id, record FROM jobs ORDER BY created, rowid").fetchall()

    def _set_aside(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                os.replace(source, self.path.with_name(f"{self.path.name}.corrupt-{stamp}{suffix}"))

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _make_private(self.path)
            db = sqlite3.connect(self.path, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db


def _make_private(path: Path) -> None:
    """The database file exists and is 0600 before SQLite opens it; SQLite gives its -wal and -shm
    files the database's mode. (Created by SQLite itself it would get the umask's 0644.)"""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm"):
            try:
                os.chmod(path.with_name(path.name + suffix), 0o600)
            except FileNotFoundError:
                pass
    except OSError as exc:
        # Not ours to refuse the start over: SQLite opens it or reports what is wrong.
        log.warning("cannot make %s private: %s", path, exc)


def _resolve(waiters: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in waiters:
        if future.done():
            continue  # its saver was cancelled
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _reason(exc: Exception) -> str:
    """The failure in words a client may read (no paths): "database or disk is full", "No space left on device"."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
