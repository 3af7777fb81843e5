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
import sqlite3
import time
from pathlib import Path

from jobs import store
from jobs.backup import backup as backup_job
from jobs.backup.checks import TEMP_PREFIX
from tests.conftest import coin_bytes
from tests.crashserver import CrashServer, file_size_limit
from tests.crashserver import server as server  # noqa: F401 - the fixture

BIG_WALLET = 30_000
ZIP_FAILED = {"status": "error", "error": "Failed to create backup zip file", "error_code": 101}


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


def test_sigkill_mid_backup_leaves_no_temporary_file_after_restart(server: CrashServer, tmp_path: Path) -> None:
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


def test_file_size_limit_mid_backup_is_the_seeds_500_and_leaves_nothing(server: CrashServer, tmp_path: Path) -> None:
    make_wallet(server.data_dir / "Wallets" / "Default", 8_000)  # ~4 MB of archive
    destination = tmp_path / "backups"
    server.start(file_size_limit(2 << 20))

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
