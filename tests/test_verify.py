"""POST /api/wallets/backup/verify: a clean archive passes; damage and manifest mismatches are problems."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobs.models import JobCancelled, JobFailed
from jobs.restore.verify import verify_archive
from tests.conftest import write_coins
from tests.test_restore import build_archive, error, flip_byte_of, hand_files


async def verify(client: TestClient, **params: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/wallets/backup/verify", json=params)
    return response.status, await response.json()


@pytest.fixture
async def archive(client: TestClient, data_dir: Path, tmp_path: Path) -> Path:
    """A real backup of the Default wallet, made through the API."""
    wallet = data_dir / "Wallets" / "Default"
    write_coins(wallet / "Bank", range(1, 21))
    write_coins(wallet / "Fracked", [50, 51])
    (wallet / "Limbo" / "nested").mkdir()
    response = await client.post("/api/wallets/backup", json={"destination": str(tmp_path / "backups")})
    assert response.status == 200, await response.text()
    return Path((await response.json())["zip_path"])


def entry_count(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return len(zf.infolist())


async def test_a_clean_backup_verifies(client: TestClient, archive: Path) -> None:
    status, body = await verify(client, zip_path=str(archive))
    assert status == 200, body
    assert body["command"] == "backup-verify"
    assert body["success"] is True and body["ok"] is True
    assert body["problems"] == []
    assert body["entries_checked"] == entry_count(archive)
    assert body["manifest_found"] is True and body["wallet_name"] == "Default"
    assert body["zip_path"] == str(archive)


async def test_a_flipped_byte_in_a_coin_is_reported_with_its_path(client: TestClient, archive: Path) -> None:
    coin = sorted(n for n in zipfile.ZipFile(archive).namelist() if n.startswith("Default/Bank/"))[3]
    flip_byte_of(archive, coin, offset=200)
    status, body = await verify(client, zip_path=str(archive))
    assert status == 200, body  # the verification ran: a damaged archive is an answer, not an error
    assert body["success"] is True and body["ok"] is False
    assert [p["path"] for p in body["problems"]] == [coin]
    assert "CRC-32" in body["problems"][0]["problem"]
    assert body["entries_checked"] == entry_count(archive)


async def test_an_entry_that_differs_from_the_manifest_is_reported(client: TestClient, tmp_path: Path) -> None:
    def lie(document: dict[str, Any]) -> None:
        document["entries"][-1]["sha256"] = hashlib.sha256(b"other").hexdigest()
        document["entries"].append({"path": "Hand/Bank/ghost.bin", "type": "file", "size": 3, "sha256": "0" * 64})

    files = hand_files()
    path = build_archive(tmp_path / "lie.zip", files, extra=[("Hand/Bank/unlisted.bin", b"x")], edit_manifest=lie)
    status, body = await verify(client, zip_path=str(path))
    assert status == 200 and body["ok"] is False
    assert sorted((p["path"], p["problem"]) for p in body["problems"]) == [
        ("Hand/Bank/ghost.bin", "is listed in the manifest but missing from the archive"),
        ("Hand/Bank/unlisted.bin", "is not listed in the manifest"),
        ("Hand/Fracked/10 CloudCoin #2 'x'.bin", "SHA-256 differs from the manifest"),
    ]


async def test_unsafe_entries_and_a_missing_manifest_are_reported(client: TestClient, tmp_path: Path) -> None:
    path = build_archive(tmp_path / "evil.zip", hand_files(), extra=[("../evil", b"x")], manifest=False)
    status, body = await verify(client, zip_path=str(path))
    assert status == 200 and body["ok"] is False and body["manifest_found"] is False
    assert {(p["path"], p["problem"]) for p in body["problems"]} == {
        ("backup-manifest.json", "the archive has no backup-manifest.json"),
        ("../evil", "climbs out of its folder with '..'"),
    }


async def test_a_truncated_archive_is_not_ok(client: TestClient, archive: Path) -> None:
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    status, body = await verify(client, zip_path=str(archive))
    assert status == 200 and body["ok"] is False
    assert body["problems"] and body["entries_checked"] == 0


async def test_a_file_that_is_no_zip_is_not_ok(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "photo.zip"
    path.write_bytes(os.urandom(5000))
    status, body = await verify(client, zip_path=str(path))
    assert status == 200, body
    assert body["ok"] is False and body["entries_checked"] == 0 and body["problems"]
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    status, body = await verify(client, zip_path=str(empty))
    assert status == 200 and body["ok"] is False


async def test_verify_parameter_errors(client: TestClient, tmp_path: Path) -> None:
    assert await verify(client) == (400, error(400, "Missing required parameter: zip_path"))
    assert await verify(client, zip_path="") == (400, error(400, "Missing required parameter: zip_path"))
    assert await verify(client, zip_path="backup.zip") == (400, error(400, "zip_path must be an absolute path"))
    missing = str(tmp_path / "missing.zip")
    assert await verify(client, zip_path=missing) == (404, error(404, f"Backup file not found: {missing}"))
    response = await client.get("/api/wallets/backup/verify", params={"zip_path": missing})
    assert response.status == 405
    jobs = await (await client.get("/api/jobs", params={"kind": "backup-verify"})).json()
    assert jobs["count"] == 0


async def test_verify_async_answers_202(client: TestClient, archive: Path) -> None:
    response = await client.post("/api/wallets/backup/verify", json={"zip_path": str(archive), "async": "true"})
    assert response.status == 202
    accepted = await response.json()
    assert response.headers["Location"] == f"/api/jobs/{accepted['job_id']}"
    job = await (await client.get(f"/api/jobs/{accepted['job_id']}", params={"wait": 30})).json()
    assert job["status"] == "completed" and job["kind"] == "backup-verify"
    assert job["wallet_path"] == str(archive)
    assert job["result"]["ok"] is True and job["result"]["job_id"] == accepted["job_id"]


async def test_verify_takes_form_parameters(client: TestClient, archive: Path) -> None:
    response = await client.post("/api/wallets/backup/verify", data={"zip_path": str(archive)})
    assert response.status == 200
    assert (await response.json())["ok"] is True


def test_an_unreadable_file_is_an_error_not_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(path: Any, **_: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("jobs.restore.verify.ZipReader", unreadable)  # root reads a chmod-0 file; this does not
    path = build_archive(tmp_path / "hand.zip", hand_files())
    with pytest.raises(JobFailed) as failed:
        verify_archive(path, cancel=threading.Event(), report=lambda **_: None)
    assert (failed.value.http_status, failed.value.body) == (
        400,
        error(400, "The backup file cannot be read: Permission denied"),
    )


def test_a_cancelled_verify_stops(tmp_path: Path) -> None:
    path = build_archive(tmp_path / "hand.zip", hand_files())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        verify_archive(path, cancel=cancel, report=lambda **_: None)


def test_a_manifest_that_is_not_json_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W/", b"")
        zf.writestr("backup-manifest.json", b"{not json")
    body = verify_archive(path, cancel=threading.Event(), report=lambda **_: None)
    assert body["ok"] is False
    assert body["problems"] == [{"path": "backup-manifest.json", "problem": "backup-manifest.json is not valid JSON"}]
    assert body["manifest_found"] is True and body["wallet_name"] is None
    json.dumps(body)
