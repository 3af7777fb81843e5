"""The server's log as a person reads it: the real `python -m app`, its output captured line by line.

One line per request (method, path, status, duration; never a query or a password), one line per job
event (queued, started, completed / failed with its reason / cancelled, with durations), a startup line
with the version, data dir, address and limits, a line at shutdown, and nothing unformatted.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from app import __version__
from tests.conftest import write_coins
from tests.test_e2e import http, start_server, stop_server

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+[\w.]+: \S.*$")
HUGE_SPARSE_BYTES = 8 * 1024**3


def wait_status(base: str, job_id: str, wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        job = http("GET", f"{base}/api/jobs/{job_id}")[1]
        if job["status"] in wanted:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def log_lines(data_dir: Path) -> list[str]:
    return Path(f"{data_dir}.server.log").read_text(encoding="utf-8").splitlines()


def test_the_log_of_requests_and_of_a_failed_and_a_cancelled_job(tmp_path: Path) -> None:
    data_dir = tmp_path / "Client_Data"
    proc, base = start_server(data_dir)
    port = base.rsplit(":", 1)[1]
    default = data_dir / "Wallets" / "Default"
    write_coins(default / "Bank", range(1, 11))
    with open(default / "Receipts" / "huge.log", "wb") as fh:
        fh.truncate(HUGE_SPARSE_BYTES)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")

    status, failed = http("POST", f"{base}/api/wallets/backup", body={"destination": str(a_file), "async": True})
    assert status == 202, failed
    failed_id = failed["job_id"]
    assert wait_status(base, failed_id, {"failed", "completed"})["error"]["http_status"] == 500
    assert http("POST", f"{base}/api/wallets/backup", body={"destination": str(a_file)})[0] == 500
    body = {"destination": str(tmp_path / "b"), "async": True}
    status, accepted = http("POST", f"{base}/api/wallets/backup", body=body)
    assert status == 202
    cancelled_id = accepted["job_id"]
    wait_status(base, cancelled_id, {"running"})
    time.sleep(0.3)
    assert http("POST", f"{base}/api/jobs/{cancelled_id}/cancel")[0] == 202
    wait_status(base, cancelled_id, {"cancelled"})
    assert http("POST", f"{base}/api/system/login", body={"password": "hunter2-body-secret"})[0] == 200
    assert http("POST", f"{base}/api/system/login?password=query-secret-1")[0] == 400
    assert http("GET", f"{base}/api/wallets/list?note=query-secret-2")[0] == 200
    assert stop_server(proc) == 0

    lines = log_lines(data_dir)
    stray = [line for line in lines if not LINE.match(line)]
    assert stray == [], "every line is one formatted event"
    text = "\n".join(lines)
    assert "secret" not in text, "no password, no query string"

    assert re.search(
        rf"CloudCoin Wallet Server {re.escape(__version__)} serving http://127\.0\.0\.1:{port} "
        rf"with data in {re.escape(str(data_dir))}; workers 2, threads 4, max queued 1000",
        text,
    )
    assert re.search(r"INFO\s+app: CloudCoin Wallet Server stopped after \d+\.\d s$", lines[-1]), lines[-1]

    assert re.search(rf"job {failed_id} wallet-backup queued on {re.escape(str(default))}$", text, re.M)
    assert re.search(rf"job {failed_id} wallet-backup started on .+ \(\d+\.\d s in the queue\)$", text, re.M)
    assert re.search(
        rf"WARNING\s+jobs: job {failed_id} wallet-backup failed after \d+\.\d s: "
        r"Cannot create backup directory \(HTTP 500\)$",
        text,
        re.M,
    )
    assert re.search(rf"INFO\s+jobs: job {cancelled_id} wallet-backup cancelled after \d+\.\d s$", text, re.M)
    assert not re.search(rf"job {cancelled_id} .*completed", text)

    requests = [line.split(": ", 1)[1] for line in lines if " app.web.requests: " in line]
    assert any(re.fullmatch(r"POST /api/wallets/backup 500 \d+\.\d ms", r) for r in requests), requests
    assert any(re.fullmatch(r"POST /api/wallets/backup 202 \d+\.\d ms", r) for r in requests), requests
    assert any(re.fullmatch(rf"POST /api/jobs/{cancelled_id}/cancel 202 \d+\.\d ms", r) for r in requests)
    assert any(re.fullmatch(r"POST /api/system/login 400 \d+\.\d ms", r) for r in requests)
    assert any(re.fullmatch(r"GET /api/wallets/list 200 \d+\.\d ms", r) for r in requests)
    assert any(re.fullmatch(r"GET /api/health 200 \d+\.\d ms", r) for r in requests)
    # The same lines are kept in Client_Data/logs/server.log.
    assert f"job {cancelled_id} wallet-backup cancelled" in (data_dir / "logs" / "server.log").read_text()


def test_log_level_on_the_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "Client_Data"
    proc, base = start_server(data_dir, "--log-level", "warning")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    status, failed = http("POST", f"{base}/api/wallets/backup", body={"destination": str(a_file), "async": True})
    assert status == 202
    wait_status(base, failed["job_id"], {"failed"})
    assert stop_server(proc) == 0
    text = "\n".join(log_lines(data_dir))
    assert f"job {failed['job_id']} wallet-backup failed after" in text, "warnings are kept"
    assert " INFO " not in text, "--log-level warning leaves out requests and job starts"


def test_a_control_character_in_a_logged_name_stays_on_its_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "Client_Data"
    odd = tmp_path / "line\nbreak"
    proc, base = start_server(data_dir)
    (odd / "Bank").mkdir(parents=True)
    status, _ = http("POST", f"{base}/api/wallets/locations", body={"path": str(odd)})
    if status == 200:
        http("POST", f"{base}/api/wallets/backup", body={"wallet_path": str(odd), "destination": str(tmp_path / "b")})
    assert stop_server(proc) == 0
    lines = log_lines(data_dir)
    assert [line for line in lines if not LINE.match(line)] == []
