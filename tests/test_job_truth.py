"""Issue 10, items 1, 3, 4 and 7 in a real app (aiohttp_client): a job exists before it is promised,
orphaned temporary names are swept at start, a rename names one wallet, an Idempotency-Key one request."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import jobs.backup.backup as backup_job
from app.wallet.registry import RegistryEntry, read_registry, write_registry
from app.wallet.wallets import make_wallet_folder
from app.web.state import config_key, wallets_key
from jobs.store import JobStore
from tests.conftest import write_coins

DISK_FULL = "database or disk is full"


async def wait_job(client: TestClient, job_id: str) -> dict[str, Any]:
    for _ in range(60):
        job = await (await client.get(f"/api/jobs/{job_id}", params={"wait": "5"})).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


def stored_ids(data_dir: Path) -> list[str]:
    """The job ids committed to the store's file, read as another process would."""
    with sqlite3.connect(f"file:{data_dir / 'jobs' / 'jobs.sqlite3'}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT id FROM jobs")]


# -- 1. durable before 202, and before the work ---------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_job_the_store_cannot_save_is_a_503_and_never_runs(
    client: TestClient, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    def disk_full(self: JobStore, batch: Any) -> None:
        raise sqlite3.OperationalError(DISK_FULL)

    monkeypatch.setattr(JobStore, "write_sync", disk_full)
    destination = tmp_path / "backups"
    params = {"destination": str(destination), "async": "true" if mode == "async" else "false"}
    response = await client.post("/api/wallets/backup", json=params)
    assert response.status == 503
    assert await response.json() == {
        "success": False,
        "error": f"The job could not be saved ({DISK_FULL}); nothing was started",
        "code": 503,
    }
    assert response.headers["Retry-After"].isdigit()
    await asyncio.sleep(0.2)
    assert not destination.exists()  # no work started
    assert (await (await client.get("/api/jobs")).json())["count"] == 0
    monkeypatch.undo()
    # The store is back: the next request is served, and the refused job never shows up.
    response = await client.post("/api/wallets/backup", json={"destination": str(destination)})
    assert response.status == 200, await response.text()
    assert len(stored_ids(data_dir)) == 1


async def test_the_work_starts_only_once_the_job_is_on_disk(
    client: TestClient, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    write = JobStore.write_sync

    def slow_write(self: JobStore, batch: dict[str, Any]) -> None:
        time.sleep(0.3)
        write(self, batch)
        events.extend(("committed", job_id) for job_id in batch)

    make_destination = backup_job.make_destination

    def recording_make_destination(destination: Path) -> None:
        events.append(("work", str(destination)))
        make_destination(destination)

    monkeypatch.setattr(JobStore, "write_sync", slow_write)
    monkeypatch.setattr(backup_job, "make_destination", recording_make_destination)
    response = await client.post("/api/wallets/backup", json={"destination": str(tmp_path / "b"), "async": True})
    assert response.status == 202
    job_id = (await response.json())["job_id"]
    assert job_id in stored_ids(data_dir)  # on disk by the time the 202 is read
    assert (await wait_job(client, job_id))["status"] == "completed"
    assert events.index(("committed", job_id)) < events.index(("work", str(tmp_path / "b")))


# -- 3. orphaned temporary names ---------------------------------------------------------------------


async def test_start_sweeps_temporary_names_no_running_job_owns(
    make_client: Any, data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever the store says (these jobs are unknown to it): Wallets/, registered locations and
    BackupPlaces.txt destinations lose every `.cloudcoin-*.tmp`, file or folder; nothing else goes."""
    wallets = data_dir / "Wallets"
    stick = tmp_path / "stick"
    backups = tmp_path / "backups"
    for folder in (wallets, stick, backups):
        folder.mkdir(parents=True)
    make_wallet_folder(wallets / "Default")
    make_wallet_folder(stick / "Away")
    write_registry(
        data_dir / "wallet-locations.csv", [RegistryEntry(str(wallets / "Default")), RegistryEntry(str(stick / "Away"))]
    )
    (data_dir / "BackupPlaces.txt").write_text(f"{backups}\n{tmp_path / 'unplugged'}\n")
    orphans = [
        wallets / ".cloudcoin-restore-0123456789abcdef0123456789abcdef.tmp",
        stick / ".cloudcoin-restore-fedcba9876543210fedcba9876543210.tmp",
        backups / ".cloudcoin-backup-00000000000000000000000000000000.tmp",
    ]
    for orphan in orphans[:2]:
        write_coins(orphan / "Bank", range(1, 4))  # plaintext coins
    orphans[2].write_bytes(b"half an archive")
    link = backups / ".cloudcoin-backup-11111111111111111111111111111111.tmp"
    link.symlink_to(stick / "Away")  # a link is removed, never what it points to
    orphans.append(link)
    kept = [
        wallets / "notes.tmp",
        backups / ".cloudcoin-backup-x",
        backups / "CloudCoin-Wallet-Backup_A_2026-01-01.zip",
    ]
    for path in kept:
        path.write_bytes(b"not ours")

    with caplog.at_level(logging.WARNING, logger="jobs.sweep"):
        client = await make_client()
    assert (await client.get("/api/health")).status == 200

    assert [p for p in orphans if os.path.lexists(p)] == []
    assert all(p.exists() for p in kept)
    assert (stick / "Away" / "Bank").is_dir()
    for orphan in orphans:
        assert any(str(orphan) in record.getMessage() for record in caplog.records), orphan


# -- 4. a rename names one wallet ----------------------------------------------------------------------


async def test_ten_queued_renames_of_one_wallet_rename_it_once(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    response = await client.get("/api/wallets/create", params={"wallet_path": "Small"})
    small = Path((await response.json())["wallet_path"])
    write_coins(small / "Bank", range(1, 4))
    ids = []
    # Held by the registry lock, the first rename waits and the other nine queue behind it on Small,
    # with a backup of Small between the first and the others.
    async with client.app[wallets_key].registry_lock:
        for n in range(10):
            response = await client.get(
                "/api/wallets/rename", params={"wallet_path": "Small", "new_name": f"N{n}", "async": "true"}
            )
            assert response.status == 202, await response.text()
            ids.append((await response.json())["job_id"])
            if n == 0:
                backup = await client.post(
                    "/api/wallets/backup",
                    json={"wallet_path": "Small", "destination": str(tmp_path / "b"), "async": True},
                )
                backup_id = (await backup.json())["job_id"]
    jobs = [await wait_job(client, job_id) for job_id in ids]

    assert [job["status"] for job in jobs] == ["completed"] + ["failed"] * 9
    for job in jobs[1:]:
        assert job["error"] == {
            "http_status": 404,
            "body": {"success": False, "error": "Wallet path does not exist: Small", "code": 404},
        }
    names = sorted(os.listdir(data_dir / "Wallets"))
    assert names == ["Default", "N0"]
    assert [Path(e.wallet_path).name for e in read_registry(data_dir / "wallet-locations.csv").entries] == [
        "Default", "N0"
    ]  # fmt: skip
    # The backup asked for that wallet's backup: it followed the wallet to its new name.
    done = await wait_job(client, backup_id)
    assert done["status"] == "completed" and done["result"]["wallet_name"] == "N0"


async def test_ten_parallel_synchronous_renames_one_succeeds(client: TestClient, data_dir: Path) -> None:
    await client.get("/api/wallets/create", params={"wallet_path": "Small"})

    async def rename(n: int) -> tuple[int, dict[str, Any]]:
        response = await client.get("/api/wallets/rename", params={"wallet_path": "Small", "new_name": f"N{n}"})
        return response.status, await response.json()

    results = await asyncio.gather(*(rename(n) for n in range(10)))
    assert sorted(status for status, _ in results) == [200] + [404] * 9, results
    for status, body in results:
        if status == 404:
            assert body == {"success": False, "error": "Wallet path does not exist: Small", "code": 404}
    assert len(os.listdir(data_dir / "Wallets")) == 2


# -- 7. an Idempotency-Key names one request ------------------------------------------------------------

MISMATCH = {"success": False, "error": "Idempotency-Key reused with different parameters", "code": 422}


async def test_idempotency_key_reused_for_another_request_is_422_and_makes_no_job(
    client: TestClient, data_dir: Path
) -> None:
    for name in ("A", "B"):
        await client.get("/api/wallets/create", params={"wallet_path": name})
    key = {"Idempotency-Key": "rename-1"}
    response = await client.get("/api/wallets/rename", params={"wallet_path": "A", "new_name": "A1"}, headers=key)
    assert response.status == 200
    first = await response.json()

    other_requests = [
        client.get("/api/wallets/rename", params={"wallet_path": "B", "new_name": "A1"}, headers=key),
        client.get("/api/wallets/rename", params={"wallet_path": "B", "new_name": "B1"}, headers=key),
        client.post("/api/wallets/rename", data={"wallet_path": "A", "new_name": "A1"}, headers=key),
        client.get("/api/wallets/active/rename", params={"index": "1", "to": "A1"}, headers=key),
        client.post("/api/wallets/backup", json={"destination": str(data_dir.parent / "b")}, headers=key),
    ]
    for request in other_requests:
        response = await request
        assert (response.status, await response.json()) == (422, MISMATCH)
    assert (await (await client.get("/api/jobs")).json())["count"] == 1
    assert sorted(os.listdir(data_dir / "Wallets")) == ["A1", "B", "Default"]
    assert not (data_dir.parent / "b").exists()

    # The same request again: the same job and its result, although its checks would now fail (A is gone).
    for extra in ({}, {"async": "false"}):
        response = await client.get(
            "/api/wallets/rename", params={"wallet_path": "A", "new_name": "A1", **extra}, headers=key
        )
        assert response.status == 200
        assert await response.json() == first
    assert (await (await client.get("/api/jobs")).json())["count"] == 1


async def test_idempotency_key_mismatch_survives_a_restart(make_client: Any, data_dir: Path) -> None:
    client = await make_client()
    key = {"Idempotency-Key": "k", "Prefer": "respond-async"}
    await client.get("/api/wallets/create", params={"wallet_path": "A"})
    first = await client.get("/api/wallets/rename", params={"wallet_path": "A", "new_name": "A1"}, headers=key)
    job_id = (await first.json())["job_id"]
    await wait_job(client, job_id)
    await client.close()

    client = await make_client()
    response = await client.get("/api/wallets/rename", params={"wallet_path": "A1", "new_name": "A2"}, headers=key)
    assert (response.status, await response.json()) == (422, MISMATCH)
    response = await client.get("/api/wallets/rename", params={"wallet_path": "A", "new_name": "A1"}, headers=key)
    assert response.status == 202 and (await response.json())["job_id"] == job_id
    assert "A2" not in (data_dir / "wallet-locations.csv").read_text()


async def test_openapi_describes_the_idempotency_key_and_its_422(client: TestClient) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/wallets/rename"]["get"]
    assert {"422", "503", "202"} <= set(operation["responses"])
    assert "Idempotency-Key" in operation["responses"]["422"]["description"]


# -- 2. a backup's cleanup tells its own finished archive from another's --------------------------------


async def test_backup_cleanup_recovers_only_the_archive_its_job_wrote(
    client: TestClient, tmp_path: Path, data_dir: Path
) -> None:
    from datetime import timedelta

    from jobs.backup.recovery import cleanup_backup
    from jobs.models import Job, JobKind, JobStatus, utcnow

    write_coins(data_dir / "Wallets" / "Default" / "Bank", range(1, 4))
    destination = tmp_path / "b"
    body = await (await client.post("/api/wallets/backup", json={"destination": str(destination)})).json()
    config = client.app[config_key]
    finished = Job.from_json(await (await client.get(f"/api/jobs/{body['job_id']}")).json())
    # As a crash would have left it: the archive named, the job still "running" in the store.
    finished.status, finished.finished_at, finished.result = JobStatus.RUNNING, None, None
    other = Job.new(JobKind.BACKUP, wallet_path=finished.wallet_path, params={"destination": str(destination)})
    other.status, other.started_at = JobStatus.RUNNING, utcnow() - timedelta(minutes=1)

    assert cleanup_backup(config, other) is None  # the archive there is not its own
    result = cleanup_backup(config, finished)
    assert result is not None
    assert result["recovered"] is True and result["zip_path"] == body["zip_path"] and result["job_id"] == body["job_id"]
    assert os.listdir(destination) == [body["filename"]]


async def test_start_sweeps_the_destinations_of_backup_plans(make_client: Any, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    client = await make_client()
    body = {"wallet_path": "Default", "schedule": "30 2 * * *", "destinations": [str(usb)]}
    response = await client.post("/api/backup-plans", json=body)
    assert response.status in (200, 201), await response.text()
    await client.close()
    orphans = [usb / ".cloudcoin-plan-0123456789abcdef0123456789abcdef.tmp", usb / ".cloudcoin-backup-ab.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a copy")

    client = await make_client()
    assert (await client.get("/api/health")).status == 200
    assert [p for p in orphans if p.exists()] == []
