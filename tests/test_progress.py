"""Progress a person can use: phases with their own percentage, bytes_total known or null (never 0 while
running), rate and eta_seconds, and a message that never lags the counters."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from jobs.context import JobContext
from jobs.models import JobKind
from jobs.restore.extraction import extract_archive
from jobs.restore.plan import RestorePlan
from tests.conftest import coin_bytes, write_coins
from tests.test_jobs_runner import MakeRunner
from tests.test_jobs_runner import executor as executor  # noqa: F401 - fixtures
from tests.test_jobs_runner import make_runner as make_runner  # noqa: F401
from tests.test_jobs_runner import script as script  # noqa: F401
from tests.test_restore_checks import sound_archive


async def test_phases_rate_and_eta(make_runner: MakeRunner) -> None:  # noqa: F811
    steps: asyncio.Queue[tuple[dict[str, Any], asyncio.Event]] = asyncio.Queue()

    async def stepping(ctx: JobContext) -> dict[str, Any]:
        while True:
            values, applied = await steps.get()
            if not values:
                return {"success": True}
            ctx.report(**values)
            await asyncio.sleep(0.12)  # past the throttle: each step is published
            applied.set()

    runner = await make_runner(funcs={JobKind.BACKUP: stepping})
    job = await runner.submit(JobKind.BACKUP, wallet_path="/w/A", params={})

    async def step(**values: Any) -> dict[str, Any]:
        applied = asyncio.Event()
        await steps.put((values, applied))
        await applied.wait()
        return job.to_json()

    first = await step(phase="archiving", span=(0, 80), done=0, total=100, message="Archiving (0 of 100)")
    assert first["phase"] == "archiving" and first["bytes_total"] is None  # unknown: null, not 0
    assert (first["rate"], first["eta_seconds"]) == (None, None)
    await asyncio.sleep(0.3)
    half = await step(done=50, bytes_done=5000, message="Archiving (50 of 100)")
    assert (half["phase_progress"], half["progress"]) == (50, 40)
    assert half["rate"] > 0 and half["eta_seconds"] > 0  # from files, as the byte total is unknown
    assert await step(bytes_total=0) and job.bytes_total is None  # never 0 while running
    verifying = await step(phase="verifying", span=(80, 100), done=0, total=10, bytes_total=1000, message="Verifying")
    assert verifying["phase"] == "verifying" and verifying["phase_progress"] == 0
    assert verifying["progress"] == 80 and verifying["done"] == 0 and verifying["bytes_done"] == 0
    assert verifying["rate"] is None  # a new phase has its own rate
    await asyncio.sleep(0.3)
    late = await step(done=5, bytes_done=500)
    assert (late["phase_progress"], late["progress"]) == (50, 90)
    assert late["eta_seconds"] is not None and late["eta_seconds"] > 0
    await steps.put(({}, asyncio.Event()))
    done = (await runner.wait(job.id, 2)).to_json()
    assert (done["progress"], done["phase_progress"]) == (100, 100)


def test_restore_knows_its_byte_total_from_the_start_and_its_message_keeps_up(tmp_path: Path) -> None:
    files = {f"Bank/{n}.bin": coin_bytes(n) for n in range(1, 700)}
    path = sound_archive(tmp_path / "a.zip", files)
    reports: list[dict[str, Any]] = []
    location = tmp_path / "location"
    location.mkdir()
    extract_archive(RestorePlan(path, location, "Hand"), location / "t", key=None, cancel=threading.Event(),
                    report=lambda **values: reports.append(values))  # fmt: skip
    first = next(r for r in reports if r.get("phase") == "restoring")
    assert first["bytes_total"] == sum(len(data) for data in files.values())
    assert [r["phase"] for r in reports if "phase" in r] == ["restoring", "syncing"]
    for r in reports:
        if "done" in r:
            assert f"{r['done']:,} of" in r["message"], r  # the words say what the numbers say


async def test_a_backup_reports_its_verification_as_its_own_phase(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    write_coins(data_dir / "Wallets" / "Default" / "Bank", range(1, 30))
    response = await client.post("/api/wallets/backup", json={"destination": str(tmp_path / "b")})
    body = await response.json()
    job = await (await client.get(f"/api/jobs/{body['job_id']}")).json()
    assert job["phase"] == "verifying" and job["phase_progress"] == 100 and job["progress"] == 100
    assert job["bytes_total"] == body["zip_size"] and job["done"] == job["total"] == body["entries"]
