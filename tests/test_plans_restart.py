"""Plans across restarts of a real app: catch-up once after downtime, a rename the start settles, former paths."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.wallet.config import Config
from jobs.rename import write_journal


async def create(client, usb: Path, **fields) -> dict:
    body = {"wallet_path": "Default", "destinations": [str(usb)], "schedule": "@hourly", **fields}
    response = await client.post("/api/backup-plans", json=body)
    assert response.status == 201, await response.text()
    return await response.json()


def plan_file(data_dir: Path, plan_id: str) -> Path:
    return data_dir / "backup-plans" / f"{plan_id}.json"


async def wait_for_run(client, plan_id: str) -> dict:
    for _ in range(300):
        run = (await (await client.get(f"/api/backup-plans/{plan_id}")).json())["last_run"]
        if run is not None and run["status"] not in ("queued", "running"):
            return run
        await asyncio.sleep(0.05)
    raise AssertionError("the run never finished")


async def test_a_plan_missed_during_downtime_runs_once_at_start(make_client, tmp_path, data_dir):
    usb = tmp_path / "usb"
    usb.mkdir()
    client = await make_client()
    plan = await create(client, usb)
    await client.close()
    # Three days of downtime: 72 hourly runs were missed.
    path = plan_file(data_dir, plan["id"])
    stored = json.loads(path.read_text())
    stored["plan"]["next_run_at"] = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    path.write_text(json.dumps(stored))

    client = await make_client()
    run = await wait_for_run(client, plan["id"])
    runs = (await (await client.get(f"/api/backup-plans/{plan['id']}/runs")).json())["runs"]
    assert [r["trigger"] for r in runs] == ["catch-up"] and run["status"] == "completed"
    got = await (await client.get(f"/api/backup-plans/{plan['id']}")).json()
    assert datetime.fromisoformat(got["next_run_at"]) > datetime.now(UTC)
    assert len([n for n in os.listdir(usb) if n.endswith(".zip")]) == 1


async def test_a_rename_settled_at_start_retargets_plans(make_client, tmp_path, data_dir):
    usb = tmp_path / "usb"
    usb.mkdir()
    client = await make_client()
    plan = await create(client, usb, schedule="0 3 * * *")
    first = await (await client.post(f"/api/backup-plans/{plan['id']}/run")).json()
    await client.close()
    # A crash right after the folder move: the journal has the entry, the registry the old path.
    old = data_dir / "Wallets" / "Default"
    new = data_dir / "Wallets" / "Savings"
    write_journal(Config(data_dir=data_dir), "crashed-rename", old.resolve(), new.resolve())
    os.rename(old, new)

    client = await make_client()
    got = await (await client.get(f"/api/backup-plans/{plan['id']}")).json()
    assert got["wallet_path"] == str(new.resolve())
    second = await (await client.post(f"/api/backup-plans/{plan['id']}/run")).json()
    assert second["status"] == "completed" and second["wallet_name"] == "Savings"
    listed = await (await client.get("/api/wallets/backups", params={"wallet_path": "Savings"})).json()
    # the archive made under the old path is still this wallet's (its former path is remembered)
    assert sorted(b["zip_path"] for b in listed["backups"]) == sorted(
        [first["destinations"][0]["zip_path"], second["destinations"][0]["zip_path"]]
    )


async def test_the_scheduler_task_starts_a_due_plan_on_its_own(make_client, tmp_path):
    from app.web.state import plans_key

    usb = tmp_path / "usb"
    usb.mkdir()
    client = await make_client()
    plan = await create(client, usb)
    service = client.app[plans_key]
    # Bring the plan's time to half a second from now (an hourly cron would make the test wait).
    soon = datetime.now(UTC) + timedelta(seconds=0.5)
    service._plans[plan["id"]] = service.get(plan["id"]).replace(next_run_at=soon)
    service.on_change()
    run = await wait_for_run(client, plan["id"])
    assert run["trigger"] == "schedule" and run["status"] == "completed"
    assert datetime.fromisoformat(run["scheduled_for"]) == soon.replace(microsecond=0)
    got = await (await client.get(f"/api/backup-plans/{plan['id']}")).json()
    assert datetime.fromisoformat(got["next_run_at"]) > soon
