"""Backup plans through a real server: CRUD, runs to two destinations, retention, partial, 409, rename, the backups list, the dropdown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from jobs.plans.archives import read_manifest_head
from tests.conftest import write_coins

INSIDE = "Backup destination cannot be inside Client_Data — choose a folder outside the program's data directory"


def default_wallet(data_dir: Path) -> Path:
    return data_dir / "Wallets" / "Default"


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    usb, cloud = tmp_path / "usb", tmp_path / "cloud"
    usb.mkdir()
    cloud.mkdir()
    return usb, cloud


async def create(client, **fields):
    body = {"wallet_path": "Default", "schedule": "30 2 * * *", **fields}
    response = await client.post("/api/backup-plans", json=body)
    return response, await response.json()


async def run_now(client, plan_id: str) -> dict:
    response = await client.post(f"/api/backup-plans/{plan_id}/run")
    assert response.status == 200, await response.text()
    return await response.json()


def unzip_ok(path: str) -> None:
    if shutil.which("unzip") is None:
        with zipfile.ZipFile(path) as archive:  # the stdlib reader checks every CRC instead
            assert archive.testzip() is None
        return
    result = subprocess.run(["unzip", "-tq", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_create_read_list_change_delete(client, places, data_dir):
    usb, cloud = places
    response, plan = await create(client, name="Nightly", destinations=[str(usb), str(cloud)], keep={"last": 3})
    assert response.status == 201
    assert response.headers["Location"] == f"/api/backup-plans/{plan['id']}"
    assert plan["wallet_path"] == str(default_wallet(data_dir).resolve())
    assert plan["destinations"] == [str(usb), str(cloud)] and plan["verify"] is True
    assert plan["keep"] == {"last": 3, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0}
    assert plan["last_run"] is None and plan["next_run_at"] and plan["created_at"]
    got = await (await client.get(f"/api/backup-plans/{plan['id']}")).json()
    assert got == plan
    listed = await (await client.get("/api/backup-plans", params={"wallet_path": "Default"})).json()
    assert listed["count"] == 1 and listed["plans"][0]["id"] == plan["id"]
    other = await (await client.get("/api/backup-plans", params={"wallet_path": "Other"})).json()
    assert other == {"plans": [], "count": 0}
    response = await client.patch(f"/api/backup-plans/{plan['id']}", json={"enabled": False, "name": "Off"})
    changed = await response.json()
    assert response.status == 200 and changed["enabled"] is False and changed["next_run_at"] is None
    assert changed["name"] == "Off"
    response = await client.delete(f"/api/backup-plans/{plan['id']}")
    assert response.status == 204
    response = await client.get(f"/api/backup-plans/{plan['id']}")
    assert response.status == 404
    assert await response.json() == {"success": False, "error": f"Backup plan not found: {plan['id']}", "code": 404}


async def test_plans_survive_a_restart(make_client, places):
    usb, _ = places
    client = await make_client()
    _, plan = await create(client, destinations=[str(usb)])
    await client.close()
    again = await make_client()
    got = await (await again.get(f"/api/backup-plans/{plan['id']}")).json()
    assert got == plan


BAD = [
    ({"schedule": "61 * * * *"}, "Invalid schedule '61 * * * *': Bad minute (allowed: 0-59, lists, ranges and steps)"),
    ({"schedule": "0 2 * * * *"}, "Invalid schedule '0 2 * * * *': a cron expression has exactly 5 fields, this has 6"),
    ({"keep": {"last": -1}}, "Invalid keep: 'last' must be 0 or more"),
    ({"keep": {"daily": True}}, "Invalid keep: 'daily' must be an integer"),
    ({"keep": {"daily": "7"}}, "Invalid keep: 'daily' must be an integer"),
    ({"keep": {"hourly": 1}}, "Invalid keep: unknown key 'hourly' (allowed: last, daily, weekly, monthly, yearly)"),
    ({"verify": False}, "Invalid verify: false is not supported: every archive a plan writes is verified"),
    ({"colour": "blue"}, "Unknown field: colour"),
    ({"wallet_path": "Nobody"}, "Wallet not found: Nobody"),
    ({"name": "n" * 201}, "Invalid name: at most 200 characters"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
async def test_every_bad_input_is_a_400_and_writes_nothing(client, places, data_dir, change, message):
    usb, _ = places
    response, body = await create(client, destinations=[str(usb)], **change)
    assert response.status == 400
    assert body["success"] is False and body["code"] == 400 and body["error"] == message
    assert not (data_dir / "backup-plans").exists() or os.listdir(data_dir / "backup-plans") == []


async def test_nine_destinations_and_destinations_inside_client_data_are_refused(client, tmp_path, data_dir):
    nine = [str(tmp_path / f"d{n}") for n in range(9)]
    response, body = await create(client, destinations=nine)
    assert response.status == 400 and body["error"] == "Invalid destinations: 1 to 8 destinations, not 9"
    response, body = await create(client, destinations=[str(data_dir / "Backups")])
    assert response.status == 400
    assert body == {
        "success": False,
        "error": INSIDE,
        "code": 400,
        "field": "destinations",
        "destination": str(data_dir / "Backups"),
    }
    response, body = await create(client, destinations=["relative/folder"])
    assert response.status == 400 and body["error"] == "Destination must be an absolute path"
    assert not (data_dir / "backup-plans").exists() or os.listdir(data_dir / "backup-plans") == []


async def test_plan_endpoints_take_json_bodies_only(client, places):
    usb, _ = places
    response = await client.post("/api/backup-plans", data={"wallet_path": "Default", "schedule": "@daily"})
    assert response.status == 415
    body = await response.json()
    assert body["success"] is False and body["code"] == 415
    response = await client.post("/api/backup-plans", data=b"{broken", headers={"Content-Type": "application/json"})
    assert response.status == 400
    response = await client.post("/api/backup-plans", json=[1, 2])
    assert response.status == 400 and (await response.json())["error"] == "The body must be a JSON object"


async def test_a_run_makes_verified_archives_in_two_destinations(client, places, data_dir):
    usb, cloud = places
    write_coins(default_wallet(data_dir) / "Bank", range(1, 21))
    _, plan = await create(client, destinations=[str(usb), str(cloud)])
    run = await run_now(client, plan["id"])
    assert run["status"] == "completed" and run["trigger"] == "manual"
    assert run["files_added"] == 20 and run["files_added_plaintext"] == 20
    assert [d["status"] for d in run["destinations"]] == ["completed", "completed"]
    for entry, folder in zip(run["destinations"], (usb, cloud), strict=True):
        assert entry["destination"] == str(folder) and entry["verified"] is True
        assert Path(entry["zip_path"]).parent == folder and entry["bytes"] == os.path.getsize(entry["zip_path"])
        unzip_ok(entry["zip_path"])
        assert read_manifest_head(entry["zip_path"])["plan_id"] == plan["id"]
    first, second = (Path(d["zip_path"]).read_bytes() for d in run["destinations"])
    assert first == second  # written once, copied
    assert sorted(os.listdir(usb)) == [Path(run["destinations"][0]["zip_path"]).name]  # no temporary left
    got = await (await client.get(f"/api/backup-plans/{plan['id']}")).json()
    assert got["last_run"] == run
    job = await (await client.get(f"/api/jobs/{run['job_id']}")).json()
    assert job["kind"] == "plan-run" and job["status"] == "completed" and job["result"] == run
    runs = await (await client.get(f"/api/backup-plans/{plan['id']}/runs")).json()
    assert runs["count"] == 1 and runs["runs"][0] == run


async def test_keep_last_two_prunes_exactly_the_oldest_of_this_plans_archives(client, places, data_dir):
    usb, cloud = places
    write_coins(default_wallet(data_dir) / "Bank", range(1, 6))
    _, plan = await create(client, destinations=[str(usb), str(cloud)], keep={"last": 2})
    _, other = await create(client, destinations=[str(usb)])
    foreign = usb / "CloudCoin-Wallet-Backup_Default_2020-01-01.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("hello.txt", "not ours")
    (usb / "holiday-photos.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    manual = await client.post("/api/wallets/backup", params={"destination": str(usb)})
    manual_zip = (await manual.json())["zip_path"]
    other_run = await run_now(client, other["id"])
    runs = [await run_now(client, plan["id"]) for _ in range(3)]
    assert [r["status"] for r in runs] == ["completed"] * 3
    oldest = [d["zip_path"] for d in runs[0]["destinations"]]
    assert runs[2]["destinations"][0]["pruned"] == [oldest[0]]
    assert runs[2]["destinations"][1]["pruned"] == [oldest[1]]
    assert runs[1]["destinations"][0]["pruned"] == []
    for path in oldest:
        assert not os.path.exists(path)
    for kept in [*(d["zip_path"] for r in runs[1:] for d in r["destinations"]), manual_zip,
                 other_run["destinations"][0]["zip_path"], str(foreign), str(usb / "holiday-photos.zip")]:  # fmt: skip
        assert os.path.exists(kept), kept


async def test_a_missing_destination_is_partial_and_never_created(client, places, tmp_path, data_dir):
    usb, _ = places
    unplugged = tmp_path / "media" / "stick"
    _, plan = await create(client, destinations=[str(unplugged), str(usb)], keep={"last": 1})
    run = await run_now(client, plan["id"])
    assert run["status"] == "partial"
    missing, made = run["destinations"]
    assert missing == {
        "destination": str(unplugged),
        "status": "failed",
        "error": "Destination directory does not exist",
    }
    assert made["status"] == "completed" and os.path.exists(made["zip_path"])
    assert not unplugged.exists() and not unplugged.parent.exists()
    all_missing = await create(client, destinations=[str(unplugged)])
    run = await run_now(client, all_missing[1]["id"])
    assert run["status"] == "failed" and run["error"] == "No destination has a verified archive"


async def test_a_run_while_one_is_queued_or_running_is_409(client, places, data_dir, monkeypatch):
    usb, _ = places
    write_coins(default_wallet(data_dir) / "Bank", range(1, 4))
    _, plan = await create(client, destinations=[str(usb)])
    # A rename holds the wallet's lane, so the first run waits queued behind it.
    import asyncio

    from jobs.plans import run as plan_run

    release = asyncio.Event()
    original = plan_run.PlanRunJob.run

    async def slow(self, plan_, ctx):
        await release.wait()
        return await original(self, plan_, ctx)

    monkeypatch.setattr(plan_run.PlanRunJob, "run", slow)
    response = await client.post(f"/api/backup-plans/{plan['id']}/run", headers={"Prefer": "respond-async"})
    assert response.status == 202
    accepted = await response.json()
    response = await client.post(f"/api/backup-plans/{plan['id']}/run")
    assert response.status == 409
    body = await response.json()
    assert body["code"] == 409 and body["job_id"] == accepted["job_id"]
    release.set()
    job = await (await client.get(f"/api/jobs/{accepted['job_id']}", params={"wait": "30"})).json()
    assert job["status"] == "completed" and job["result"]["status"] == "completed"


async def test_encrypted_only_refuses_to_run_without_a_login(client, places, data_dir):
    usb, _ = places
    write_coins(default_wallet(data_dir) / "Bank", range(1, 3))
    _, plan = await create(client, destinations=[str(usb)], encrypted_only=True)
    run = await run_now(client, plan["id"])
    assert run["status"] == "failed" and run["error"] == "Not logged in: this plan writes only encrypted backups"
    assert os.listdir(usb) == []
    response = await client.post("/api/system/login", json={"password": "correct horse battery"})
    assert response.status == 200
    run = await run_now(client, plan["id"])
    assert (
        run["status"] == "completed" and run["files_reencrypted_for_backup"] == 2 and run["files_added_plaintext"] == 0
    )


async def test_the_plan_follows_its_wallet_through_a_rename(client, places, data_dir):
    usb, _ = places
    write_coins(default_wallet(data_dir) / "Bank", range(1, 3))
    _, plan = await create(client, destinations=[str(usb)], keep={"last": 1})
    first = await run_now(client, plan["id"])
    response = await client.post("/api/wallets/rename", params={"wallet_path": "Default", "new_name": "Savings"})
    assert response.status == 200, await response.text()
    got = await (await client.get(f"/api/backup-plans/{plan['id']}")).json()
    assert got["wallet_path"] == str((data_dir / "Wallets" / "Savings").resolve())
    second = await run_now(client, plan["id"])
    assert second["status"] == "completed" and second["wallet_name"] == "Savings"
    assert "CloudCoin-Wallet-Backup_Savings_" in second["destinations"][0]["zip_path"]
    # retention counts the archive made under the old name as this plan's own
    assert second["destinations"][0]["pruned"] == [first["destinations"][0]["zip_path"]]
    listed = await (await client.get("/api/wallets/backups", params={"wallet_path": "Savings"})).json()
    assert [b["zip_path"] for b in listed["backups"]] == [second["destinations"][0]["zip_path"]]


async def test_a_plan_whose_wallet_is_gone_records_a_failed_run_and_keeps_its_schedule(client, places, data_dir):
    usb, _ = places
    response = await client.post("/api/wallets/create", params={"wallet_path": "Spare"})
    assert response.status == 200
    _, plan = await create(client, wallet_path="Spare", destinations=[str(usb)])
    shutil.rmtree(data_dir / "Wallets" / "Spare")
    run = await run_now(client, plan["id"])
    assert run["status"] == "failed" and run["error"].startswith("Wallet not found")
    got = await (await client.get(f"/api/backup-plans/{plan['id']}")).json()
    assert got["enabled"] is True and got["next_run_at"] == plan["next_run_at"]


async def test_the_backups_the_server_knows(client, places, data_dir, tmp_path):
    usb, cloud = places
    write_coins(default_wallet(data_dir) / "Bank", range(1, 4))
    _, plan = await create(client, destinations=[str(usb), str(cloud)])
    run = await run_now(client, plan["id"])
    manual = await (await client.post("/api/wallets/backup", params={"destination": str(tmp_path / "manual")})).json()
    broken = cloud / "CloudCoin-Wallet-Backup_Default_2019-05-05.zip"
    broken.write_bytes(b"PK not really")
    unreachable = tmp_path / "gone"
    (data_dir / "BackupPlaces.txt").write_text(f"{tmp_path / 'manual'}\n{unreachable}\n")
    listed = await (await client.get("/api/wallets/backups", params={"wallet_path": "Default"})).json()
    paths = [b["zip_path"] for b in listed["backups"] if b["readable"]]
    assert sorted(paths) == sorted([manual["zip_path"], *(d["zip_path"] for d in run["destinations"])])
    by_path = {b["zip_path"]: b for b in listed["backups"]}
    made = by_path[run["destinations"][0]["zip_path"]]
    assert made["plan_id"] == plan["id"] and made["coins"] == 3 and made["encrypted"] is False
    assert made["verified_at"] is not None and made["bytes"] > 0 and made["created_at"]
    assert by_path[manual["zip_path"]]["plan_id"] is None
    assert by_path[str(broken)]["readable"] is False
    reach = {p["path"]: p["reachable"] for p in listed["places"]}
    assert reach[str(unreachable)] is False and reach[str(usb)] is True and reach[str(cloud)] is True
    assert listed["count"] == len(listed["backups"]) == 4


async def test_the_dropdown_as_the_reference_gui_reads_it(client, data_dir, tmp_path):
    async def gui_items(name: str) -> list[str]:
        # The GUI's check: status === 'success' && Array.isArray(items)
        body = await (await client.get("/api/system/dropdown", params={"file": name})).json()
        assert body["status"] == "success" and isinstance(body["items"], list)
        assert body["operation"] == "dropdown" and body["file"] == name
        return body["items"]

    assert await gui_items("BackupPlaces.txt") == []  # no file yet
    await client.post("/api/wallets/backup", params={"destination": str(tmp_path / "b1")})
    await client.post("/api/wallets/backup", params={"destination": str(tmp_path / "b2")})
    assert await gui_items("BackupPlaces.txt") == [str(tmp_path / "b2"), str(tmp_path / "b1")]
    assert await gui_items("wallet-locations.csv") == [str(default_wallet(data_dir).resolve())]
    for bad in ("../secret.txt", "jobs", "/etc/passwd"):
        response = await client.get("/api/system/dropdown", params={"file": bad})
        assert response.status == 400
        assert (await response.json())["success"] is False


async def test_plan_runs_in_the_job_list_and_openapi(client, places):
    usb, _ = places
    _, plan = await create(client, destinations=[str(usb)])
    run = await run_now(client, plan["id"])
    jobs = await (await client.get("/api/jobs", params={"kind": "plan-run"})).json()
    assert [job["id"] for job in jobs["jobs"]] == [run["job_id"]]
    assert jobs["jobs"][0]["phase"] == "pruning"  # the last phase a run reports
    spec = await (await client.get("/api/openapi.json")).json()
    assert "/api/backup-plans/{plan_id}/run" in spec["paths"] and "/api/system/dropdown" in spec["paths"]
    _ = json


async def test_a_scheduled_time_while_a_run_is_active_is_skipped(client, places, monkeypatch):
    import asyncio

    from app.web.state import plans_key
    from jobs.plans import run as plan_run

    usb, _ = places
    _, plan = await create(client, destinations=[str(usb)])
    release = asyncio.Event()
    original = plan_run.PlanRunJob.run

    async def slow(self, plan_, ctx):
        await release.wait()
        return await original(self, plan_, ctx)

    monkeypatch.setattr(plan_run.PlanRunJob, "run", slow)
    accepted = await (
        await client.post(f"/api/backup-plans/{plan['id']}/run", headers={"Prefer": "respond-async"})
    ).json()
    service = client.app[plans_key]
    due = service.get(plan["id"]).next_run_at
    await service.run_due(due)  # the scheduler's wake at the plan's time
    runs = (await (await client.get(f"/api/backup-plans/{plan['id']}/runs")).json())["runs"]
    assert [r["status"] for r in runs] == ["skipped", "queued"] or [r["status"] for r in runs] == ["skipped", "running"]
    skipped = runs[0]
    assert skipped["trigger"] == "schedule" and skipped["job_id"] is None and skipped["reason"]
    assert skipped["started_at"] == skipped["finished_at"] == skipped["scheduled_for"]
    release.set()
    job = await (await client.get(f"/api/jobs/{accepted['job_id']}", params={"wait": "30"})).json()
    assert job["status"] == "completed"
    got = await (await client.get(f"/api/backup-plans/{plan['id']}")).json()
    assert got["last_run"]["job_id"] == accepted["job_id"]  # a skip is never the last run
    assert got["next_run_at"] != plan["next_run_at"]  # the schedule moved on


async def test_a_cancelled_queued_run_is_recorded_cancelled(client, places, monkeypatch):
    import asyncio

    from jobs.plans import run as plan_run

    usb, _ = places
    _, first = await create(client, destinations=[str(usb)])
    _, second = await create(client, destinations=[str(usb)])
    release = asyncio.Event()
    original = plan_run.PlanRunJob.run

    async def slow(self, plan_, ctx):
        await release.wait()
        return await original(self, plan_, ctx)

    monkeypatch.setattr(plan_run.PlanRunJob, "run", slow)
    await client.post(f"/api/backup-plans/{first['id']}/run", headers={"Prefer": "respond-async"})
    queued = await (
        await client.post(f"/api/backup-plans/{second['id']}/run", headers={"Prefer": "respond-async"})
    ).json()
    response = await client.post(f"/api/jobs/{queued['job_id']}/cancel")
    assert response.status == 200
    release.set()
    for _ in range(100):
        run = (await (await client.get(f"/api/backup-plans/{second['id']}")).json())["last_run"]
        if run["status"] != "queued":
            break
        await asyncio.sleep(0.02)
    assert run["status"] == "cancelled" and run["finished_at"]


async def test_a_cancel_while_placing_stops_before_pruning_and_leaves_no_temporary(
    client, places, data_dir, monkeypatch
):
    import asyncio
    import threading

    from jobs.plans import run as plan_run

    usb, cloud = places
    write_coins(default_wallet(data_dir) / "Bank", range(1, 4))
    _, plan = await create(client, destinations=[str(usb), str(cloud)], keep={"last": 1})
    earlier = await run_now(client, plan["id"])
    placing = threading.Event()
    go_on = threading.Event()
    real = plan_run.place_copy

    def held(*args, **kwargs):
        placing.set()
        go_on.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(plan_run, "place_copy", held)
    accepted = await (
        await client.post(f"/api/backup-plans/{plan['id']}/run", headers={"Prefer": "respond-async"})
    ).json()
    assert await asyncio.get_running_loop().run_in_executor(None, placing.wait, 10)
    try:
        for _ in range(100):  # progress is published at most ten times a second
            job = await (await client.get(f"/api/jobs/{accepted['job_id']}")).json()
            if job["phase"] == "placing":
                break
            await asyncio.sleep(0.02)
        assert job["phase"] == "placing" and job["status"] == "running"
    except BaseException:
        go_on.set()
        raise
    response = await client.post(f"/api/jobs/{accepted['job_id']}/cancel")
    assert response.status == 202
    go_on.set()
    job = await (await client.get(f"/api/jobs/{accepted['job_id']}", params={"wait": "30"})).json()
    assert job["status"] == "cancelled"
    run = (await (await client.get(f"/api/backup-plans/{plan['id']}")).json())["last_run"]
    assert run["status"] == "cancelled" and run["job_id"] == accepted["job_id"]
    assert not any(name.startswith(".cloudcoin-") for folder in (usb, cloud) for name in os.listdir(folder))
    # no pruning after a cancel: the earlier archives are all still there
    for entry in earlier["destinations"]:
        assert os.path.exists(entry["zip_path"])
    assert len(os.listdir(usb)) == 2 and len(os.listdir(cloud)) == 1


async def test_verified_at_is_remembered_per_path_size_and_mtime(client, tmp_path, data_dir):
    write_coins(default_wallet(data_dir) / "Bank", range(1, 3))
    made = await (await client.post("/api/wallets/backup", params={"destination": str(tmp_path / "b")})).json()

    async def listed() -> dict:
        body = await (await client.get("/api/wallets/backups", params={"wallet_path": "Default"})).json()
        [backup] = body["backups"]
        return backup

    assert (await listed())["verified_at"] is None
    response = await client.post("/api/wallets/backup/verify", params={"zip_path": made["zip_path"]})
    assert response.status == 200 and (await response.json())["ok"] is True
    assert (await listed())["verified_at"] is not None
    os.utime(made["zip_path"], (1_700_000_000, 1_700_000_000))  # changed since: no longer vouched for
    assert (await listed())["verified_at"] is None


async def test_a_bad_change_is_a_400_and_leaves_the_plan_file_as_it_was(client, places, data_dir):
    usb, _ = places
    _, plan = await create(client, destinations=[str(usb)])
    path = data_dir / "backup-plans" / f"{plan['id']}.json"
    before = path.read_bytes()
    for change in (
        {"keep": {"last": -1}},
        {"schedule": "* * *"},
        {"destinations": [str(data_dir)]},
        {"wallet_path": "Other"},
        {"verify": False},
        {},
    ):
        response = await client.patch(f"/api/backup-plans/{plan['id']}", json=change)
        assert response.status == 400, change
        assert (await response.json())["success"] is False
    assert path.read_bytes() == before
    response = await client.patch(f"/api/backup-plans/{plan['id']}", data="enabled=false")
    assert response.status == 415
    assert path.read_bytes() == before


async def test_an_unknown_plan_is_404_everywhere(client):
    for method, path in (
        ("GET", "/api/backup-plans/p_nope"),
        ("PATCH", "/api/backup-plans/p_nope"),
        ("DELETE", "/api/backup-plans/p_nope"),
        ("GET", "/api/backup-plans/p_nope/runs"),
        ("POST", "/api/backup-plans/p_nope/run"),
    ):
        response = await client.request(method, path, json={"enabled": True} if method == "PATCH" else None)
        assert response.status == 404, (method, path)
        assert await response.json() == {"success": False, "error": "Backup plan not found: p_nope", "code": 404}
