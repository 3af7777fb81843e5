"""Graceful shutdown of the real server: SIGTERM during a backup cancels and cleans it, ends the event
streams, saves the job store and exits within 10 seconds."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path

from tests.conftest import write_coins
from tests.test_e2e import http, server  # noqa: F401 -- `server` is a fixture

#: A sparse file (no disk used) that deflates for a few seconds: the backup is surely running when
#: the signal arrives, however fast the machine archives coins.
BIG_SPARSE_BYTES = 768 * 1024 * 1024


def make_slow_wallet(data_dir: Path) -> Path:
    wallet = data_dir / "Wallets" / "Default"
    write_coins(wallet / "Bank", range(1, 201))
    (wallet / "Fracked").mkdir(parents=True, exist_ok=True)
    (wallet / "Receipts").mkdir(parents=True, exist_ok=True)
    with open(wallet / "Receipts" / "big.log", "wb") as fh:
        fh.truncate(BIG_SPARSE_BYTES)
    return wallet


def read_events(url: str, into: list[str]) -> None:
    with urllib.request.urlopen(url, timeout=30) as response:
        for raw in response:
            into.append(raw.decode())


def test_sigterm_during_a_backup_cancels_it_cleans_up_and_exits_in_time(server, tmp_path):  # noqa: F811
    data_dir = tmp_path / "Client_Data"
    make_slow_wallet(data_dir)
    destination = tmp_path / "backups"
    proc, base = server(data_dir)

    status, accepted = http("POST", f"{base}/api/wallets/backup", body={"destination": str(destination), "async": True})
    assert status == 202, accepted
    job_id = accepted["job_id"]
    deadline = time.monotonic() + 20
    while not (destination.exists() and os.listdir(destination)):
        assert time.monotonic() < deadline, "the backup never started writing"
        time.sleep(0.01)
    lines: list[str] = []
    reader = threading.Thread(target=read_events, args=(f"{base}{accepted['events_url']}", lines), daemon=True)
    reader.start()
    time.sleep(0.3)  # the stream is open and has sent the current state

    started = time.monotonic()
    proc.send_signal(15)
    code = proc.wait(timeout=12)
    elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 10, elapsed

    reader.join(timeout=5)
    assert not reader.is_alive(), "the event stream was not closed"
    events = [line.split(":", 1)[1].strip() for line in lines if line.startswith("event:")]
    assert events and events[-1] == "cancelled", events
    assert os.listdir(destination) == [], "a cancelled backup leaves nothing behind"

    _, again = server(data_dir)
    status, job = http("GET", f"{again}/api/jobs/{job_id}")
    assert status == 200
    assert job["status"] == "cancelled", job  # the store was saved: not "Interrupted by server restart"
    assert job["finished_at"] is not None
    data = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    assert data[-1]["id"] == job_id
