"""GET/POST /api/wallets/rename and the legacy /api/wallets/active/rename: checks, bodies, atomicity, the queue."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import app.wallet.storage
import jobs.rename
from app.wallet.paths import canonical
from app.wallet.registry import read_registry
from tests.conftest import write_coins

LEGACY_HEADERS = {"Deprecation": "true", "Link": '</api/wallets/rename>; rel="successor-version"'}


# -- helpers ------------------------------------------------------------------------------------------


def wallets_dir(data_dir: Path) -> Path:
    return canonical(data_dir / "Wallets")


def registered(data_dir: Path) -> list[str]:
    return [entry.wallet_path for entry in read_registry(data_dir / "wallet-locations.csv").entries]


def journal_entries(data_dir: Path) -> list[str]:
    folder = data_dir / "jobs" / "rename-journal"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def snapshot(data_dir: Path) -> tuple[list[str], bytes]:
    """What a refused rename must leave untouched: the Wallets folder and the registry file."""
    return sorted(os.listdir(data_dir / "Wallets")), (data_dir / "wallet-locations.csv").read_bytes()


async def create_wallet(client: TestClient, name: str) -> Path:
    response = await client.get("/api/wallets/create", params={"wallet_path": name})
    assert response.status == 200, await response.text()
    return Path((await response.json())["wallet_path"])


async def rename(client: TestClient, **params: str) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/wallets/rename", params=params)
    return response.status, await response.json()


def error(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"success": False, "error": message, "code": status, **extra}


@pytest.fixture
async def default(client: TestClient, data_dir: Path) -> Path:
    """The Default wallet every fresh data directory has, with a few coins in it."""
    path = wallets_dir(data_dir) / "Default"
    write_coins(path / "Bank", range(1, 6))
    write_coins(path / "Fracked", [9])
    return path


# -- the seed's errors, in the seed's order -----------------------------------------------------------


async def test_missing_wallet_path_is_400(client: TestClient) -> None:
    assert await rename(client, new_name="X") == (400, error(400, "Missing required parameter: wallet_path"))
    assert await rename(client, wallet_path="", new_name="X") == (
        400,
        error(400, "Missing required parameter: wallet_path"),
    )


async def test_missing_new_name_is_400(client: TestClient) -> None:
    assert await rename(client, wallet_path="Default") == (400, error(400, "Missing required parameter: new_name"))


async def test_wallet_path_is_checked_before_new_name(client: TestClient) -> None:
    assert await rename(client) == (400, error(400, "Missing required parameter: wallet_path"))


@pytest.mark.parametrize("given", ["NonExistent", "/no/such/wallet", "../Default", "Default/Bank"])
async def test_unknown_path_is_404_with_the_path_as_given(client: TestClient, given: str) -> None:
    assert await rename(client, wallet_path=given, new_name="X") == (
        404,
        error(404, f"Wallet path does not exist: {given}"),
    )


async def test_path_is_checked_before_the_name(client: TestClient) -> None:
    assert await rename(client, wallet_path="Nope", new_name="") == (
        404,
        error(404, "Wallet path does not exist: Nope"),
    )


async def test_unregistered_wallet_folder_is_404_and_never_renamed(client: TestClient, data_dir: Path) -> None:
    stray = wallets_dir(data_dir) / "Stray"
    write_coins(stray / "Bank", [1])
    (stray / "Fracked").mkdir()
    for given in ("Stray", str(stray)):
        assert await rename(client, wallet_path=given, new_name="Taken") == (
            404,
            error(404, f"Wallet path does not exist: {given}"),
        )
    assert stray.is_dir() and not (stray.parent / "Taken").exists()
    assert str(stray) not in registered(data_dir)


async def test_registered_wallet_whose_folder_is_gone_is_404(client: TestClient, data_dir: Path) -> None:
    gone = await create_wallet(client, "Gone")
    os.rename(gone, gone.with_name("Elsewhere"))
    assert await rename(client, wallet_path="Gone", new_name="Back") == (
        404,
        error(404, "Wallet path does not exist: Gone"),
    )


@pytest.mark.parametrize("name", ["", " ", "   \t "])
async def test_empty_name_is_400(client: TestClient, default: Path, name: str) -> None:
    assert await rename(client, wallet_path="Default", new_name=name) == (
        400,
        error(400, "New wallet name cannot be empty"),
    )


@pytest.mark.parametrize("name", ["Default", "  Default  "])
async def test_same_name_is_400(client: TestClient, default: Path, name: str) -> None:
    assert await rename(client, wallet_path="Default", new_name=name) == (
        400,
        error(400, "Wallet already has the name: Default"),
    )


async def test_name_of_another_wallet_is_409(client: TestClient, data_dir: Path, default: Path) -> None:
    await create_wallet(client, "Other")
    before = snapshot(data_dir)
    assert await rename(client, wallet_path="Default", new_name="Other") == (
        409,
        error(409, "A wallet with the name 'Other' already exists in that location"),
    )
    assert snapshot(data_dir) == before


@pytest.mark.parametrize("kind", ["empty folder", "file", "broken symlink", "symlink to a folder"])
async def test_anything_at_the_target_is_409_and_never_replaced(
    client: TestClient, data_dir: Path, default: Path, kind: str
) -> None:
    target = default.with_name("Taken")
    if kind == "empty folder":
        target.mkdir()  # os.rename would silently replace this one
    elif kind == "file":
        target.write_bytes(b"keep me")
    elif kind == "broken symlink":
        target.symlink_to(data_dir / "nowhere")
    else:
        target.symlink_to(data_dir)
    before = snapshot(data_dir)
    assert await rename(client, wallet_path="Default", new_name="Taken") == (
        409,
        error(409, "A wallet with the name 'Taken' already exists in that location"),
    )
    assert snapshot(data_dir) == before
    assert (default / "Bank").is_dir()


async def test_registered_but_absent_wallet_of_that_name_is_409(client: TestClient, data_dir: Path) -> None:
    """A registered wallet whose folder is offline still owns its name."""
    offline = await create_wallet(client, "Offline")
    os.rename(offline, data_dir / "offline-elsewhere")
    assert await rename(client, wallet_path="Default", new_name="Offline") == (
        409,
        error(409, "A wallet with the name 'Offline' already exists in that location"),
    )


# -- api.md's name rules, after the same-name check and before the conflict check ----------------------

INVALID_NAMES = [
    "../x",
    "a/b",
    "a\\b",
    ".",
    "..",
    ".hidden",
    "$admin",
    "CON",
    "con",
    "NUL.txt",
    "COM1",
    "LPT9",
    "a\x01b",
    "tab\there",
    "del\x7f",
    "x.",
    "a" * 65,
    *(f"a{char}b" for char in ':*?"<>|'),
]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
async def test_invalid_name_is_400_and_moves_nothing(
    client: TestClient, data_dir: Path, default: Path, name: str
) -> None:
    before = snapshot(data_dir)
    status, body = await rename(client, wallet_path="Default", new_name=name)
    assert status == 400
    assert body["success"] is False and body["code"] == 400
    assert body["error"].startswith("Invalid wallet name: "), body
    assert snapshot(data_dir) == before
    assert not journal_entries(data_dir)


@pytest.mark.parametrize("name", [".", ".."])
async def test_name_rules_come_before_the_conflict_check(client: TestClient, default: Path, name: str) -> None:
    """'.' and '..' always exist in the parent; the answer is the name rule, not a conflict."""
    status, body = await rename(client, wallet_path="Default", new_name=name)
    assert status == 400 and body["error"].startswith("Invalid wallet name: ")


async def test_sixty_four_characters_are_allowed(client: TestClient, default: Path) -> None:
    status, body = await rename(client, wallet_path="Default", new_name="b" * 64)
    assert status == 200, body
    assert (default.parent / ("b" * 64)).is_dir()


# -- success ------------------------------------------------------------------------------------------


async def test_rename_via_get_renames_folder_and_registry(client: TestClient, data_dir: Path, default: Path) -> None:
    coins_before = sorted(p.name for p in (default / "Bank").iterdir())
    status, body = await rename(client, wallet_path="Default", new_name="ProductionWallet")
    assert status == 200, body
    new = default.with_name("ProductionWallet")
    assert body == {
        "success": True,
        "message": "Wallet renamed successfully",
        "old_path": str(default),
        "new_path": str(new),
        "old_name": "Default",
        "new_name": "ProductionWallet",
        "command": "wallet-rename",
        "job_id": body["job_id"],
    }
    assert not default.exists()
    assert sorted(p.name for p in (new / "Bank").iterdir()) == coins_before
    assert str(new) in registered(data_dir) and str(default) not in registered(data_dir)
    assert not journal_entries(data_dir)
    listing = await (await client.get("/api/wallets/list")).json()
    assert [w["wallet_name"] for w in listing["wallets"]] == ["ProductionWallet"]
    job = await (await client.get(f"/api/jobs/{body['job_id']}")).json()
    assert job["kind"] == "wallet-rename" and job["status"] == "completed" and job["result"] == body


async def test_rename_via_post_form(client: TestClient, data_dir: Path, default: Path) -> None:
    response = await client.post("/api/wallets/rename", data={"wallet_path": "Default", "new_name": "Formed"})
    assert response.status == 200, await response.text()
    assert (await response.json())["new_name"] == "Formed"
    assert (default.with_name("Formed") / "Bank").is_dir()


async def test_rename_via_post_json_with_an_absolute_path(client: TestClient, data_dir: Path, default: Path) -> None:
    response = await client.post("/api/wallets/rename", json={"wallet_path": str(default), "new_name": "Jsoned"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["old_path"] == str(default) and body["new_path"] == str(default.with_name("Jsoned"))
    assert registered(data_dir) == [str(default.with_name("Jsoned"))]


async def test_body_parameters_win_over_the_query(client: TestClient, default: Path) -> None:
    response = await client.post(
        "/api/wallets/rename?new_name=FromQuery", json={"wallet_path": "Default", "new_name": "FromBody"}
    )
    assert (await response.json())["new_name"] == "FromBody"


async def test_name_with_spaces_is_trimmed_and_kept_inside(client: TestClient, data_dir: Path, default: Path) -> None:
    status, body = await rename(client, wallet_path="Default", new_name="  My New Wallet ")
    assert status == 200, body
    assert body["new_name"] == "My New Wallet"
    assert (default.with_name("My New Wallet") / "Fracked").is_dir()
    listing = await (await client.get("/api/wallets/list")).json()
    assert listing["wallets"][0]["wallet_name"] == "My New Wallet"


async def test_wallet_outside_client_data_is_renamed_in_its_own_parent(
    client: TestClient, tmp_path: Path, data_dir: Path
) -> None:
    (tmp_path / "usb").mkdir()
    outside = canonical(tmp_path / "usb")
    wallet = await create_wallet(client, str(outside / "Travel"))
    status, body = await rename(client, wallet_path=str(wallet), new_name="Travel 2025")
    assert status == 200, body
    assert body["new_path"] == str(outside / "Travel 2025")
    assert os.listdir(outside) == ["Travel 2025"]
    assert str(outside / "Travel 2025") in registered(data_dir)


async def test_active_wallet_stays_active_and_others_keep_their_place(client: TestClient, data_dir: Path) -> None:
    await create_wallet(client, "Second")
    await create_wallet(client, "Third")
    assert (await rename(client, wallet_path="Default", new_name="Main"))[0] == 200
    assert (await rename(client, wallet_path="Third", new_name="Last"))[0] == 200
    listing = await (await client.get("/api/wallets/list")).json()
    assert [(w["wallet_name"], w["active"]) for w in listing["wallets"]] == [
        ("Main", True),
        ("Second", False),
        ("Last", False),
    ]


async def test_only_the_case_changes(client: TestClient, data_dir: Path, default: Path) -> None:
    status, body = await rename(client, wallet_path="Default", new_name="default")
    assert status == 200, body
    assert registered(data_dir) == [str(default.with_name("default"))]


async def test_renamed_back_and_forth(client: TestClient, data_dir: Path, default: Path) -> None:
    for name in ("A", "B", "Default"):
        current = Path(registered(data_dir)[0]).name
        status, body = await rename(client, wallet_path=current, new_name=name)
        assert status == 200 and body["old_name"] == current, body
    assert registered(data_dir) == [str(default)] and (default / "Bank").is_dir()


# -- 202 on request -----------------------------------------------------------------------------------


async def test_async_true_answers_202_and_the_job_carries_the_result(client: TestClient, default: Path) -> None:
    response = await client.get(
        "/api/wallets/rename", params={"wallet_path": "Default", "new_name": "Later", "async": "true"}
    )
    assert response.status == 202
    accepted = await response.json()
    assert accepted["success"] is True and response.headers["Location"] == f"/api/jobs/{accepted['job_id']}"
    job = await (await client.get(f"/api/jobs/{accepted['job_id']}", params={"wait": "10"})).json()
    assert job["status"] == "completed"
    assert job["result"]["new_path"] == str(default.with_name("Later"))
    assert job["result"]["job_id"] == accepted["job_id"]


async def test_prefer_respond_async_answers_202(client: TestClient, default: Path) -> None:
    response = await client.post(
        "/api/wallets/rename", json={"wallet_path": "Default", "new_name": "Later"}, headers={"Prefer": "respond-async"}
    )
    assert response.status == 202
    assert response.headers["Preference-Applied"] == "respond-async"


async def test_refused_request_creates_no_job(client: TestClient, default: Path) -> None:
    await rename(client, wallet_path="Default", new_name="..", **{"async": "true"})
    await rename(client, wallet_path="Nope", new_name="X", **{"async": "true"})
    listing = await (await client.get("/api/jobs")).json()
    assert listing["count"] == 0


# -- failures inside the job --------------------------------------------------------------------------


async def test_unwritable_registry_rolls_the_folder_back(
    client: TestClient, data_dir: Path, default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the folder move and the registry write, wallet-locations.csv becomes a directory."""
    registry = data_dir / "wallet-locations.csv"
    original = registry.read_bytes()
    point_registry = jobs.rename._point_registry

    def registry_turns_into_a_directory(config: Any, old: Path, new: Path) -> None:
        assert new.is_dir() and not old.exists()  # the folder has moved
        registry.unlink()
        registry.mkdir()
        point_registry(config, old, new)

    monkeypatch.setattr(jobs.rename, "_point_registry", registry_turns_into_a_directory)
    status, body = await rename(client, wallet_path="Default", new_name="Renamed")
    assert (status, body) == (500, error(500, "Failed to save wallet configuration after rename", rolled_back=True))
    assert (default / "Bank").is_dir() and not default.with_name("Renamed").exists()
    assert not journal_entries(data_dir)
    registry.rmdir()
    registry.write_bytes(original)
    assert registered(data_dir) == [str(default)]


async def test_failing_registry_write_leaves_the_registry_unchanged(
    client: TestClient, data_dir: Path, default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_wallet(client, "Second")
    before = snapshot(data_dir)

    def disk_full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jobs.rename, "write_registry", disk_full)
    status, body = await rename(client, wallet_path="Second", new_name="Renamed")
    assert (status, body) == (500, error(500, "Failed to save wallet configuration after rename", rolled_back=True))
    assert snapshot(data_dir) == before


async def test_registry_failure_and_failed_roll_back_leave_the_journal_for_the_next_start(
    client: TestClient, data_dir: Path, default: Path, monkeypatch: pytest.MonkeyPatch, make_config: Any
) -> None:
    real_rename = jobs.rename.rename_noreplace
    calls: list[tuple[Path, Path]] = []

    def rename_once(source: Path, target: Path) -> None:
        calls.append((source, target))
        if len(calls) > 1:
            raise PermissionError(13, "Permission denied")
        real_rename(source, target)

    def disk_full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jobs.rename, "rename_noreplace", rename_once)
    monkeypatch.setattr(jobs.rename, "write_registry", disk_full)
    status, body = await rename(client, wallet_path="Default", new_name="Stuck")
    assert (status, body) == (500, error(500, "Failed to save wallet configuration after rename", rolled_back=False))
    assert len(journal_entries(data_dir)) == 1
    monkeypatch.undo()
    # What the next start does: the folder was moved, so the rename is completed.
    lines = jobs.rename.settle_journal(make_config())
    assert len(lines) == 1 and "completed" in lines[0]
    assert registered(data_dir) == [str(default.with_name("Stuck"))]
    assert not journal_entries(data_dir)


async def test_filesystem_rename_failure_is_500_and_changes_nothing(
    client: TestClient, data_dir: Path, default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(data_dir)

    def refuse(source: Path, target: Path) -> None:
        raise PermissionError(13, "Permission denied", str(source))

    monkeypatch.setattr(jobs.rename, "rename_noreplace", refuse)
    assert await rename(client, wallet_path="Default", new_name="Nope") == (
        500,
        error(500, "Failed to rename wallet directory on filesystem"),
    )
    assert snapshot(data_dir) == before and not journal_entries(data_dir)


async def test_journal_is_written_before_the_folder_is_touched(
    client: TestClient, data_dir: Path, default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rename = jobs.rename.rename_noreplace
    seen: list[dict[str, Any]] = []

    def check_journal(source: Path, target: Path) -> None:
        (entry,) = journal_entries(data_dir)
        seen.append(json.loads((data_dir / "jobs" / "rename-journal" / entry).read_text()))
        real_rename(source, target)

    monkeypatch.setattr(jobs.rename, "rename_noreplace", check_journal)
    status, body = await rename(client, wallet_path="Default", new_name="Journaled")
    assert status == 200
    wallet = os.lstat(default.with_name("Journaled"))  # the same folder, now under its new name
    assert seen == [
        {
            "job_id": body["job_id"],
            "old_path": str(default),
            "new_path": str(default.with_name("Journaled")),
            "folder": {"dev": wallet.st_dev, "ino": wallet.st_ino},
            "created_at": seen[0]["created_at"],
        }
    ]
    assert not journal_entries(data_dir)


async def test_conflict_that_appears_while_queued_is_409_in_the_job(
    client: TestClient, data_dir: Path, default: Path
) -> None:
    from app.web.state import wallets_key

    service = client.app[wallets_key]
    async with service.registry_lock:  # the job waits here, after the endpoint's checks passed
        response = await client.get(
            "/api/wallets/rename", params={"wallet_path": "Default", "new_name": "Late", "async": "true"}
        )
        assert response.status == 202
        job_id = (await response.json())["job_id"]
        default.with_name("Late").mkdir()  # an empty folder: os.rename would have replaced it
    job = await (await client.get(f"/api/jobs/{job_id}", params={"wait": "10"})).json()
    assert job["status"] == "failed"
    assert job["error"] == {
        "http_status": 409,
        "body": error(409, "A wallet with the name 'Late' already exists in that location"),
    }
    assert (default / "Bank").is_dir() and os.listdir(default.with_name("Late")) == []
    assert not journal_entries(data_dir)


# -- the no-replace rename itself ---------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [True, False], ids=["renameat2", "check-then-rename"])
def test_rename_noreplace_refuses_an_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool
) -> None:
    if not kernel:
        monkeypatch.setattr(app.wallet.storage, "_noreplace", None)
    elif app.wallet.storage._noreplace is None:
        pytest.skip("no renameat2/renamex_np in this C library")
    (tmp_path / "a" / "Bank").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        app.wallet.storage.rename_noreplace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a" / "Bank").is_dir() and os.listdir(tmp_path / "b") == []
    app.wallet.storage.rename_noreplace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c" / "Bank").is_dir() and not (tmp_path / "a").exists()


def test_rename_noreplace_falls_back_when_the_file_system_lacks_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctypes
    import errno

    def unsupported(src: bytes, dst: bytes) -> int:
        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(app.wallet.storage, "_noreplace", unsupported)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError):
        app.wallet.storage.rename_noreplace(tmp_path / "a", tmp_path / "b")
    app.wallet.storage.rename_noreplace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c").is_dir()


# -- cancelling ---------------------------------------------------------------------------------------


async def test_cancel_after_the_folder_move_began_is_409_and_the_rename_completes(
    client: TestClient, data_dir: Path, default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved, release = threading.Event(), threading.Event()
    point_registry = jobs.rename._point_registry

    def slow_registry_write(config: Any, old: Path, new: Path) -> None:
        moved.set()
        release.wait(10)
        point_registry(config, old, new)

    monkeypatch.setattr(jobs.rename, "_point_registry", slow_registry_write)
    response = await client.get(
        "/api/wallets/rename", params={"wallet_path": "Default", "new_name": "Moving", "async": "true"}
    )
    job_id = (await response.json())["job_id"]
    assert await asyncio.to_thread(moved.wait, 10)
    try:
        cancel = await client.post(f"/api/jobs/{job_id}/cancel")
        assert cancel.status == 409
        assert (await cancel.json())["code"] == 409
    finally:
        release.set()
    job = await (await client.get(f"/api/jobs/{job_id}", params={"wait": "10"})).json()
    assert job["status"] == "completed"
    assert registered(data_dir) == [str(default.with_name("Moving"))]


async def test_cancel_of_a_queued_rename_moves_nothing(client: TestClient, data_dir: Path, default: Path) -> None:
    from app.web.state import wallets_key

    before = snapshot(data_dir)
    async with client.app[wallets_key].registry_lock:
        response = await client.get(
            "/api/wallets/rename", params={"wallet_path": "Default", "new_name": "Never", "async": "true"}
        )
        job_id = (await response.json())["job_id"]
        cancel = await client.post(f"/api/jobs/{job_id}/cancel")
        assert cancel.status in (200, 202)
    job = await (await client.get(f"/api/jobs/{job_id}", params={"wait": "10"})).json()
    assert job["status"] == "cancelled"
    assert snapshot(data_dir) == before and not journal_entries(data_dir)


# -- many at once -------------------------------------------------------------------------------------


async def test_a_dozen_concurrent_renames_leave_a_consistent_registry(client: TestClient, data_dir: Path) -> None:
    paths = [await create_wallet(client, f"W{n:02d}") for n in range(12)]
    results = await asyncio.gather(
        *(rename(client, wallet_path=str(path), new_name=f"Renamed {path.name}") for path in paths)
    )
    assert [status for status, _ in results] == [200] * 12, results
    rows = registered(data_dir)
    expected = [str(wallets_dir(data_dir) / "Default")] + [str(p.with_name(f"Renamed {p.name}")) for p in paths]
    assert rows == expected  # same order, nothing lost, nothing duplicated
    assert all(Path(row, "Bank").is_dir() for row in rows)
    assert sorted(os.listdir(data_dir / "Wallets")) == sorted(Path(row).name for row in rows)
    assert not journal_entries(data_dir)


async def test_concurrent_renames_to_the_same_name_one_wins(client: TestClient, data_dir: Path) -> None:
    await create_wallet(client, "First")
    await create_wallet(client, "Second")
    results = await asyncio.gather(
        rename(client, wallet_path="First", new_name="Winner"), rename(client, wallet_path="Second", new_name="Winner")
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409], results
    rows = registered(data_dir)
    assert len(rows) == 3 and sum(row.endswith("/Winner") for row in rows) == 1
    assert all(Path(row).is_dir() for row in rows)


# -- the legacy index form ----------------------------------------------------------------------------


async def legacy(client: TestClient, **params: str) -> tuple[int, dict[str, Any], Any]:
    response = await client.get("/api/wallets/active/rename", params=params)
    return response.status, await response.json(), response.headers


async def test_legacy_rename_by_index(client: TestClient, data_dir: Path, default: Path) -> None:
    await create_wallet(client, "Second")
    status, body, headers = await legacy(client, index="1", to="Renamed")
    assert status == 200, body
    assert body["old_name"] == "Second" and body["new_name"] == "Renamed" and body["command"] == "wallet-rename"
    assert {name: headers[name] for name in LEGACY_HEADERS} == LEGACY_HEADERS
    assert registered(data_dir) == [str(default), str(default.with_name("Renamed"))]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"to": "X"}, 400, "Missing required parameter: index"),
        ({}, 400, "Missing required parameter: index"),
        ({"index": "0"}, 400, "Missing required parameter: to"),
        ({"index": "first", "to": "X"}, 400, "Parameter index must be an integer"),
        ({"index": "0", "to": " "}, 400, "New wallet name cannot be empty"),
        ({"index": "0", "to": "Default"}, 400, "Wallet already has the name: Default"),
    ],
)
async def test_legacy_errors_carry_the_deprecation_headers(
    client: TestClient, default: Path, params: dict[str, str], status: int, message: str
) -> None:
    got_status, body, headers = await legacy(client, **params)
    assert (got_status, body) == (status, error(status, message))
    assert {name: headers[name] for name in LEGACY_HEADERS} == LEGACY_HEADERS


@pytest.mark.parametrize("index", ["1", "7", "-1"])
async def test_legacy_index_out_of_range_is_404(client: TestClient, default: Path, index: str) -> None:
    status, body, headers = await legacy(client, index=index, to="X")
    assert status == 404 and body["success"] is False and body["code"] == 404
    assert headers["Deprecation"] == "true"
    assert (default / "Bank").is_dir()


async def test_legacy_invalid_name_and_conflict(client: TestClient, data_dir: Path, default: Path) -> None:
    await create_wallet(client, "Other")
    status, body, _ = await legacy(client, index="0", to="../escape")
    assert status == 400 and body["error"].startswith("Invalid wallet name: ")
    status, body, _ = await legacy(client, index="0", to="Other")
    assert (status, body) == (409, error(409, "A wallet with the name 'Other' already exists in that location"))


async def test_legacy_unexpected_error_is_500_with_the_headers(
    client: TestClient, default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(jobs.rename, "plan_rename_at_index", broken)
    status, body, headers = await legacy(client, index="0", to="X")
    assert status == 500 and body["error"] == "Internal server error" and body["request_id"]
    assert {name: headers[name] for name in LEGACY_HEADERS} == LEGACY_HEADERS


async def test_legacy_async_answers_202_with_the_headers(client: TestClient, default: Path) -> None:
    status, body, headers = await legacy(client, index="0", to="Later", **{"async": "true"})
    assert status == 202 and headers["Deprecation"] == "true" and body["job_id"]


# -- on the wallet's lane: after a running backup, before a backup queued after it ---------------------


async def test_rename_waits_for_a_running_backup_and_a_later_backup_archives_the_renamed_wallet(
    client: TestClient, tmp_path: Path, data_dir: Path, default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    import jobs.backup.backup

    write_coins(default / "Bank", range(100, 2100))
    write_coins(default / "Fracked", range(3000, 3200))
    coin_names = {f"{folder}/{p.name}" for folder in ("Bank", "Fracked") for p in (default / folder).iterdir()}
    assert len(coin_names) == 2206
    running, release = threading.Event(), threading.Event()
    real_write_backup = jobs.backup.backup.write_backup

    def gated_write_backup(plan: Any, **kwargs: Any) -> dict[str, Any]:
        if not running.is_set():  # hold the first backup until the rename has been submitted
            running.set()
            release.wait(10)
        return real_write_backup(plan, **kwargs)

    monkeypatch.setattr(jobs.backup.backup, "write_backup", gated_write_backup)
    destination = tmp_path / "backups"
    destination.mkdir()

    async def submit(path: str, params: dict[str, str]) -> str:
        response = await client.post(path, json=params, headers={"Prefer": "respond-async"})
        assert response.status == 202, await response.text()
        return (await response.json())["job_id"]

    first_backup = await submit("/api/wallets/backup", {"wallet_path": "Default", "destination": str(destination)})
    assert await asyncio.to_thread(running.wait, 10)
    renaming = asyncio.create_task(rename(client, wallet_path="Default", new_name="After Backup"))
    later_backup = None
    try:
        for _ in range(100):  # the rename is queued behind the running backup, nothing moved yet
            jobs_now = (await (await client.get("/api/jobs", params={"kind": "wallet-rename"})).json())["jobs"]
            if jobs_now:
                break
            await asyncio.sleep(0.01)
        assert [job["status"] for job in jobs_now] == ["queued"]
        assert default.is_dir() and not renaming.done()
        later_backup = await submit("/api/wallets/backup", {"wallet_path": "Default", "destination": str(destination)})
    finally:
        release.set()
    status, body = await renaming
    assert status == 200, body
    renamed = default.with_name("After Backup")

    first = await (await client.get(f"/api/jobs/{first_backup}", params={"wait": "20"})).json()
    assert first["status"] == "completed", first
    rename_job = await (await client.get(f"/api/jobs/{body['job_id']}")).json()
    assert rename_job["started_at"] >= first["finished_at"]
    with zipfile.ZipFile(first["result"]["zip_path"]) as archive:
        names = archive.namelist()
    assert {n.removeprefix("Default/") for n in names if n.endswith(".bin")} == coin_names  # every coin
    assert first["result"]["wallet_name"] == "Default"

    later = await (await client.get(f"/api/jobs/{later_backup}", params={"wait": "20"})).json()
    assert later["status"] == "completed", later
    assert later["wallet_path"] == str(renamed) and later["result"]["wallet_name"] == "After Backup"
    with zipfile.ZipFile(later["result"]["zip_path"]) as archive:
        later_names = archive.namelist()
    assert {n.removeprefix("After Backup/") for n in later_names if n.endswith(".bin")} == coin_names


async def test_legacy_headers_also_on_a_parameter_refused_before_the_handler(client):
    response = await client.get("/api/wallets/active/rename", params={"index": "0", "to": "a\0b"})
    assert response.status == 400
    assert {name: response.headers[name] for name in LEGACY_HEADERS} == LEGACY_HEADERS
    plain = await client.get("/api/wallets/rename", params={"wallet_path": "Default", "new_name": "a\0b"})
    assert "Deprecation" not in plain.headers
