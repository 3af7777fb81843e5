"""POST /api/wallets/restore: round trip, never overwriting, zip-slip and link refusal, manifest checks, keys."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.wallet import coins, crypto
from app.wallet.config import Config
from app.wallet.paths import canonical
from app.wallet.registry import read_registry
from jobs.models import Job, JobCancelled, JobFailed, JobKind
from jobs.restore import restore
from jobs.restore.archive_checks import entry_name_problem
from tests.conftest import coin_bytes, write_coins

PASSWORD = "correct horse battery staple"
OTHER_KEY = hashlib.sha256(b"somebody else's key").digest()


# -- helpers ------------------------------------------------------------------------------------------


def error(status: int, message: str) -> dict[str, Any]:
    return {"success": False, "error": message, "code": status}


def registered(data_dir: Path) -> list[str]:
    return [entry.wallet_path for entry in read_registry(data_dir / "wallet-locations.csv").entries]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) below `root`, by relative path."""
    found: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = Path(path).read_bytes()
    return found


def everything(root: Path) -> set[str]:
    """All paths below `root` but the job store and the logs, which every request may touch."""
    skip = ("Client_Data/jobs", "Client_Data/logs")
    return {p for p in (str(q.relative_to(root)) for q in root.rglob("*")) if not p.startswith(skip)}


async def make_wallet(client: TestClient, data_dir: Path, name: str = "Savings") -> Path:
    response = await client.post("/api/wallets/create", json={"wallet_path": name})
    assert response.status == 200, await response.text()
    wallet = Path((await response.json())["wallet_path"])
    write_coins(wallet / "Bank", range(1, 9))
    write_coins(wallet / "Bank", [100, 101], denomination=3)
    write_coins(wallet / "Fracked", [20, 21, 22], denomination=1)
    write_coins(wallet / "Limbo", [30])
    (wallet / "Receipts" / "2026-01-01.txt").write_text("a receipt\n" * 50)
    (wallet / "Export" / "empty" / "deeper").mkdir(parents=True)
    return wallet


async def backup(client: TestClient, wallet: Path, destination: Path) -> Path:
    response = await client.post(
        "/api/wallets/backup", json={"wallet_path": str(wallet), "destination": str(destination)}
    )
    assert response.status == 200, await response.text()
    return Path((await response.json())["zip_path"])


async def restore_call(client: TestClient, **params: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/wallets/restore", json=params)
    return response.status, await response.json()


async def balance(client: TestClient, wallet: Path) -> dict[str, Any]:
    response = await client.get("/api/wallets/balance", params={"wallet_path": str(wallet)})
    assert response.status == 200, await response.text()
    body = await response.json()
    return {k: v for k, v in body.items() if k not in ("wallet_name", "wallet_path")}


def build_archive(
    path: Path,
    files: dict[str, bytes],
    *,
    root: str = "Hand/",
    dirs: tuple[str, ...] = ("Bank/", "Fracked/"),
    extra: list[tuple[zipfile.ZipInfo | str, bytes]] = (),  # type: ignore[assignment]
    manifest: bool = True,
    edit_manifest: Any = None,
) -> Path:
    """A backup archive as jobs.backup.backup writes it (root folder, entries, manifest), built by hand."""
    entries: list[dict[str, Any]] = [{"path": root, "type": "dir"}]
    entries += [{"path": root + d, "type": "dir"} for d in dirs]
    for name, data in files.items():
        entries.append(
            {"path": root + name, "type": "file", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    document = {
        "format": "cloudcoin-wallet-backup",
        "format_version": 1,
        "wallet_name": root[:-1],
        "root": root,
        "created": datetime.now(UTC).isoformat(),
        "key_check": None,
        "entries": entries,
    }
    if edit_manifest is not None:
        edit_manifest(document)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(root, b"")
        for d in dirs:
            archive.writestr(root + d, b"")
        for name, data in files.items():
            archive.writestr(root + name, data)
        for info, data in extra:
            archive.writestr(info, data)
        if manifest:
            archive.writestr("backup-manifest.json", json.dumps(document))
    return path


def hand_files() -> dict[str, bytes]:
    return {"Bank/1 CloudCoin #1 'x'.bin": coin_bytes(1), "Fracked/10 CloudCoin #2 'x'.bin": coin_bytes(2, 1)}


def flip_byte_of(zip_path: Path, entry: str, offset: int = 100) -> None:
    """Flip one byte of a stored entry's data in place (its CRC and SHA-256 no longer match)."""
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(entry)
    assert info.compress_type == zipfile.ZIP_STORED
    with open(zip_path, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
        where = info.header_offset + 30 + name_len + extra_len + offset
        fh.seek(where)
        byte = fh.read(1)
        fh.seek(where)
        fh.write(bytes([byte[0] ^ 0x01]))


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    folder = tmp_path / "backups"
    folder.mkdir()
    return folder


# -- the round trip -----------------------------------------------------------------------------------


async def test_restore_round_trip_has_equal_balance_and_identical_files(
    client: TestClient, data_dir: Path, backups: Path
) -> None:
    wallet = await make_wallet(client, data_dir)
    zip_path = await backup(client, wallet, backups)
    status, body = await restore_call(client, zip_path=str(zip_path), new_name="Restored")
    assert status == 200, body
    target = canonical(data_dir / "Wallets") / "Restored"
    original = await balance(client, wallet)
    assert body["command"] == "wallet-restore"
    assert body["success"] is True and body["verified"] is True
    assert body["wallet_path"] == str(target) and body["wallet_name"] == "Restored"
    assert body["files_restored"] == sum(1 for v in tree(wallet).values() if v is not None)
    assert body["files_decrypted"] == 0
    assert body["total_value"] == original["total_value"] == 2000 + 8 + 30 + 1
    assert body["total_notes"] == original["total_notes"] == 14
    assert await balance(client, target) == original
    assert tree(target) == tree(wallet)  # every file byte-identical, every (empty) folder there
    assert (target / "Export" / "empty" / "deeper").is_dir()
    listing = await (await client.get("/api/wallets/list")).json()
    assert str(target) in [w["wallet_path"] for w in listing["wallets"]]
    assert str(target) in registered(data_dir)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "Bank").stat().st_mode) == 0o700
    for coin in (target / "Bank").iterdir():
        assert stat.S_IMODE(coin.stat().st_mode) == 0o600
    assert not [n for n in os.listdir(target.parent) if n.startswith(".cloudcoin-restore-")]


async def test_restore_keeps_the_archive_name_without_new_name(
    client: TestClient, data_dir: Path, backups: Path
) -> None:
    wallet = await make_wallet(client, data_dir)
    zip_path = await backup(client, wallet, backups)
    location = backups.parent / "elsewhere"
    location.mkdir()
    status, body = await restore_call(client, zip_path=str(zip_path), location=str(location))
    assert status == 200, body
    assert body["wallet_path"] == str(canonical(location) / "Savings")
    assert body["location"] == str(canonical(location))
    assert tree(location / "Savings") == tree(wallet)
    assert str(canonical(location) / "Savings") in registered(data_dir)


async def test_restore_never_overwrites_an_existing_wallet(client: TestClient, data_dir: Path, backups: Path) -> None:
    wallet = await make_wallet(client, data_dir)
    zip_path = await backup(client, wallet, backups)
    before = tree(wallet)
    registry = (data_dir / "wallet-locations.csv").read_bytes()
    status, body = await restore_call(client, zip_path=str(zip_path))
    location = canonical(data_dir / "Wallets")
    assert (status, body) == (409, error(409, f"A wallet named 'Savings' already exists in {location}"))
    # An empty folder of that name is not replaced either (rename(2) would have).
    (location / "Empty").mkdir()
    status, body = await restore_call(client, zip_path=str(zip_path), new_name="Empty")
    assert (status, body) == (409, error(409, f"A wallet named 'Empty' already exists in {location}"))
    assert os.listdir(location / "Empty") == []
    assert tree(wallet) == before
    assert (data_dir / "wallet-locations.csv").read_bytes() == registry


@pytest.mark.parametrize("checked", [True, False])
def test_restore_refuses_a_name_taken_while_it_ran(
    tmp_path: Path, make_config: Any, monkeypatch: pytest.MonkeyPatch, checked: bool
) -> None:
    """The 409 at rename time: the target appeared after the job's checks; the temporary folder goes.

    Without the check under the lock (`checked` False), the no-replace rename itself refuses."""
    config: Config = make_config()
    config.data_dir.mkdir(parents=True)
    location = tmp_path / "loc"
    location.mkdir()
    archive = build_archive(tmp_path / "hand.zip", hand_files())
    plan = restore.RestorePlan(archive, location, "Hand")
    temp = location / restore.temp_name("job1")
    restore.extract_archive(plan, temp, key=None, cancel=threading.Event(), report=lambda **_: None)
    assert (temp / "Bank").is_dir()
    (location / "Hand").mkdir()  # somebody else's, created meanwhile (empty: rename(2) would replace it)
    if not checked:
        monkeypatch.setattr(restore, "check_target_free", lambda plan, registry: None)
    with pytest.raises(JobFailed) as failed:
        restore.place_and_register(config, plan, temp, lambda: None)
    assert (failed.value.http_status, failed.value.body) == (
        409,
        error(409, f"A wallet named 'Hand' already exists in {location}"),
    )
    assert os.listdir(location) == ["Hand"] and os.listdir(location / "Hand") == []
    assert registered(config.data_dir) == []


async def test_restore_async_answers_202_and_the_job_completes(
    client: TestClient, data_dir: Path, backups: Path
) -> None:
    wallet = await make_wallet(client, data_dir)
    zip_path = await backup(client, wallet, backups)
    response = await client.post(
        "/api/wallets/restore", json={"zip_path": str(zip_path), "new_name": "Later", "async": True}
    )
    assert response.status == 202
    accepted = await response.json()
    job = await (await client.get(f"/api/jobs/{accepted['job_id']}", params={"wait": 30})).json()
    assert job["status"] == "completed", job
    assert job["kind"] == "wallet-restore"
    assert job["wallet_path"] == str(canonical(data_dir / "Wallets") / "Later")
    assert job["result"]["wallet_name"] == "Later"


# -- parameters ---------------------------------------------------------------------------------------


async def test_restore_parameter_errors(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "hand.zip", hand_files())
    assert await restore_call(client) == (400, error(400, "Missing required parameter: zip_path"))
    assert await restore_call(client, zip_path="  ") == (400, error(400, "Missing required parameter: zip_path"))
    assert await restore_call(client, zip_path="hand.zip") == (400, error(400, "zip_path must be an absolute path"))
    missing = str(tmp_path / "nope.zip")
    assert await restore_call(client, zip_path=missing) == (404, error(404, f"Backup file not found: {missing}"))
    assert await restore_call(client, zip_path=str(tmp_path)) == (404, error(404, f"Backup file not found: {tmp_path}"))
    assert await restore_call(client, zip_path=str(archive), location="rel") == (
        400,
        error(400, "location must be an absolute path"),
    )
    gone = str(tmp_path / "gone")
    assert await restore_call(client, zip_path=str(archive), location=gone) == (
        400,
        error(400, f"Location does not exist: {gone}"),
    )
    assert await restore_call(client, zip_path=str(archive), location=str(archive)) == (
        400,
        error(400, f"Location is not a folder: {archive}"),
    )
    assert await restore_call(client, zip_path=str(archive), location=str(data_dir)) == (
        400,
        error(400, "A wallet cannot live inside Client_Data outside its Wallets folder"),
    )
    default = str(canonical(data_dir / "Wallets" / "Default"))
    assert await restore_call(client, zip_path=str(archive), location=default) == (
        400,
        error(400, f"A wallet cannot be restored inside another wallet: {default}"),
    )
    for bad, why in (
        ("a/b", "it contains a path separator"),
        ("..", "'.' and '..' are not names"),
        ("CON", "CON is a reserved device name"),
    ):
        assert await restore_call(client, zip_path=str(archive), new_name=bad) == (
            400,
            error(400, f"Invalid wallet name: {why}"),
        )
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"hello, not a zip" * 10)
    status, body = await restore_call(client, zip_path=str(not_zip))
    assert status == 400 and body["error"].startswith("Not a valid ZIP archive")
    response = await client.get("/api/wallets/restore", params={"zip_path": str(archive)})
    assert response.status == 405
    jobs = await (await client.get("/api/jobs", params={"kind": "wallet-restore"})).json()
    assert jobs["count"] == 0  # no job for a refused request


# -- refusing archives --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evil", "why"),
    [
        ("../evil", "climbs out of its folder with '..'"),
        ("/abs", "is an absolute path"),
        ("Hand/../../x", "climbs out of its folder with '..'"),
        ("Hand/Bank/..\\..\\..\\x", "contains a backslash (a Windows path separator)"),
        ("C:/Windows/x", "starts with a drive letter"),
        ("Hand//x", "has an empty or '.' path component"),
    ],
)
async def test_restore_refuses_zip_slip_entries_and_writes_nothing(
    client: TestClient, tmp_path: Path, data_dir: Path, evil: str, why: str
) -> None:
    def also_list(document: dict[str, Any]) -> None:
        document["entries"].append(
            {"path": evil, "type": "file", "size": 4, "sha256": hashlib.sha256(b"evil").hexdigest()}
        )

    archive = build_archive(tmp_path / "slip.zip", hand_files(), extra=[(evil, b"evil")], edit_manifest=also_list)
    before = everything(tmp_path)
    registry = (data_dir / "wallet-locations.csv").read_bytes()
    status, body = await restore_call(client, zip_path=str(archive))
    assert status == 400, body
    assert body["error"] == f"Refusing to restore: archive entry '{evil}' {why}"
    assert body["problems"][0] == {"path": evil, "problem": why}
    assert everything(tmp_path) == before
    assert (data_dir / "wallet-locations.csv").read_bytes() == registry


async def test_restore_refuses_an_archive_whose_first_entry_escapes(client: TestClient, tmp_path: Path) -> None:
    archive = tmp_path / "first.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil", b"evil")
        zf.writestr("Hand/Bank/", b"")
    before = everything(tmp_path)
    status, body = await restore_call(client, zip_path=str(archive))
    assert status == 400
    assert body["error"] == "Refusing to restore: archive entry '../evil' climbs out of its folder with '..'"
    assert everything(tmp_path) == before


async def test_restore_refuses_a_symlink_entry(client: TestClient, tmp_path: Path) -> None:
    link = zipfile.ZipInfo("Hand/Bank/link.bin")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = build_archive(tmp_path / "link.zip", hand_files(), extra=[(link, b"/etc/passwd")])
    before = everything(tmp_path)
    status, body = await restore_call(client, zip_path=str(archive))
    assert (status, body["error"]) == (
        400,
        "Refusing to restore: archive entry 'Hand/Bank/link.bin' is a symbolic link",
    )
    assert everything(tmp_path) == before


async def test_restore_refuses_a_flipped_byte(
    client: TestClient, data_dir: Path, backups: Path, tmp_path: Path
) -> None:
    wallet = await make_wallet(client, data_dir)
    zip_path = await backup(client, wallet, backups)
    coin = sorted(
        n for n in zipfile.ZipFile(zip_path).namelist() if n.startswith("Savings/Bank/") and n.endswith(".bin")
    )[0]
    flip_byte_of(zip_path, coin)
    before = everything(tmp_path)
    status, body = await restore_call(client, zip_path=str(zip_path), new_name="Damaged")
    assert status == 400, body
    assert body["error"].startswith(f"Refusing to restore: archive entry '{coin}' is damaged")
    assert everything(tmp_path) == before
    assert str(canonical(data_dir / "Wallets") / "Damaged") not in registered(data_dir)


async def test_restore_refuses_an_entry_that_differs_from_the_manifest(client: TestClient, tmp_path: Path) -> None:
    """Sound CRC, wrong SHA-256: the manifest says the entry is something else."""
    files = hand_files()

    def lie(document: dict[str, Any]) -> None:
        for entry in document["entries"]:
            if entry["path"] == "Hand/Bank/1 CloudCoin #1 'x'.bin":
                entry["sha256"] = hashlib.sha256(b"something else").hexdigest()

    archive = build_archive(tmp_path / "lie.zip", files, edit_manifest=lie)
    before = everything(tmp_path)
    status, body = await restore_call(client, zip_path=str(archive))
    assert (status, body["error"]) == (
        400,
        "Refusing to restore: archive entry 'Hand/Bank/1 CloudCoin #1 'x'.bin' does not match the manifest (SHA-256 differs)",
    )
    assert everything(tmp_path) == before


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "Refusing to restore: the archive has no backup-manifest.json"),
        ("unlisted", "Refusing to restore: archive entry 'Hand/Bank/extra.bin' is not listed in the manifest"),
        (
            "absent",
            "Refusing to restore: archive entry 'Hand/Bank/ghost.bin' is listed in the manifest but missing from the archive",
        ),
        (
            "size",
            "Refusing to restore: archive entry 'Hand/Fracked/10 CloudCoin #2 'x'.bin' has 439 bytes, the manifest says 440",
        ),
        ("version", "Refusing to restore: manifest format_version 2 is not supported (only 1)"),
        ("format", "Refusing to restore: backup-manifest.json is not a CloudCoin wallet backup manifest"),
        ("outside", "Refusing to restore: archive entry 'stray.txt' lies outside the wallet folder Hand/"),
        ("no-fracked", "Refusing to restore: the archive holds no wallet (Hand/Fracked/ is missing)"),
    ],
)
async def test_restore_refuses_a_manifest_mismatch(client: TestClient, tmp_path: Path, case: str, message: str) -> None:
    files = hand_files()
    extra: list[tuple[str, bytes]] = []
    dirs: tuple[str, ...] = ("Bank/", "Fracked/")
    edit = None
    if case == "unlisted":
        extra = [("Hand/Bank/extra.bin", b"x")]
    elif case == "absent":

        def edit(d: dict[str, Any]) -> None:
            d["entries"].append({"path": "Hand/Bank/ghost.bin", "type": "file", "size": 1, "sha256": "0" * 64})
    elif case == "size":

        def edit(d: dict[str, Any]) -> None:
            d["entries"][-1]["size"] = 440
    elif case == "version":

        def edit(d: dict[str, Any]) -> None:
            d["format_version"] = 2
    elif case == "format":

        def edit(d: dict[str, Any]) -> None:
            d["format"] = "something"
    elif case == "outside":
        extra = [("stray.txt", b"x")]
    elif case == "no-fracked":
        files = {"Bank/1 CloudCoin #1 'x'.bin": coin_bytes(1)}
        dirs = ("Bank/",)
    archive = build_archive(
        tmp_path / "m.zip", files, dirs=dirs, extra=extra, manifest=case != "missing", edit_manifest=edit
    )
    before = everything(tmp_path)
    status, body = await restore_call(client, zip_path=str(archive))
    assert (status, body["error"]) == (400, message)
    assert everything(tmp_path) == before


async def test_a_hand_built_archive_restores(client: TestClient, tmp_path: Path, data_dir: Path) -> None:
    files = {**hand_files(), "Limbo/1 CloudCoin #3 'x'.bin": coin_bytes(3), "notes/deep/file.txt": b"hello"}
    archive = build_archive(tmp_path / "hand.zip", files)
    status, body = await restore_call(client, zip_path=str(archive))
    assert status == 200, body
    target = canonical(data_dir / "Wallets") / "Hand"
    assert (body["total_value"], body["total_notes"], body["files_restored"]) == (12, 3, 4)
    assert {k: v for k, v in tree(target).items() if v is not None} == files


# -- keys ---------------------------------------------------------------------------------------------


async def test_logged_in_restore_decrypts_coins_under_the_key_only(
    client: TestClient, data_dir: Path, backups: Path
) -> None:
    wallet = await make_wallet(client, data_dir)
    response = await client.post("/api/system/login", json={"password": PASSWORD})
    assert response.status == 200, await response.text()
    key = crypto.derive_key(PASSWORD)
    # A coin already under the login key, and one under somebody else's key (carried verbatim).
    mine_plain = coin_bytes(500)
    (wallet / "Bank" / "1 CloudCoin #500 'mine'.bin").write_bytes(crypto.encrypt_coin_file(mine_plain, key))
    foreign = crypto.encrypt_coin_file(coin_bytes(600), OTHER_KEY)
    (wallet / "Fracked" / "1 CloudCoin #600 'foreign'.bin").write_bytes(foreign)
    original = tree(wallet)
    zip_path = await backup(client, wallet, backups)
    with zipfile.ZipFile(zip_path) as archive:  # the archive holds no plaintext coin from Bank/Fracked
        for name in archive.namelist():
            if name.startswith(("Savings/Bank/", "Savings/Fracked/")) and name.endswith(".bin"):
                assert archive.read(name)[5] == coins.Encryption.AES256_CTR
    status, body = await restore_call(client, zip_path=str(zip_path), new_name="Decrypted")
    assert status == 200, body
    target = canonical(data_dir / "Wallets") / "Decrypted"
    restored = tree(target)
    assert body["files_decrypted"] == 8 + 2 + 3 + 1  # the plaintext ones re-encrypted, and "mine"
    assert body["files_left_encrypted"] == 1
    assert restored.pop("Bank/1 CloudCoin #500 'mine'.bin") == mine_plain
    assert restored["Fracked/1 CloudCoin #600 'foreign'.bin"] == foreign
    del original["Bank/1 CloudCoin #500 'mine'.bin"]
    assert restored == original  # decrypt(encrypt(coin)) is the coin, byte for byte
    assert (await balance(client, target))["total_value"] == (await balance(client, wallet))["total_value"]


async def test_restore_without_a_key_leaves_encrypted_coins_encrypted(
    client: TestClient, data_dir: Path, backups: Path
) -> None:
    wallet = await make_wallet(client, data_dir)
    assert (await client.post("/api/system/login", json={"password": PASSWORD})).status == 200
    zip_path = await backup(client, wallet, backups)
    assert (await client.post("/api/system/logout")).status == 200
    status, body = await restore_call(client, zip_path=str(zip_path), new_name="StillEncrypted")
    assert status == 200, body
    assert (body["files_decrypted"], body["files_left_encrypted"]) == (0, 13)
    target = canonical(data_dir / "Wallets") / "StillEncrypted"
    with zipfile.ZipFile(zip_path) as archive:
        for name in archive.namelist():
            if not name.endswith("/") and name.startswith("Savings/"):
                assert (target / name.removeprefix("Savings/")).read_bytes() == archive.read(name)
    restored, original = await balance(client, target), await balance(client, wallet)
    assert restored["total_value"] == original["total_value"] and restored["encrypted_notes"] == 13


# -- cancel and crash ---------------------------------------------------------------------------------


def test_a_cancelled_extraction_removes_its_folder(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "hand.zip", hand_files())
    location = tmp_path / "loc"
    location.mkdir()
    cancel = threading.Event()
    plan = restore.RestorePlan(archive, location, "Hand")
    with pytest.raises(JobCancelled):
        restore.extract_archive(
            plan, location / restore.temp_name("j"), key=None, cancel=cancel, report=lambda **_: cancel.set()
        )
    assert os.listdir(location) == []


def test_the_restart_cleanup_removes_the_temporary_folder(tmp_path: Path, make_config: Any) -> None:
    config: Config = make_config()
    location = tmp_path / "loc"
    job = Job.new(JobKind.RESTORE, wallet_path=str(location / "W"), params={"location": str(location)})
    temp = location / restore.temp_name(job.id)
    (temp / "Bank").mkdir(parents=True)
    (temp / "Bank" / "half.bin").write_bytes(b"x")
    assert restore.cleanup_restore(config, job) is None  # half done: undone, the job fails
    assert not location.joinpath(restore.temp_name(job.id)).exists()
    assert os.listdir(location) == []


def test_the_restart_cleanup_registers_a_wallet_moved_before_the_crash(tmp_path: Path, make_config: Any) -> None:
    config: Config = make_config()
    config.data_dir.mkdir(parents=True)
    location = tmp_path / "loc"
    target = location / "W"
    (target / "Bank").mkdir(parents=True)
    (target / "Fracked").mkdir()
    job = Job.new(JobKind.RESTORE, wallet_path=str(target), params={"location": str(location)})
    assert restore.cleanup_restore(config, job) is None  # never started: nothing is registered
    assert registered(config.data_dir) == []
    job.started_at = datetime.now(UTC)
    result = restore.cleanup_restore(config, job)
    assert registered(config.data_dir) == [str(target)]
    assert result is not None and result["recovered"] is True and result["wallet_path"] == str(target)
    assert result["total_notes"] == 0 and result["folders_restored"] == 2


# -- the name checks, directly ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a\\b", "C:x", "c:/x", "a/b\0c", "./a", ".."],
)
def test_unsafe_entry_names(name: str) -> None:
    assert entry_name_problem(name) is not None


@pytest.mark.parametrize("name", ["Default/", "Default/Bank/1 CloudCoin #1 'x'.bin", "W/a..b/c.", "W/…/ü.txt", "W/a:b"])
def test_safe_entry_names(name: str) -> None:
    assert entry_name_problem(name) is None
