"""POST/GET /api/wallets/backup: the seed's errors, the archive, the name, the job contract, faults."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import threading
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from app import __version__
from app.wallet import coins
from jobs.backup import archive as backup_archive
from jobs.backup import backup as backup_job
from jobs.backup import output as backup_output
from jobs.backup.checks import TEMP_PREFIX
from jobs.backup.manifest import MANIFEST_LEVEL, MANIFEST_NAME
from tests.conftest import coin_bytes, write_coins
from tests.test_zipstream import raw_data

MISSING = {"status": "error", "error": "Missing required parameter: destination", "error_code": 1}
NOT_ABSOLUTE = {"error": True, "message": "Destination must be an absolute path", "code": 400}
UNRESOLVABLE = {"error": True, "message": "Destination path could not be resolved", "code": 400}
INSIDE = {
    "error": True,
    "message": "Backup destination cannot be inside Client_Data — choose a folder outside the program's data directory",
    "code": 400,
}
NO_PARENT = {"error": True, "message": "Destination directory does not exist", "code": 400}
CANNOT_CREATE = {"status": "error", "error": "Cannot create backup directory", "error_code": 101}
ZIP_FAILED = {"status": "error", "error": "Failed to create backup zip file", "error_code": 101}
SEED_FIELDS = {
    "command", "success", "wallet_path", "wallet_name", "zip_path", "destination", "files_added",
    "files_skipped", "files_reencrypted_for_backup", "files_added_plaintext", "files_added_multi_warned",
    "message",
}  # fmt: skip
EXTRA_FIELDS = {"job_id", "filename", "zip_size", "zip_sha256", "entries", "duration_ms"}


# -- helpers ------------------------------------------------------------------------------------


def default_wallet(data_dir: Path) -> Path:
    return data_dir / "Wallets" / "Default"


async def post_backup(client: Any, **params: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/wallets/backup", json=params)
    return response.status, await response.json()


def today() -> str:
    return time.strftime("%Y-%m-%d")


def wallet_files(wallet: Path) -> dict[str, bytes]:
    """Every regular file below `wallet` (links not followed), by path relative to it."""
    found = {}
    for root, _dirs, files in os.walk(wallet):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(wallet))] = path.read_bytes()
    return found


def wallet_dirs(wallet: Path) -> list[str]:
    return sorted(
        str(Path(root, name).relative_to(wallet))
        for root, dirs, _ in os.walk(wallet)
        for name in dirs
        if not Path(root, name).is_symlink()
    )


def fill_wallet(wallet: Path) -> None:
    write_coins(wallet / "Bank", range(100, 105))
    write_coins(wallet / "Fracked", range(200, 202), denomination=1)
    write_coins(wallet / "Limbo", [300], denomination=-2)
    (wallet / "Receipts" / "2025-01-01_receipt.txt").write_text("Receipt\n" * 50)
    (wallet / "Export" / "old" / "empty").mkdir(parents=True)


async def jobs_count(client: Any) -> int:
    response = await client.get("/api/jobs")
    return (await response.json())["count"]


async def wait_job(client: Any, job_id: str) -> dict[str, Any]:
    for _ in range(60):
        response = await client.get(f"/api/jobs/{job_id}", params={"wait": "5"})
        job = await response.json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


# -- the immediate checks, in api.md's order -----------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"destination": ""}, {"destination": "   "}, {"destination": "\t\n"}])
async def test_missing_destination_is_the_seeds_400(client, params):
    status, body = await post_backup(client, **params)
    assert (status, body) == (400, MISSING)


async def test_relative_destination_is_400(client):
    status, body = await post_backup(client, destination="backups/here")
    assert (status, body) == (400, NOT_ABSOLUTE)


async def test_broken_symlink_destination_could_not_be_resolved(client, tmp_path):
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    status, body = await post_backup(client, destination=str(tmp_path / "broken"))
    assert (status, body) == (400, UNRESOLVABLE)


async def test_destination_inside_client_data_is_refused(client, data_dir):
    for destination in (data_dir, data_dir / "backups", data_dir / "Wallets" / "Default" / "Bank"):
        status, body = await post_backup(client, destination=str(destination))
        assert (status, body) == (400, INSIDE), destination
    assert not (data_dir / "backups").exists()


async def test_dotdot_traversal_into_client_data_is_refused(client, tmp_path, data_dir):
    destination = f"{tmp_path}/elsewhere/../{data_dir.name}/backups"
    status, body = await post_backup(client, destination=destination)
    assert (status, body) == (400, INSIDE)
    assert not (data_dir / "backups").exists()


async def test_symlink_into_client_data_is_refused(client, tmp_path, data_dir):
    (tmp_path / "innocent").symlink_to(data_dir)
    (tmp_path / "wallets-link").symlink_to(data_dir / "Wallets" / "Default")
    for destination in (tmp_path / "innocent", tmp_path / "innocent" / "backups", tmp_path / "wallets-link"):
        status, body = await post_backup(client, destination=str(destination))
        assert (status, body) == (400, INSIDE), destination
    assert not (data_dir / "backups").exists()


async def test_unknown_wallet_is_404_with_the_backup_shape(client, tmp_path):
    status, body = await post_backup(client, destination=str(tmp_path / "b"), wallet_path="Nope")
    assert (status, body) == (404, {"error": True, "message": "Wallet not found: Nope", "code": 404})
    status, body = await post_backup(client, destination=str(tmp_path / "b"), wallet_path=str(tmp_path))
    assert (status, body) == (404, {"error": True, "message": f"Wallet not found: {tmp_path}", "code": 404})


async def test_offline_wallet_is_404(client, tmp_path):
    response = await client.post("/api/wallets/create", json={"wallet_path": "Gone"})
    assert response.status == 200
    wallet_path = (await response.json())["wallet_path"]
    shutil.rmtree(wallet_path)
    status, body = await post_backup(client, destination=str(tmp_path / "b"), wallet_path="Gone")
    assert (status, body) == (404, {"error": True, "message": "Wallet not found: Gone", "code": 404})


async def test_missing_parent_is_400_and_nothing_is_created(client, tmp_path):
    destination = tmp_path / "no" / "such" / "place"
    status, body = await post_backup(client, destination=str(destination))
    assert (status, body) == (400, NO_PARENT)
    assert not (tmp_path / "no").exists()


async def test_checks_come_in_api_order(client, tmp_path, data_dir):
    # destination before wallet, absolute before resolvable, Client_Data before the wallet, wallet before parent
    assert await post_backup(client, wallet_path="Nope") == (400, MISSING)
    assert await post_backup(client, destination="rel", wallet_path="Nope") == (400, NOT_ABSOLUTE)
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    assert await post_backup(client, destination=str(tmp_path / "broken"), wallet_path="Nope") == (400, UNRESOLVABLE)
    assert await post_backup(client, destination=str(data_dir / "x"), wallet_path="Nope") == (400, INSIDE)
    status, _ = await post_backup(client, destination=str(tmp_path / "a" / "b"), wallet_path="Nope")
    assert status == 404


async def test_refused_requests_create_no_job(client, tmp_path, data_dir):
    await post_backup(client)
    await post_backup(client, destination="rel")
    await post_backup(client, destination=str(data_dir))
    await post_backup(client, destination=str(tmp_path / "x"), wallet_path="Nope")
    await post_backup(client, destination=str(tmp_path / "a" / "b"))
    response = await client.post("/api/wallets/backup", params={"async": "true"})
    assert response.status == 400
    assert await jobs_count(client) == 0


async def test_destination_inside_the_wallet_is_refused(client, tmp_path):
    wallet = tmp_path / "usb" / "Savings"
    for folder in ("Bank", "Fracked"):
        (wallet / folder).mkdir(parents=True)
    response = await client.post("/api/wallets/locations", json={"path": str(wallet)})
    assert response.status == 200
    status, body = await post_backup(client, destination=str(wallet / "backups"), wallet_path=str(wallet))
    expected = {"error": True, "message": "Backup destination cannot be inside the wallet being backed up", "code": 400}
    assert (status, body) == (400, expected)


async def test_destination_that_is_a_file_is_the_seeds_500(client, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    status, body = await post_backup(client, destination=str(tmp_path / "afile"))
    assert (status, body) == (500, CANNOT_CREATE)
    assert (tmp_path / "afile").read_text() == "not a folder"


async def test_destination_that_cannot_be_created_is_the_seeds_500(client, tmp_path, monkeypatch):
    real_mkdir = os.mkdir

    def refuse(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == tmp_path / "nope":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(backup_job.os, "mkdir", refuse)
    status, body = await post_backup(client, destination=str(tmp_path / "nope"))
    assert (status, body) == (500, CANNOT_CREATE)


# -- a successful backup ---------------------------------------------------------------------------


async def test_backup_archives_every_file_and_folder_byte_for_byte(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    fill_wallet(wallet)
    before = wallet_files(wallet)
    destination = tmp_path / "backups"

    status, body = await post_backup(client, destination=str(destination))

    assert status == 200, body
    assert set(body) == SEED_FIELDS | EXTRA_FIELDS
    name = f"CloudCoin-Wallet-Backup_Default_{today()}.zip"
    zip_path = destination / name
    assert body["command"] == "wallet-backup"
    assert body["success"] is True
    assert body["message"] == "Wallet backup created successfully"
    assert body["wallet_path"] == str(wallet.resolve())
    assert body["wallet_name"] == "Default"
    assert body["zip_path"] == str(zip_path)
    assert body["filename"] == name
    assert body["destination"] == str(destination)
    assert body["files_added"] == 7  # Bank 5 + Fracked 2; Limbo is not counted
    assert body["files_added_plaintext"] == 7
    assert body["files_reencrypted_for_backup"] == 0
    assert body["files_added_multi_warned"] == 0
    assert body["files_skipped"] == 0
    assert len(body["job_id"]) == 32
    assert isinstance(body["duration_ms"], int)
    data = zip_path.read_bytes()
    assert body["zip_size"] == len(data)
    assert body["zip_sha256"] == hashlib.sha256(data).hexdigest()

    with zipfile.ZipFile(zip_path) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert len(names) == len(set(names)) == body["entries"]
        for rel, content in before.items():
            assert archive.read(f"Default/{rel}") == content, rel
            info = archive.getinfo(f"Default/{rel}")
            expected = zipfile.ZIP_STORED if rel.endswith(".bin") else zipfile.ZIP_DEFLATED
            assert info.compress_type == expected, rel
        dirs = wallet_dirs(wallet)
        assert "Export/old/empty" in dirs and "Corrupted" in dirs
        for rel in dirs:
            assert f"Default/{rel}/" in names, rel
        assert "Default/" in names
        assert len(names) == len(before) + len(dirs) + 2  # + the top folder + the manifest
        # The seed-style human line, then the summary that lists read without the central directory.
        human, summary = archive.comment.decode().split("\n")
        assert human == f"CloudCoin wallet backup: Default, {today()}"
        manifest = json.loads(archive.read("backup-manifest.json"))
        assert json.loads(summary) == {
            "cloudcoin_backup_summary": 1, "wallet_name": "Default", "wallet_path": manifest["wallet_path"],
            "created": manifest["created"], "job_id": manifest["job_id"], "plan_id": None,
            "coins": manifest["totals"]["coins"], "value": manifest["totals"]["value"],
            "encrypted": manifest["counters"]["files_added_plaintext"] == 0,
        }  # fmt: skip
        assert manifest["plan_id"] is None  # a one-off backup belongs to no plan

    assert stat.S_IMODE(zip_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(destination.stat().st_mode) == 0o700
    assert sorted(os.listdir(destination)) == [name]
    assert wallet_files(wallet) == before


async def test_manifest_describes_the_archive(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    fill_wallet(wallet)
    status, body = await post_backup(client, destination=str(tmp_path / "b"))
    assert status == 200, body
    with zipfile.ZipFile(body["zip_path"]) as archive:
        manifest = json.loads(archive.read("backup-manifest.json"))
        names = [n for n in archive.namelist() if n != "backup-manifest.json"]
        entries = {e["path"]: e for e in manifest["entries"]}
        assert sorted(entries) == sorted(names)
        assert manifest["entry_count"] == len(names)
        for path, entry in entries.items():
            if path.endswith("/"):
                assert entry["type"] == "dir"
                continue
            content = archive.read(path)
            assert entry == {
                "path": path, "type": "file", "size": len(content), "sha256": hashlib.sha256(content).hexdigest()
            }  # fmt: skip
    assert manifest["format"] == "cloudcoin-wallet-backup"
    assert manifest["format_version"] == 1
    assert manifest["wallet_name"] == "Default"
    assert manifest["root"] == "Default/"
    assert manifest["server_version"] == __version__
    assert manifest["job_id"] == body["job_id"]
    assert manifest["reencrypted"] is False and manifest["key_check"] is None
    assert manifest["created"].endswith("Z")
    folders = manifest["folders"]
    assert folders["Bank"]["coins"] == 5 and folders["Bank"]["value"] == 5
    assert folders["Bank"]["value_units"] == 5 * coins.UNITS_PER_COIN
    assert folders["Fracked"]["coins"] == 2 and folders["Fracked"]["value"] == 20
    assert folders["Limbo"]["coins"] == 1 and folders["Limbo"]["value"] == 0.01
    assert folders["Receipts"]["files"] == 1 and folders["Receipts"]["coins"] == 0
    assert folders["."]["files"] == 2  # transactions.csv, config.toml
    assert manifest["totals"]["coins"] == 8
    assert manifest["counters"] == {k: body[k] for k in manifest["counters"]}


async def test_the_archive_passes_unzip_t(client, tmp_path, data_dir):
    if shutil.which("unzip") is None:
        pytest.skip("Info-ZIP unzip is not installed")
    fill_wallet(default_wallet(data_dir))
    status, body = await post_backup(client, destination=str(tmp_path / "b"))
    assert status == 200, body
    result = subprocess.run(["unzip", "-t", body["zip_path"]], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


async def test_two_backups_on_one_day_never_overwrite(client, tmp_path, data_dir):
    fill_wallet(default_wallet(data_dir))
    destination = tmp_path / "b"
    destination.mkdir()
    first = f"CloudCoin-Wallet-Backup_Default_{today()}.zip"
    (destination / first).write_bytes(b"an older backup")
    names = []
    for _ in range(2):
        status, body = await post_backup(client, destination=str(destination))
        assert status == 200, body
        names.append(body["filename"])
    assert names == [first.replace(".zip", "_2.zip"), first.replace(".zip", "_3.zip")]
    assert (destination / first).read_bytes() == b"an older backup"
    assert sorted(os.listdir(destination)) == sorted([first, *names])


async def test_concurrent_backups_to_one_place_get_distinct_names(make_client, tmp_path, data_dir):
    client = await make_client(workers=2)
    fill_wallet(default_wallet(data_dir))
    other = await client.post("/api/wallets/create", json={"wallet_path": "Other"})
    assert other.status == 200
    destination = tmp_path / "b"
    results = await asyncio.gather(
        *(post_backup(client, destination=str(destination), wallet_path=w) for w in ("Default", "Other", "Default"))
    )
    assert [status for status, _ in results] == [200, 200, 200]
    names = sorted(body["filename"] for _, body in results)
    assert len(set(names)) == 3
    assert sorted(os.listdir(destination)) == names


async def test_an_existing_destination_folder_keeps_its_mode(client, tmp_path, data_dir):
    destination = tmp_path / "shared"
    destination.mkdir(mode=0o755)
    os.chmod(destination, 0o755)
    status, body = await post_backup(client, destination=str(destination))
    assert status == 200, body
    assert stat.S_IMODE(destination.stat().st_mode) == 0o755
    assert stat.S_IMODE(Path(body["zip_path"]).stat().st_mode) == 0o600


# -- parameters: GET, form, JSON; another wallet ---------------------------------------------------


async def test_get_with_query_parameters(client, tmp_path, data_dir):
    fill_wallet(default_wallet(data_dir))
    response = await client.get(
        "/api/wallets/backup", params={"destination": str(tmp_path / "g"), "wallet_path": "Default"}
    )
    assert response.status == 200
    body = await response.json()
    assert body["files_added"] == 7
    assert Path(body["zip_path"]).is_file()


async def test_post_with_form_body(client, tmp_path, data_dir):
    fill_wallet(default_wallet(data_dir))
    response = await client.post("/api/wallets/backup", data={"destination": str(tmp_path / "f")})
    assert response.status == 200
    assert Path((await response.json())["zip_path"]).parent == tmp_path / "f"


async def test_post_with_query_string_like_the_seed_examples(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    response = await client.post(
        "/api/wallets/backup", params={"wallet_path": str(wallet), "destination": str(tmp_path / "q")}
    )
    assert response.status == 200
    assert (await response.json())["wallet_name"] == "Default"


async def test_body_wins_over_query(client, tmp_path, data_dir):
    response = await client.post(
        "/api/wallets/backup", params={"destination": "relative"}, json={"destination": str(tmp_path / "j")}
    )
    assert response.status == 200
    assert (await response.json())["destination"] == str(tmp_path / "j")


async def test_backup_of_a_wallet_outside_client_data(client, tmp_path):
    wallet = tmp_path / "usb" / "Savings"
    write_coins(wallet / "Bank", range(1, 4))
    (wallet / "Fracked").mkdir()
    response = await client.post("/api/wallets/locations", json={"path": str(wallet)})
    assert response.status == 200
    status, body = await post_backup(client, destination=str(tmp_path / "b"), wallet_path=str(wallet))
    assert status == 200, body
    assert body["wallet_name"] == "Savings"
    assert body["filename"] == f"CloudCoin-Wallet-Backup_Savings_{today()}.zip"
    with zipfile.ZipFile(body["zip_path"]) as archive:
        assert sorted(n for n in archive.namelist() if n.endswith("/")) == [
            "Savings/", "Savings/Bank/", "Savings/Fracked/"
        ]  # fmt: skip


# -- the job contract: 202 and polling -------------------------------------------------------------


@pytest.mark.parametrize("how", ["param", "header"])
async def test_async_answers_202_then_the_job_has_the_same_body(client, tmp_path, data_dir, how):
    fill_wallet(default_wallet(data_dir))
    destination = str(tmp_path / "a")
    if how == "param":
        response = await client.post("/api/wallets/backup", json={"destination": destination, "async": "true"})
    else:
        response = await client.post(
            "/api/wallets/backup", json={"destination": destination}, headers={"Prefer": "respond-async"}
        )
        assert response.headers["Preference-Applied"] == "respond-async"
    assert response.status == 202
    accepted = await response.json()
    job_id = accepted["job_id"]
    assert accepted["status_url"] == f"/api/jobs/{job_id}" == response.headers["Location"]
    job = await wait_job(client, job_id)
    assert job["status"] == "completed"
    assert job["kind"] == "wallet-backup"
    assert job["params"] == {"destination": destination}
    assert job["progress"] == 100
    result = job["result"]
    assert set(result) == SEED_FIELDS | EXTRA_FIELDS
    assert result["job_id"] == job_id
    assert result["files_added"] == 7
    assert Path(result["zip_path"]).is_file()
    assert job["done"] == job["total"] and job["total"] >= 10
    assert job["bytes_done"] == job["bytes_total"] > 0


# -- what is left out ------------------------------------------------------------------------------


async def test_symlinks_and_special_files_are_skipped_and_counted(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    fill_wallet(wallet)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "1 CloudCoin #999 'x'.bin"
    secret.write_bytes(coin_bytes(999))
    (outside / "private.txt").write_text("not part of the wallet")
    (wallet / "Bank" / "linked.bin").symlink_to(secret)
    (wallet / "Linked").symlink_to(outside, target_is_directory=True)
    (wallet / "Receipts" / "dangling.txt").symlink_to(tmp_path / "nothing")
    os.mkfifo(wallet / "Pending" / "a-fifo")

    status, body = await post_backup(client, destination=str(tmp_path / "b"))

    assert status == 200, body
    assert body["files_skipped"] == 4
    assert body["files_added"] == 7
    with zipfile.ZipFile(body["zip_path"]) as archive:
        names = archive.namelist()
        data = Path(body["zip_path"]).read_bytes()
        manifest = json.loads(archive.read("backup-manifest.json"))
    assert not any("linked" in n.lower() or "dangling" in n or "fifo" in n for n in names)
    assert b"not part of the wallet" not in data
    assert secret.read_bytes()[39:] not in data
    reasons = {entry["path"]: entry["reason"] for entry in manifest["skipped"]}
    assert reasons == {
        "Default/Bank/linked.bin": "symbolic link",
        "Default/Linked": "symbolic link",
        "Default/Receipts/dangling.txt": "symbolic link",
        "Default/Pending/a-fifo": "not a regular file",
    }


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
async def test_unreadable_files_are_skipped_and_counted(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    fill_wallet(wallet)
    locked = wallet / "Receipts" / "locked.txt"
    locked.write_text("x")
    locked.chmod(0)
    status, body = await post_backup(client, destination=str(tmp_path / "b"))
    assert status == 200, body
    assert body["files_skipped"] == 1


async def test_multi_coin_files_are_counted_and_added_verbatim(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    write_coins(wallet / "Bank", range(1, 3))
    multi = coins.build_coin_file(
        [coins.Coin(0, serial, tuple(os.urandom(16) for _ in range(25))) for serial in (7, 8, 9)]
    )
    (wallet / "Bank" / "3 CloudCoin #3 'export'.bin").write_bytes(multi)
    (wallet / "Export" / "3 CloudCoin #3 'export'.bin").write_bytes(multi)  # outside Bank/Fracked: not counted
    status, body = await post_backup(client, destination=str(tmp_path / "b"))
    assert status == 200, body
    assert body["files_added_multi_warned"] == 1
    assert body["files_added"] == 3
    assert body["files_added_plaintext"] == 3
    with zipfile.ZipFile(body["zip_path"]) as archive:
        assert archive.read("Default/Bank/3 CloudCoin #3 'export'.bin") == multi
        manifest = json.loads(archive.read("backup-manifest.json"))
    assert manifest["folders"]["Bank"]["coins"] == 5
    assert manifest["folders"]["Export"]["coins"] == 3


async def test_broken_coin_files_do_not_stop_the_backup(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    write_coins(wallet / "Bank", range(1, 3))
    truncated = coin_bytes(5)[:100]
    (wallet / "Bank" / "truncated.bin").write_bytes(truncated)
    (wallet / "Bank" / "wrong-format.bin").write_bytes(b"\x08" + coin_bytes(6)[1:])
    (wallet / "Bank" / "empty.bin").write_bytes(b"")
    status, body = await post_backup(client, destination=str(tmp_path / "b"))
    assert status == 200, body
    assert body["files_added"] == 5
    assert body["files_added_plaintext"] == 5
    with zipfile.ZipFile(body["zip_path"]) as archive:
        assert archive.read("Default/Bank/truncated.bin") == truncated
        assert archive.read("Default/Bank/empty.bin") == b""
        manifest = json.loads(archive.read("backup-manifest.json"))
    assert manifest["folders"]["Bank"]["unreadable_coin_files"] == 3
    assert manifest["folders"]["Bank"]["coins"] == 2


async def test_a_big_file_is_streamed_and_hashed(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    big = os.urandom(3 << 20)
    (wallet / "Receipts" / "big.log").write_bytes(big)
    status, body = await post_backup(client, destination=str(tmp_path / "b"))
    assert status == 200, body
    data = Path(body["zip_path"]).read_bytes()
    assert body["zip_sha256"] == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(body["zip_path"]) as archive:
        assert archive.read("Default/Receipts/big.log") == big
        manifest = json.loads(archive.read("backup-manifest.json"))
    entry = next(e for e in manifest["entries"] if e["path"] == "Default/Receipts/big.log")
    assert entry["sha256"] == hashlib.sha256(big).hexdigest()


# -- BackupPlaces.txt ------------------------------------------------------------------------------


async def test_backup_places_newest_first_unique_at_most_ten(client, tmp_path, data_dir):
    places = data_dir / "BackupPlaces.txt"
    destinations = [tmp_path / f"place{i:02d}" for i in range(12)]
    for destination in destinations:
        status, body = await post_backup(client, destination=str(destination))
        assert status == 200, body
    lines = places.read_text().splitlines()
    assert lines == [str(d) for d in reversed(destinations)][:10]
    status, _ = await post_backup(client, destination=str(destinations[5]))
    assert status == 200
    lines = places.read_text().splitlines()
    assert lines[0] == str(destinations[5])
    assert len(lines) == 10 and len(set(lines)) == 10
    assert stat.S_IMODE(places.stat().st_mode) == 0o600


async def test_a_failed_backup_is_not_remembered(client, tmp_path, data_dir):
    (tmp_path / "afile").write_text("x")
    await post_backup(client, destination=str(tmp_path / "afile"))
    assert not (data_dir / "BackupPlaces.txt").exists()


# -- cancel and faults: no file left behind --------------------------------------------------------


def pause_first_coin(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Hold the backup at its first coin: `started` is set once it is there, it goes on at `release`."""
    started, release = threading.Event(), threading.Event()
    real, real_batch = backup_archive.plain_single_units, backup_archive.plain_singles_units

    def hold() -> None:
        if not started.is_set():
            started.set()
            release.wait(10)

    def slow_first(data: bytes) -> int | None:
        hold()
        return real(data)

    def slow_first_batch(datas: list[bytes]) -> int | None:  # the walk's batch path
        hold()
        return real_batch(datas)

    monkeypatch.setattr(backup_archive, "plain_single_units", slow_first)
    monkeypatch.setattr(backup_archive, "plain_singles_units", slow_first_batch)
    return started, release


async def test_cancel_mid_archive_leaves_no_file(client, tmp_path, data_dir, monkeypatch):
    write_coins(default_wallet(data_dir) / "Bank", range(1, 400))
    started, release = pause_first_coin(monkeypatch)
    destination = tmp_path / "b"
    response = await client.post("/api/wallets/backup", json={"destination": str(destination), "async": True})
    assert response.status == 202
    job_id = (await response.json())["job_id"]
    assert await asyncio.to_thread(started.wait, 10)
    assert [n for n in os.listdir(destination) if n.startswith(".cloudcoin-backup-")] == [backup_job.temp_name(job_id)]
    response = await client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status == 202
    release.set()
    job = await wait_job(client, job_id)
    assert job["status"] == "cancelled"
    assert os.listdir(destination) == []
    assert not (data_dir / "BackupPlaces.txt").exists()


async def test_sync_caller_of_a_cancelled_backup_gets_an_answer(client, tmp_path, data_dir, monkeypatch):
    write_coins(default_wallet(data_dir) / "Bank", range(1, 50))
    started, release = pause_first_coin(monkeypatch)
    destination = tmp_path / "b"
    request = asyncio.ensure_future(post_backup(client, destination=str(destination)))
    assert await asyncio.to_thread(started.wait, 10)
    job_id = (await (await client.get("/api/jobs")).json())["jobs"][0]["id"]
    assert (await client.post(f"/api/jobs/{job_id}/cancel")).status == 202
    release.set()
    status, body = await request
    assert status == 409 and body["job_id"] == job_id
    assert os.listdir(destination) == []


@pytest.mark.parametrize("fail_at_write", [1, 2])
async def test_disk_full_mid_archive_is_the_seeds_500_and_leaves_nothing(
    client, tmp_path, data_dir, monkeypatch, fail_at_write
):
    write_coins(default_wallet(data_dir) / "Bank", range(1, 3000))  # ~1.5 MB: several 1 MiB writes
    real_write = backup_job.ArchiveFile.write
    calls = {"n": 0}

    def write(self: Any, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] >= fail_at_write:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(backup_job.ArchiveFile, "write", write)
    destination = tmp_path / "b"
    status, body = await post_backup(client, destination=str(destination))
    assert (status, body) == (500, ZIP_FAILED)
    assert not destination.exists()  # not even the folder the backup created
    assert not (data_dir / "BackupPlaces.txt").exists()


async def test_an_unwritable_destination_is_the_seeds_500(client, tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if TEMP_PREFIX in os.fspath(path):
            raise PermissionError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(backup_job.os, "open", refuse)
    destination = tmp_path / "b"
    destination.mkdir()
    status, body = await post_backup(client, destination=str(destination))
    assert (status, body) == (500, ZIP_FAILED)
    assert os.listdir(destination) == []


async def test_a_failed_fsync_of_the_archive_is_the_seeds_500_and_leaves_nothing(
    client, tmp_path, data_dir, monkeypatch
):
    write_coins(default_wallet(data_dir) / "Bank", range(1, 5))
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").rpartition("/")[2].startswith(TEMP_PREFIX):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(backup_output.os, "fsync", failing)
    destination = tmp_path / "b"
    status, body = await post_backup(client, destination=str(destination))
    assert (status, body) == (500, ZIP_FAILED)
    assert not destination.exists()


async def test_the_archive_is_fsynced_before_it_takes_its_name(client, tmp_path, data_dir, monkeypatch):
    """The fsync runs beside the read-back; the rename waits for it to end."""
    write_coins(default_wallet(data_dir) / "Bank", range(1, 5))
    events: list[str] = []
    real_fsync, real_claim = os.fsync, backup_job.claim_final_name

    def slow_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").rpartition("/")[2].startswith(TEMP_PREFIX):
            time.sleep(0.3)  # a slow disk: the read-back ends first
            events.append("fsync")
        real_fsync(fd)

    def claim(*args: Any) -> Any:
        events.append("rename")
        return real_claim(*args)

    monkeypatch.setattr(backup_output.os, "fsync", slow_fsync)
    monkeypatch.setattr(backup_job, "claim_final_name", claim)
    status, body = await post_backup(client, destination=str(tmp_path / "b"))
    assert status == 200, body
    assert events == ["fsync", "rename"]


def damage_after_writing(monkeypatch: pytest.MonkeyPatch, damage: Any) -> list[Path]:
    """Call `damage(path of the written archive)` once it is complete, before it is read back."""
    real_archive = backup_archive.Archiver.archive
    damaged: list[Path] = []

    def archive_then_damage(self: Any) -> Any:
        result = real_archive(self)
        path = Path(f"/proc/self/fd/{self.out._fd}").resolve()
        damage(path)
        damaged.append(path)
        return result

    monkeypatch.setattr(backup_archive.Archiver, "archive", archive_then_damage)
    return damaged


def flip_a_byte_of(name: str) -> Any:
    """Flip the first data byte of entry `name` in a written archive (its CRC-32 no longer matches)."""

    def flip(path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(name)
        with open(path, "r+b") as fh:
            fh.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0x01]))

    return flip


def cut_the_last_byte(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 1)


@pytest.mark.parametrize(
    ("damage", "logged"),
    [
        (flip_a_byte_of("Default/Bank/1 CloudCoin #3 'test'.bin"), "Default/Bank/1 CloudCoin #3 'test'.bin: CRC-32"),
        (cut_the_last_byte, "end of central directory"),
    ],
    ids=["a flipped byte", "a cut end record"],
)
async def test_an_archive_damaged_before_its_read_back_is_the_seeds_500_and_leaves_nothing(
    client, tmp_path, data_dir, monkeypatch, caplog, damage, logged
):
    write_coins(default_wallet(data_dir) / "Bank", range(1, 5))
    damaged = damage_after_writing(monkeypatch, damage)
    destination = tmp_path / "b"
    status, body = await post_backup(client, destination=str(destination))
    assert damaged  # the damage was done, and the read-back found it
    assert (status, body) == (500, ZIP_FAILED)
    assert not destination.exists()  # not even the folder the backup created
    assert logged in caplog.text


async def test_an_archive_read_back_whole_passes_with_a_big_entry_in_chunks(client, tmp_path, data_dir):
    wallet = default_wallet(data_dir)
    write_coins(wallet / "Bank", range(1, 5))
    (wallet / "Receipts" / "big.txt").write_bytes(os.urandom(3 << 20))  # over the reader's 1 MiB window
    status, body = await post_backup(client, destination=str(tmp_path / "b"))
    assert status == 200, body
    with zipfile.ZipFile(body["zip_path"]) as archive:
        assert archive.read("Default/Receipts/big.txt") == (wallet / "Receipts" / "big.txt").read_bytes()


def test_a_cancel_stops_the_read_back_between_the_chunks_of_a_big_entry(tmp_path, monkeypatch):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("W/big.bin", os.urandom(8 << 20))  # eight chunks of the reader's 1 MiB
    cancel = threading.Event()
    read: list[int] = []
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        data = real_pread(fd, size, offset)
        read.append(len(data))
        if sum(read) >= 2 << 20:  # the cancel comes while the second chunk is read
            cancel.set()
        return data

    monkeypatch.setattr(os, "pread", pread)
    with pytest.raises(backup_job.JobCancelled):
        backup_job._verify(archive, 1, job_id="j", cancel=cancel, report=lambda **_: None)
    assert sum(read) < 4 << 20  # stopped at the next chunk, not at the end of the entry


def test_a_cancel_during_the_read_back_stops_it(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(10_000):
            zf.writestr(f"W/{i}.bin", b"x")
    cancel = threading.Event()
    seen: list[int] = []

    def report(**fields: Any) -> None:
        seen.append(fields["done"])
        cancel.set()

    with pytest.raises(backup_job.JobCancelled):
        backup_job._verify(archive, 10_000, job_id="j", cancel=cancel, report=report)
    assert seen == [4096]  # the first report; the cancel was seen before the next one


def test_restart_cleanup_removes_the_jobs_temporary_file(tmp_path):
    from jobs.models import Job, JobKind

    job = Job.new(JobKind.BACKUP, wallet_path="/w", params={"destination": str(tmp_path)})
    (tmp_path / backup_job.temp_name(job.id)).write_bytes(b"half a zip")
    (tmp_path / backup_job.temp_name("another-job")).write_bytes(b"not ours")
    (tmp_path / "keep.zip").write_bytes(b"a finished backup")
    backup_job.remove_temporary_files(job)
    assert sorted(os.listdir(tmp_path)) == sorted([backup_job.temp_name("another-job"), "keep.zip"])
    backup_job.remove_temporary_files(job)  # idempotent
    gone = Job.new(JobKind.BACKUP, wallet_path="/w", params={"destination": str(tmp_path / "missing")})
    backup_job.remove_temporary_files(gone)  # a destination that never got created


def test_archive_file_keeps_its_position_through_patches_and_cuts(tmp_path):
    path = tmp_path / "out.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        out = backup_job.ArchiveFile(fd)
        first = os.urandom(3 << 20)
        assert out.write(first) == len(first) and out.tell() == len(first)
        end = out.tell()
        out.write(b"header--" + os.urandom(3000))
        out.seek(end + 2)
        out.write(b"PATCHED")  # what ZipWriter does to a streamed entry's header
        assert out.tell() == end + 9
        out.seek(0, os.SEEK_END)
        out.write(b"tail")
        out.truncate(end + 100)  # a failed entry cut off
        out.seek(end + 100)
        out.write(b"after the cut")
        data = path.read_bytes()
        assert data[:end] == first and data[end : end + 9] == b"hePATCHED"
        assert len(data) == end + 100 + len(b"after the cut") and data.endswith(b"after the cut")
    finally:
        os.close(fd)


def test_archive_file_remembers_the_first_failed_write(tmp_path):
    path = tmp_path / "out.bin"
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)  # not open for writing: every write fails
    try:
        out = backup_job.ArchiveFile(fd)
        with pytest.raises(OSError) as failed:
            out.write(b"data")
        assert out.write_error is failed.value
        assert out.tell() == 0
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (3 << 20) + 17])
def test_sync_and_hash_gives_the_sha256_of_the_whole_file(tmp_path, size):
    path = tmp_path / "out.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        finisher = backup_output.SyncAndHash(fd)
        finisher.join()
        assert finisher.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        os.close(fd)


def test_sync_and_hash_raises_the_fsyncs_error_and_join_does_not(tmp_path, monkeypatch):
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(backup_output.os, "fsync", failing)
    fd = os.open(tmp_path / "out.bin", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        finisher = backup_output.SyncAndHash(fd)
        finisher.join()
        with pytest.raises(OSError, match="Input/output"):
            finisher.hexdigest()
    finally:
        os.close(fd)


async def test_without_hard_links_the_name_is_still_claimed_without_overwriting(client, tmp_path, monkeypatch):
    def no_links(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")  # what FAT answers

    monkeypatch.setattr(backup_job.os, "link", no_links)
    destination = tmp_path / "fat"
    first = await post_backup(client, destination=str(destination))
    second = await post_backup(client, destination=str(destination))
    assert first[0] == second[0] == 200
    names = [first[1]["filename"], second[1]["filename"]]
    assert names[1] == names[0].replace(".zip", "_2.zip")
    assert sorted(os.listdir(destination)) == sorted(names)
    for _, body in (first, second):
        assert hashlib.sha256(Path(body["zip_path"]).read_bytes()).hexdigest() == body["zip_sha256"]


async def test_cancel_stops_inside_a_big_file_and_leaves_nothing(client, data_dir, tmp_path):
    """A cancel is honoured between the chunks of one huge file, not only between files."""
    wallet = data_dir / "Wallets" / "Default"
    with open(wallet / "Receipts" / "huge.log", "wb") as fh:
        fh.truncate(2 * 1024**3)  # sparse: deflating it takes far longer than this test waits
    destination = tmp_path / "big-cancel"
    accepted = await (
        await client.post("/api/wallets/backup", json={"destination": str(destination), "async": "true"})
    ).json()
    job_url = f"/api/jobs/{accepted['job_id']}"
    for _ in range(500):
        if destination.exists() and os.listdir(destination):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # well inside the big file by now
    started = time.monotonic()
    await client.post(f"{job_url}/cancel")
    job = await (await client.get(job_url, params={"wait": "30"})).json()
    assert job["status"] == "cancelled"
    assert time.monotonic() - started < 3, "the cancel waited for the whole file"
    assert os.listdir(destination) == []


async def test_the_manifest_is_deflated_at_zlibs_fastest_level(client: Any, data_dir: Path, tmp_path: Path) -> None:
    """A manifest up to 4 MiB is deflated at level 1: half the time of level 6 for a tenth more bytes."""
    write_coins(default_wallet(data_dir) / "Bank", range(1, 301))
    status, body = await post_backup(client, destination=str(tmp_path / "backups"))
    assert status == 200, body
    zip_path = Path(body["zip_path"])
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.getinfo(MANIFEST_NAME).compress_type == zipfile.ZIP_DEFLATED
        manifest = archive.read(MANIFEST_NAME)
    co = zlib.compressobj(MANIFEST_LEVEL, zlib.DEFLATED, -15)
    assert MANIFEST_LEVEL == 1
    assert raw_data(zip_path, MANIFEST_NAME) == co.compress(manifest) + co.flush()
