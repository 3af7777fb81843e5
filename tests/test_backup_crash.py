"""Faults that need a real server process: a SIGKILL in the middle of a backup, and a file-size limit.

Each test starts `python -m app` (with this interpreter) on a free port and a data directory under
tmp_path, and talks to it over HTTP with urllib. The wallet is real and big enough (30,000 coin
files, ~0.5 s of archiving) that the backup is caught while its temporary file exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs import store
from jobs.backup import backup as backup_job
from jobs.backup.checks import TEMP_PREFIX
from tests.conftest import coin_bytes

REPO = Path(__file__).resolve().parent.parent
BIG_WALLET = 30_000
ZIP_FAILED = {"status": "error", "error": "Failed to create backup zip file", "error_code": 101}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_wallet(wallet: Path, n: int) -> None:
    """A Default wallet of `n` plaintext single coins (90% Bank, 10% Fracked), written fast."""
    for folder in ("Bank", "Fracked", "Limbo", "Receipts"):
        (wallet / folder).mkdir(parents=True, exist_ok=True)
    template = coin_bytes(1)
    ans = os.urandom(400 * n)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(n):
        data = template[:35] + i.to_bytes(4, "big") + ans[400 * i : 400 * (i + 1)]
        folder = "Fracked" if i < n // 10 else "Bank"
        fd = os.open(wallet / folder / f"1 CloudCoin #{i} 'crash'.bin", flags, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    (wallet / "transactions.csv").write_text(
        "Symbol,Task ID,Date & Time,Remarks,Deposit,Withdraw,Description,Balance\n"
    )


def digest_of(folder: Path) -> str:
    """One hash over every file's relative path and content."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        digest.update(root.encode())
        for name in sorted(files):
            digest.update(name.encode())
            with open(os.path.join(root, name), "rb") as fh:
                digest.update(fh.read())
    return digest.hexdigest()


class Server:
    """`python -m app` in a subprocess; stopped (or killed) by the fixture whatever happens."""

    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, file_size_limit: int | None = None) -> None:
        self.starts += 1
        args = ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        if file_size_limit is None:
            command = [sys.executable, "-m", "app", *args]
        else:
            # RLIMIT_FSIZE: a write past the limit fails with EFBIG, as on a full disk (Python ignores SIGXFSZ).
            code = (
                "import resource, runpy, sys; "
                f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, {file_size_limit})); "
                f"sys.argv = ['app', *{args!r}]; runpy.run_module('app', run_name='__main__', alter_sys=True)"
            )
            command = [sys.executable, "-c", code]
        log = open(self.log_dir / f"server-{self.starts}.log", "wb")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("CLOUDCOIN_DATA_DIR", None)
        self.process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.log()}")
            try:
                if self.request("GET", "/api/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.log()}")

    def log(self) -> str:
        return (self.log_dir / f"server-{self.starts}.log").read_text(errors="replace")[-4000:]

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Server(tmp_path / "Client_Data", logs)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(running.data_dir, ignore_errors=True)  # tens of thousands of files


def stored_status(data_dir: Path, job_id: str) -> str | None:
    """The job's status as the job store has it on disk (jobs/store.py: one SQLite file, WAL mode)."""
    path = data_dir / "jobs" / store.DB_NAME
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db:
            row = db.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else json.loads(row[0])["status"]


def temp_files(folder: Path) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except FileNotFoundError:
        return []


def test_sigkill_mid_backup_leaves_no_temporary_file_after_restart(server: Server, tmp_path: Path) -> None:
    wallet = server.data_dir / "Wallets" / "Default"
    make_wallet(wallet, BIG_WALLET)
    # A sparse file that takes seconds to deflate: however fast a machine archives coins, the kill
    # lands while the archive is being written.
    with open(wallet / "Receipts" / "slow.log", "wb") as fh:
        fh.truncate(256 * 1024 * 1024)
    before = digest_of(wallet)
    destination = tmp_path / "backups"
    server.start()

    status, accepted = server.request("POST", "/api/wallets/backup", {"destination": str(destination), "async": True})
    assert status == 202, accepted
    job_id = accepted["job_id"]
    deadline = time.monotonic() + 30
    while not temp_files(destination):
        assert time.monotonic() < deadline, "the backup never started writing"
        time.sleep(0.001)
    # The store commits a moment after each state change; the restart can only clean up after a
    # job it has on disk. The archive takes far longer than this wait.
    while stored_status(server.data_dir, job_id) not in ("queued", "running"):
        assert time.monotonic() < deadline, "the job never reached the job store"
        time.sleep(0.005)
    finished = [n for n in os.listdir(destination) if n.endswith(".zip")]
    assert finished == [], "the backup finished before the kill: make BIG_WALLET bigger"
    server.kill()
    assert temp_files(destination) == [backup_job.temp_name(job_id)], "the kill must leave the half-written archive"

    server.start()

    assert temp_files(destination) == []
    assert os.listdir(destination) == []
    status, job = server.request("GET", f"/api/jobs/{job_id}")
    assert status == 200
    assert job["status"] == "failed"
    assert job["message"] == "Interrupted by server restart"
    assert job["error"]["body"]["error"] == "Interrupted by server restart"
    assert digest_of(wallet) == before
    status, balance = server.request("GET", "/api/wallets/balance")
    assert status == 200 and balance["total_notes"] == BIG_WALLET

    # The server still backs the same wallet up afterwards.
    status, body = server.request("POST", "/api/wallets/backup", {"destination": str(destination)})
    assert status == 200, body
    assert body["files_added"] == BIG_WALLET
    assert sorted(os.listdir(destination)) == [body["filename"]]


def test_file_size_limit_mid_backup_is_the_seeds_500_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 8_000)  # ~4 MB of archive
    destination = tmp_path / "backups"
    server.start(file_size_limit=2 << 20)

    status, body = server.request("POST", "/api/wallets/backup", {"destination": str(destination)})

    assert (status, body) == (500, ZIP_FAILED)
    assert not destination.exists()  # not even the folder the backup created
    assert server.request("GET", "/api/health")[0] == 200
    log = (server.data_dir / "logs" / "server.log").read_text()
    assert f"the destination {destination} is full (File too large)" in log

    # A destination that was there before stays, empty as it was.
    destination.mkdir()
    status, body = server.request("POST", "/api/wallets/backup", {"destination": str(destination)})
    assert (status, body) == (500, ZIP_FAILED)
    assert os.listdir(destination) == []
