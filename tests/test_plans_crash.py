"""A plan run killed with SIGKILL: after the restart the run is failed, nothing temporary is left, the schedule holds."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.crashserver import CrashServer
from tests.crashserver import server as server  # noqa: F401 - the fixture
from tests.test_backup_crash import make_wallet, stored_status

WALLET_COINS = 3_000


def server_temporaries(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".cloudcoin-")]


def test_sigkill_mid_plan_run_then_restart(server: CrashServer, tmp_path: Path) -> None:  # noqa: F811
    wallet = server.data_dir / "Wallets" / "Default"
    make_wallet(wallet, WALLET_COINS)
    with open(wallet / "Receipts" / "slow.log", "wb") as fh:  # seconds to deflate: the kill lands mid-archive
        fh.truncate(256 * 1024 * 1024)
    usb, cloud = tmp_path / "usb", tmp_path / "cloud"
    usb.mkdir()
    cloud.mkdir()
    server.start()
    status, plan = server.request(
        "POST", "/api/backup-plans",
        {"wallet_path": "Default", "destinations": [str(usb), str(cloud)], "schedule": "0 3 * * *", "keep": {"last": 2}},
    )  # fmt: skip
    assert status == 201, plan
    status, accepted = server.request("POST", f"/api/backup-plans/{plan['id']}/run", {"async": True})
    assert status == 202, accepted
    job_id = accepted["job_id"]
    deadline = time.monotonic() + 30
    while not server_temporaries(usb) or stored_status(server.data_dir, job_id) != "running":
        assert time.monotonic() < deadline, "the plan run never started writing"
        time.sleep(0.002)
    assert [n for n in os.listdir(usb) if n.endswith(".zip")] == [], "the run finished before the kill"
    server.kill()
    assert server_temporaries(usb), "the kill must leave the half-written archive"

    server.start()

    assert server_temporaries(usb) == [] and server_temporaries(cloud) == []
    assert os.listdir(usb) == [] and os.listdir(cloud) == []
    status, got = server.request("GET", f"/api/backup-plans/{plan['id']}")
    assert status == 200
    assert got["last_run"]["status"] == "failed"
    assert got["last_run"]["error"] == "Interrupted by server restart"
    assert got["last_run"]["job_id"] == job_id
    assert got["next_run_at"] == plan["next_run_at"]
    status, runs = server.request("GET", f"/api/backup-plans/{plan['id']}/runs")
    assert runs["count"] == 1  # a manual run cut short is not caught up
    status, job = server.request("GET", f"/api/jobs/{job_id}")
    assert job["status"] == "failed" and job["error"]["body"]["error"] == "Interrupted by server restart"
