"""Names and paths the file system cannot hold, control characters, invisible and look-alike names: a 4xx, never a 500."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.wallet.paths import folded, folder_name_problem, lookalike_problem, wallet_name_problem
from app.wallet.registry import read_registry
from tests.test_restore import backup, make_wallet

EMOJI_64 = "\U0001f4b0" * 64  # 64 characters, 256 bytes in UTF-8
TOO_LONG = {"success": False, "error": "Invalid wallet name: longer than 255 bytes", "code": 400}


def registry_bytes(data_dir: Path) -> bytes:
    return (data_dir / "wallet-locations.csv").read_bytes()


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


async def call(client: TestClient, method: str, url: str, **params: Any) -> tuple[int, dict[str, Any]]:
    response = await client.request(method, url, json=params)
    assert response.content_type == "application/json", await response.text()
    return response.status, await response.json()


@pytest.fixture
async def archive(client: TestClient, data_dir: Path, tmp_path: Path) -> Path:
    wallet = await make_wallet(client, data_dir)
    return await backup(client, wallet, tmp_path / "backups")


# -- the rules themselves --------------------------------------------------------------------------------


def test_a_name_of_more_than_255_bytes_is_refused_even_under_64_characters():
    assert len(EMOJI_64) == 64
    assert folder_name_problem(EMOJI_64) == "longer than 255 bytes"
    assert folder_name_problem("\U0001f4b0" * 63) is None  # 252 bytes
    assert folder_name_problem("a" * 300) == "longer than 255 bytes"


@pytest.mark.parametrize(
    "name",
    ["Sav\u202eings", "Sav\u200bings", "\u200dSavings", "Savings\ufeff", "Sav\u2066ings", "Sav\u2028ings", "a\u061cb"],
)
def test_bidi_controls_and_zero_width_characters_are_refused(name):
    problem = folder_name_problem(name)
    assert problem is not None and "bidirectional control or zero-width" in problem


@pytest.mark.parametrize("name", ["Sav\tings", "Sav\nings", "Sav\rings", "Sav\x00ings", "Sav\x85ings", "Sav\x7fings"])
def test_control_characters_are_refused(name):
    problem = folder_name_problem(name)
    assert problem is not None and "control character" in problem


@pytest.mark.parametrize("name", ["savings", "SAVINGS", "\uff33\uff41\uff56\uff49\uff4e\uff47\uff53", "Saving\u017f"])
def test_lookalikes_of_an_existing_name_are_refused(name):
    assert folded(name) == folded("Savings")
    problem = wallet_name_problem(name, ["Default", "Savings"])
    assert problem is not None and "'Savings'" in problem


def test_the_exact_name_is_left_to_the_conflict_check_and_other_names_pass():
    assert lookalike_problem("Savings", ["Savings"]) is None
    assert wallet_name_problem("Savings 2", ["Savings"]) is None
    assert wallet_name_problem("Caf\u00e9", ["Cafe"]) is None  # a different letter, not a different spelling


# -- names longer than the file system allows: 400 before any work ----------------------------------------


async def test_rename_to_64_emoji_is_400_not_409(client, data_dir):
    before = registry_bytes(data_dir)
    status, body = await call(client, "POST", "/api/wallets/rename", wallet_path="Default", new_name=EMOJI_64)
    assert (status, body) == (400, TOO_LONG)
    assert registry_bytes(data_dir) == before and listing(data_dir / "Wallets") == ["Default"]


async def test_create_of_64_emoji_is_400_not_500(client, data_dir):
    before = registry_bytes(data_dir)
    status, body = await call(client, "POST", "/api/wallets/create", wallet_path=EMOJI_64)
    assert (status, body) == (400, TOO_LONG)
    assert registry_bytes(data_dir) == before and listing(data_dir / "Wallets") == ["Default"]


async def test_restore_as_64_emoji_is_400_before_any_extraction(client, data_dir, archive):
    before = registry_bytes(data_dir)
    status, body = await call(client, "POST", "/api/wallets/restore", zip_path=str(archive), new_name=EMOJI_64)
    assert (status, body) == (400, TOO_LONG)
    assert registry_bytes(data_dir) == before
    assert listing(data_dir / "Wallets") == ["Default", "Savings"]  # no temporary folder was made
    jobs = await (await client.get("/api/jobs", params={"kind": "wallet-restore"})).json()
    assert jobs["count"] == 0  # refused before a job existed


# -- places the server may not write: 400/403 with the reason ---------------------------------------------


async def test_restore_into_proc_is_refused_with_the_reason(client, data_dir, archive):
    before = registry_bytes(data_dir)
    status, body = await call(client, "POST", "/api/wallets/restore", zip_path=str(archive), location="/proc")
    assert status in (400, 403), body
    assert body["success"] is False and body["code"] == status
    assert "/proc" in body["error"] and "Cannot restore into the location" in body["error"]
    assert registry_bytes(data_dir) == before


async def test_create_in_proc_is_refused_with_the_reason(client, data_dir):
    before = registry_bytes(data_dir)
    status, body = await call(client, "POST", "/api/wallets/create", wallet_path="/proc/x")
    assert status in (400, 403), body
    assert body["success"] is False and body["code"] == status
    assert "/proc/x" in body["error"] and "Cannot create the wallet folder" in body["error"]
    assert registry_bytes(data_dir) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder, so nothing is refused")
async def test_restore_into_a_read_only_folder_is_403(client, data_dir, archive, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    status, body = await call(client, "POST", "/api/wallets/restore", zip_path=str(archive), location=str(locked))
    assert status == 403 and "not writable" in body["error"]


# -- control characters in path parameters ----------------------------------------------------------------


@pytest.mark.parametrize("char", ["\n", "\r", "\t", "\x1b", "\x85"])
async def test_control_character_in_a_destination_is_400_and_adds_no_line(client, data_dir, tmp_path, char):
    good = tmp_path / "good"
    status, _ = await call(client, "POST", "/api/wallets/backup", destination=str(good))
    assert status == 200
    places = (data_dir / "BackupPlaces.txt").read_bytes()
    status, body = await call(client, "POST", "/api/wallets/backup", destination=f"{tmp_path}/x{char}/etc")
    assert status == 400 and "control character" in body["error"], body
    assert (data_dir / "BackupPlaces.txt").read_bytes() == places
    assert sorted(os.listdir(tmp_path)) == ["Client_Data", "good"]


@pytest.mark.parametrize("name", ["location", "zip_path"])
async def test_control_character_in_location_or_zip_path_is_400(client, data_dir, archive, name):
    params = {"zip_path": str(archive), "location": str(archive.parent)}
    params[name] = params[name] + "\n"
    status, body = await call(client, "POST", "/api/wallets/restore", **params)
    assert (status, body) == (
        400,
        {"success": False, "error": f"Parameter {name} contains a control character 0x0a", "code": 400},
    )
    status, body = await call(client, "POST", "/api/wallets/backup/verify", zip_path=f"{archive}\t")
    assert status == 400 and "control character 0x09" in body["error"]


async def test_control_character_in_a_location_path_is_400(client, tmp_path):
    status, body = await call(client, "POST", "/api/wallets/locations", path=f"{tmp_path}\r")
    assert status == 400 and "control character 0x0d" in body["error"]


@pytest.mark.parametrize("name", ["Savings\n", "\tSavings", "Sav\rings", "Savings\x00"])
async def test_control_character_in_a_new_name_is_400_also_where_trimming_would_hide_it(client, data_dir, name):
    before = registry_bytes(data_dir)
    status, body = await call(client, "GET", "/api/wallets/rename", wallet_path="Default", new_name=name)
    assert status == 400 and (body["error"].startswith("Invalid wallet name: ") or "NUL" in body["error"]), body
    assert registry_bytes(data_dir) == before and listing(data_dir / "Wallets") == ["Default"]


@pytest.mark.parametrize("name", ["Restored\n", "\tRestored"])
async def test_control_character_in_a_restore_name_is_400_also_where_trimming_would_hide_it(
    client, data_dir, archive, name
):
    before = registry_bytes(data_dir)
    status, body = await call(client, "POST", "/api/wallets/restore", zip_path=str(archive), new_name=name)
    assert status == 400 and body["error"].startswith("Invalid wallet name: it contains control character"), body
    assert registry_bytes(data_dir) == before and "Restored" not in listing(data_dir / "Wallets")


@pytest.mark.parametrize("raw", ["Default\n", "\tDefault", "Default\r"])
async def test_control_character_in_a_wallet_path_names_no_wallet(client, data_dir, raw):
    before = registry_bytes(data_dir)
    status, body = await call(client, "GET", "/api/wallets/balance", wallet_path=raw)
    assert (status, body["error"]) == (404, f"Wallet not found: {raw}")
    status, body = await call(client, "POST", "/api/wallets/switch", wallet_path=raw)
    assert (status, body["error"]) == (404, f"Wallet not found: {raw}")
    status, body = await call(client, "GET", "/api/wallets/rename", wallet_path=raw, new_name="Other")
    assert (status, body["error"]) == (404, f"Wallet path does not exist: {raw}")
    assert registry_bytes(data_dir) == before and listing(data_dir / "Wallets") == ["Default"]


@pytest.mark.parametrize("raw", ["Savings\n", "\tSavings", "/tmp/x\ny/Savings"])
async def test_control_character_in_a_new_wallets_path_is_400(client, data_dir, raw):
    before = registry_bytes(data_dir)
    status, body = await call(client, "POST", "/api/wallets/create", wallet_path=raw)
    assert status == 400 and body["error"].startswith("Invalid wallet"), body
    assert registry_bytes(data_dir) == before and listing(data_dir / "Wallets") == ["Default"]


# -- invisible and look-alike names: "Invalid wallet name: …" ---------------------------------------------


@pytest.mark.parametrize("name", ["Sav\u202eings", "Savings\u200b"])
async def test_invisible_characters_in_any_new_wallet_name_are_400(client, data_dir, archive, name):
    before = registry_bytes(data_dir)
    for method, path, params in (
        ("POST", "/api/wallets/create", {"wallet_path": name}),
        ("POST", "/api/wallets/rename", {"wallet_path": "Savings", "new_name": name}),
        ("POST", "/api/wallets/restore", {"zip_path": str(archive), "new_name": name}),
    ):
        status, body = await call(client, method, path, **params)
        assert status == 400, (path, body)
        assert body["error"].startswith("Invalid wallet name: ") and "zero-width" in body["error"], body
    assert registry_bytes(data_dir) == before


@pytest.mark.parametrize("name", ["savings", "SAVINGS", "\uff33\uff41\uff56\uff49\uff4e\uff47\uff53"])
async def test_lookalike_of_an_existing_wallet_is_400_on_create_rename_and_restore(client, data_dir, archive, name):
    before = registry_bytes(data_dir)
    await call(client, "POST", "/api/wallets/create", wallet_path="Other")
    before = registry_bytes(data_dir)
    for method, path, params in (
        ("POST", "/api/wallets/create", {"wallet_path": name}),
        ("POST", "/api/wallets/rename", {"wallet_path": "Other", "new_name": name}),
        ("POST", "/api/wallets/restore", {"zip_path": str(archive), "new_name": name}),
    ):
        status, body = await call(client, method, path, **params)
        assert status == 400, (path, body)
        assert body["error"].startswith("Invalid wallet name: ") and "'Savings'" in body["error"], body
    assert registry_bytes(data_dir) == before
    assert listing(data_dir / "Wallets") == ["Default", "Other", "Savings"]


async def test_restore_under_the_archives_own_name_beside_a_lookalike_is_400(client, data_dir, archive):
    status, _ = await call(client, "POST", "/api/wallets/rename", wallet_path="Savings", new_name="SAVINGS")
    assert status == 200  # a wallet may change the case of its own name
    status, body = await call(client, "POST", "/api/wallets/restore", zip_path=str(archive))
    assert status == 400 and body["error"].startswith("Invalid wallet name in the archive"), body


async def test_exactly_the_same_name_keeps_its_409(client, data_dir):
    await call(client, "POST", "/api/wallets/create", wallet_path="Other")
    status, body = await call(client, "POST", "/api/wallets/rename", wallet_path="Other", new_name="Default")
    assert status == 409, body
    status, body = await call(client, "POST", "/api/wallets/create", wallet_path="Default")
    assert status == 409, body
    assert [Path(e.wallet_path).name for e in read_registry(data_dir / "wallet-locations.csv").entries] == [
        "Default",
        "Other",
    ]
