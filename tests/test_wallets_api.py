"""The wallet endpoints: list (and aliases), balance, show-coins, locations, create, switch — bodies and errors."""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest

from app.wallet import coins, crypto
from app.wallet.registry import RegistryEntry, read_registry, write_registry
from app.wallet.wallets import TRANSACTIONS_HEADER, WALLET_FOLDERS
from tests.conftest import coin_bytes, register_offline_wallet, write_coins


def make_wallet(path: Path) -> Path:
    """A wallet folder as another tool might leave it: only Bank and Fracked."""
    (path / "Bank").mkdir(parents=True)
    (path / "Fracked").mkdir()
    return path


def registry_of(data_dir: Path) -> list[str]:
    return [e.wallet_path for e in read_registry(data_dir / "wallet-locations.csv").entries]


def snapshot(data_dir: Path) -> tuple[bytes, list[str]]:
    """What a refused request must leave unchanged: the registry and the Wallets folder."""
    return (data_dir / "wallet-locations.csv").read_bytes(), sorted(os.listdir(data_dir / "Wallets"))


async def ok(response) -> dict:
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["success"] is True
    return body


async def error(response, status: int, message: str | None = None) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["success"] is False and body["code"] == status
    if message is not None:
        assert body["error"] == message
    return body


def multi_coin_file(serials: list[int], denomination: int) -> bytes:
    ans = tuple(os.urandom(16) for _ in range(25))
    return coins.build_coin_file([coins.Coin(denomination, s, ans) for s in serials])


# -- list -------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/api/wallets/list", "/api/wallet/list", "/api/wallets"])
async def test_list_and_its_aliases_answer_the_registered_wallets(client, data_dir, route):
    body = await ok(await client.get(route))
    default = data_dir / "Wallets" / "Default"
    assert body == {
        "command": "wallet-list",
        "success": True,
        "count": 1,
        "wallets": [
            {
                "index": 0,
                "wallet_name": "Default",
                "wallet_path": str(default),
                "location": str(data_dir / "Wallets"),
                "active": True,
                "online": True,
            }
        ],
        "locations": [
            {"path": str(data_dir / "Wallets"), "wallets": [{"index": 0, "name": "Default", "active": True}]}
        ],
    }


async def test_list_groups_wallets_by_location_in_registry_order(client, data_dir, tmp_path):
    usb = tmp_path / "usb"
    make_wallet(usb / "Savings")
    make_wallet(usb / "Travel")
    await ok(await client.post("/api/wallets/locations", json={"path": str(usb)}))
    await ok(await client.post("/api/wallets/create", json={"wallet_path": "Second"}))
    body = await ok(await client.get("/api/wallets/list"))
    assert body["count"] == 4
    assert [w["wallet_name"] for w in body["wallets"]] == ["Default", "Savings", "Travel", "Second"]
    assert [w["index"] for w in body["wallets"]] == [0, 1, 2, 3]
    assert [w["active"] for w in body["wallets"]] == [True, False, False, False]
    assert body["locations"] == [
        {
            "path": str(data_dir / "Wallets"),
            "wallets": [
                {"index": 0, "name": "Default", "active": True},
                {"index": 3, "name": "Second", "active": False},
            ],
        },
        {
            "path": str(usb),
            "wallets": [
                {"index": 1, "name": "Savings", "active": False},
                {"index": 2, "name": "Travel", "active": False},
            ],
        },
    ]


async def test_list_is_get_only(client):
    response = await client.post("/api/wallets/list")
    await error(response, 405)


# -- balance ----------------------------------------------------------------------------------


@pytest.fixture
def rich_wallet(client, data_dir: Path, tmp_path: Path) -> Path:
    """Default (made by the app at start) with coins of many kinds in Bank, Fracked and Limbo, and
    some that must not count."""
    wallet = data_dir / "Wallets" / "Default"
    bank, fracked, limbo = wallet / "Bank", wallet / "Fracked", wallet / "Limbo"
    write_coins(bank, [1, 2, 3], denomination=0)  # 3
    write_coins(bank, [10], denomination=3)  # 1,000
    write_coins(bank, [11], denomination=-8)  # 0.00000001
    write_coins(bank, [12], denomination=-1)  # 0.1
    multi = [coins.CoinInfo(1, s, coins.denomination_value(1)) for s in (20, 21, 22)]
    (bank / coins.coin_file_name(multi, tag="export")).write_bytes(multi_coin_file([20, 21, 22], 1))  # 30
    (bank / "1 CloudCoin #999 'truncated'.bin").write_bytes(coin_bytes(999, 0)[:100])  # valued from its name
    (bank / "junk.bin").write_bytes(b"not a coin at all")  # cannot be valued
    (bank / "notes.txt").write_text("not a coin file")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(coin_bytes(777, 6))
    (bank / "1,000,000 CloudCoin #777 'link'.bin").symlink_to(outside)  # never followed
    write_coins(fracked, [30, 31], denomination=2)  # 200
    encrypted = crypto.encrypt_coin_file(coin_bytes(32, 0), os.urandom(32))
    (fracked / "1 CloudCoin #32 'enc'.bin").write_bytes(encrypted)  # 1, encrypted type 4
    write_coins(limbo, [40], denomination=6)  # 1,000,000
    other_tool = bytearray(coin_bytes(41, 0))
    other_tool[5] = 1
    other_tool[8:15] = b"\x01" * 7
    (limbo / "1 CloudCoin #41 'aes128'.bin").write_bytes(bytes(other_tool))  # 1, encrypted type 1
    write_coins(wallet / "Trash", [50], denomination=6)  # not counted
    write_coins(wallet / "Counterfeit", [51], denomination=6)  # not counted
    return wallet


async def test_balance_counts_bank_fracked_and_limbo(client, rich_wallet):
    body = await ok(await client.get("/api/wallets/balance"))
    assert body == {
        "command": "wallet-balance",
        "success": True,
        "wallet_name": "Default",
        "wallet_path": str(rich_wallet),
        "total_value": 1001236.10000001,
        "total_notes": 15,
        "bank_value": 1034.10000001,
        "bank_notes": 10,
        "fracked_value": 201,
        "fracked_notes": 3,
        "limbo_value": 1000001,
        "limbo_notes": 2,
        "denominations": {"-8": 1, "-1": 1, "0": 6, "1": 3, "2": 2, "3": 1, "6": 1},
        "encrypted_notes": 2,
        "unreadable_files": ["Bank/junk.bin"],
    }


async def test_balance_by_relative_absolute_and_symlinked_path_is_the_same(client, rich_wallet, tmp_path):
    link = tmp_path / "shortcut"
    link.symlink_to(rich_wallet)
    bodies = [
        await ok(await client.get("/api/wallets/balance", params={"wallet_path": raw}))
        for raw in ("Default", str(rich_wallet), str(link), "Default/", "Other/../Default")
    ]
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["wallet_path"] == str(rich_wallet)


async def test_balance_of_an_empty_wallet_is_zero(client):
    body = await ok(await client.get("/api/wallets/balance", params={"wallet_path": "Default"}))
    assert body["total_value"] == 0 and body["total_notes"] == 0
    assert body["denominations"] == {} and body["unreadable_files"] == [] and body["encrypted_notes"] == 0


async def test_balance_tolerates_missing_limbo(client, tmp_path):
    wallet = make_wallet(tmp_path / "Minimal")
    write_coins(wallet / "Bank", [1], denomination=2)
    await ok(await client.post("/api/wallets/locations", json={"path": str(wallet)}))
    body = await ok(await client.get("/api/wallets/balance", params={"wallet_path": str(wallet)}))
    assert (body["total_value"], body["limbo_notes"]) == (100, 0)


@pytest.mark.parametrize(
    "broken",
    [b"", b"\x09", coin_bytes(5, 0)[:-1], coin_bytes(5, 0) + b"x", b"\x08" + coin_bytes(5, 0)[1:]],
    ids=["empty", "short", "truncated", "trailing", "wrong-format"],
)
async def test_one_broken_coin_file_never_fails_the_balance(client, data_dir, broken):
    bank = data_dir / "Wallets" / "Default" / "Bank"
    write_coins(bank, [1, 2], denomination=0)
    (bank / "broken.bin").write_bytes(broken)
    body = await ok(await client.get("/api/wallets/balance"))
    assert body["total_notes"] == 2 and body["unreadable_files"] == ["Bank/broken.bin"]


async def test_unreadable_coin_file_is_valued_from_its_name(client, data_dir):
    fracked = data_dir / "Wallets" / "Default" / "Fracked"
    (fracked / "250 CloudCoin #7 'bad header'.bin").write_bytes(b"\x00" * 439)
    (fracked / "0.01 CloudCoin #8 'bad header'.bin").write_bytes(b"")
    body = await ok(await client.get("/api/wallets/balance"))
    assert body["fracked_value"] == 250.01
    assert body["fracked_notes"] == 2
    assert body["denominations"] == {"-2": 1}  # 250 is no single denomination
    assert body["unreadable_files"] == []


async def test_coin_file_that_cannot_be_opened_is_reported_not_fatal(client, data_dir, monkeypatch):
    from app.wallet import coinfolders

    bank = data_dir / "Wallets" / "Default" / "Bank"
    write_coins(bank, [1], denomination=0)
    (bank / "locked.bin").write_bytes(coin_bytes(2, 0))
    real_read = coinfolders._read_file

    def read(dir_fd, name):
        if name == "locked.bin":
            raise PermissionError(13, "Permission denied")
        return real_read(dir_fd, name)

    monkeypatch.setattr(coinfolders, "_read_file", read)
    body = await ok(await client.get("/api/wallets/balance"))
    assert body["total_notes"] == 1 and body["unreadable_files"] == ["Bank/locked.bin"]


async def test_fifo_named_like_a_coin_does_not_hang_the_balance(client, data_dir):
    bank = data_dir / "Wallets" / "Default" / "Bank"
    write_coins(bank, [1], denomination=0)
    os.mkfifo(bank / "pipe.bin")
    body = await ok(await client.get("/api/wallets/balance"))
    assert body["total_notes"] == 1


async def test_symlink_in_a_coin_folder_is_not_followed(client, data_dir, tmp_path):
    bank = data_dir / "Wallets" / "Default" / "Bank"
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(coin_bytes(9, 6))
    (bank / "1,000,000 CloudCoin #9 'link'.bin").symlink_to(outside)
    body = await ok(await client.get("/api/wallets/balance"))
    assert body["total_notes"] == 0 and body["total_value"] == 0 and body["unreadable_files"] == []
    coins_body = await ok(await client.get("/api/wallets/show-coins"))
    assert coins_body["total"] == 0 and coins_body["coins"] == []


async def test_balance_of_an_unknown_wallet_is_404(client):
    await error(await client.get("/api/wallets/balance", params={"wallet_path": "Nope"}), 404, "Wallet not found: Nope")


@pytest.mark.parametrize("raw", ["../Default", "..", "Default/../../Wallets/Default/../..", "/"])
async def test_balance_of_a_path_outside_the_registry_is_404(client, raw):
    await error(await client.get("/api/wallets/balance", params={"wallet_path": raw}), 404)


async def test_unregistered_wallet_folder_is_never_read(client, data_dir, tmp_path, monkeypatch):
    from app.wallet import coinfolders

    inside = make_wallet(data_dir / "Wallets" / "Stranger")
    outside = make_wallet(tmp_path / "outside" / "Stranger")
    for wallet in (inside, outside):
        write_coins(wallet / "Bank", [1], denomination=6)
        write_coins(wallet / "Fracked", [2], denomination=6)
    opened: list[str] = []
    real_read = coinfolders._read_file
    monkeypatch.setattr(coinfolders, "_read_file", lambda dir_fd, name: opened.append(name) or real_read(dir_fd, name))
    for raw in ("Stranger", str(inside), str(outside)):
        await error(
            await client.get("/api/wallets/balance", params={"wallet_path": raw}), 404, f"Wallet not found: {raw}"
        )
        await error(await client.get("/api/wallets/show-coins", params={"wallet_path": raw}), 404)
        await error(await client.post("/api/wallets/switch", json={"wallet_path": raw}), 404)
    assert opened == []


async def test_balance_of_an_offline_wallet_is_404_not_zero(make_client, data_dir, tmp_path):
    gone = register_offline_wallet(data_dir, tmp_path)
    client = await make_client()
    body = await error(await client.get("/api/wallets/balance", params={"wallet_path": str(gone)}), 404)
    assert "offline" in body["error"]
    await error(await client.get("/api/wallets/show-coins", params={"wallet_path": str(gone)}), 404)


async def test_balance_without_wallet_path_uses_the_active_wallet(client, data_dir):
    await ok(await client.post("/api/wallets/create", json={"wallet_path": "Second"}))
    write_coins(data_dir / "Wallets" / "Second" / "Bank", [1], denomination=1)
    assert (await ok(await client.get("/api/wallets/balance")))["wallet_name"] == "Default"
    await ok(await client.post("/api/wallets/switch", json={"wallet_path": "Second"}))
    body = await ok(await client.get("/api/wallets/balance"))
    assert (body["wallet_name"], body["total_value"]) == ("Second", 10)


# -- show-coins -------------------------------------------------------------------------------


@pytest.fixture
async def coins_client(client, data_dir):
    wallet = data_dir / "Wallets" / "Default"
    write_coins(wallet / "Bank", range(100, 125), denomination=0)
    write_coins(wallet / "Fracked", range(200, 205), denomination=1)
    write_coins(wallet / "Limbo", range(300, 302), denomination=-2)
    return client


async def test_show_coins_lists_every_value_folder_by_default(coins_client, data_dir):
    body = await ok(await coins_client.get("/api/wallets/show-coins"))
    assert body["command"] == "show-coins"
    assert body["wallet_name"] == "Default"
    assert body["wallet_path"] == str(data_dir / "Wallets" / "Default")
    assert (body["total"], body["offset"], body["limit"]) == (32, 0, 1000)
    assert [c["folder"] for c in body["coins"]] == ["Bank"] * 25 + ["Fracked"] * 5 + ["Limbo"] * 2
    first = body["coins"][0]
    assert set(first) >= {"folder", "file", "serial_number", "denomination", "value", "encrypted", "pown"}
    assert (first["denomination"], first["value"], first["encrypted"], first["pown"]) == (0, 1, False, "p" * 25)
    limbo = body["coins"][-1]
    assert (limbo["denomination"], limbo["value"]) == (-2, 0.01)
    assert sorted(c["serial_number"] for c in body["coins"]) == [*range(100, 125), *range(200, 205), 300, 301]


async def test_show_coins_pages_through_the_listing(coins_client):
    seen = []
    offset = 0
    while True:
        body = await ok(await coins_client.get("/api/wallets/show-coins", params={"offset": offset, "limit": 7}))
        assert body["total"] == 32 and body["limit"] == 7 and body["offset"] == offset
        if not body["coins"]:
            break
        assert len(body["coins"]) == min(7, 32 - offset)
        seen.extend((c["folder"], c["file"]) for c in body["coins"])
        offset += 7
    assert len(seen) == len(set(seen)) == 32


@pytest.mark.parametrize("folder, total", [("Bank", 25), ("Fracked", 5), ("Limbo", 2), ("bank", 25), ("all", 32)])
async def test_show_coins_folder_filter(coins_client, folder, total):
    body = await ok(await coins_client.get("/api/wallets/show-coins", params={"folder": folder}))
    assert body["total"] == total == len(body["coins"])


@pytest.mark.parametrize("query", ["folder=", "folder=Counterfeit", "limit=", "offset=", "limit=0", "limit=10001"])
async def test_show_coins_empty_or_out_of_range_parameters_are_400(coins_client, query):
    response = await coins_client.get(f"/api/wallets/show-coins?{query}")
    assert response.status == 400
    assert (await response.json())["code"] == 400


async def test_show_coins_limit_bounds_are_accepted(coins_client):
    assert len((await ok(await coins_client.get("/api/wallets/show-coins?limit=1")))["coins"]) == 1
    assert len((await ok(await coins_client.get("/api/wallets/show-coins?limit=10000")))["coins"]) == 32
    assert (await ok(await coins_client.get("/api/wallets/show-coins?offset=1000")))["coins"] == []


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=10001", "limit=-5", "limit=ten", "offset=-1", "offset=x", "folder=Trash", "folder=../Bank"],
)
async def test_show_coins_bad_parameters_are_400(coins_client, query):
    await error(await coins_client.get(f"/api/wallets/show-coins?{query}"), 400)


async def test_show_coins_reports_encrypted_multi_and_unreadable_files(client, rich_wallet):
    body = await ok(await client.get("/api/wallets/show-coins", params={"folder": "all"}))
    by_file = {c["file"]: c for c in body["coins"]}
    assert "notes.txt" not in by_file and not any("'link'" in name for name in by_file)
    encrypted = by_file["1 CloudCoin #32 'enc'.bin"]
    assert (encrypted["encrypted"], encrypted["serial_number"], encrypted["value"]) == (True, 32, 1)
    junk = by_file["junk.bin"]
    assert junk["value"] is None and junk["serial_number"] is None
    truncated = by_file["1 CloudCoin #999 'truncated'.bin"]
    assert truncated["value"] == 1
    (multi,) = [c for name, c in by_file.items() if "#3 'export'" in name]
    assert multi["value"] == 30 and multi.get("coin_count") == 3


async def test_show_coins_of_an_unknown_wallet_is_404(client):
    await error(
        await client.get("/api/wallets/show-coins", params={"wallet_path": "Nope"}), 404, "Wallet not found: Nope"
    )


# -- locations --------------------------------------------------------------------------------


async def test_locations_registers_one_wallet_outside_client_data(client, data_dir, tmp_path):
    savings = make_wallet(tmp_path / "usb" / "CloudCoin" / "Savings")
    write_coins(savings / "Bank", [1, 2], denomination=3)
    body = await ok(await client.post("/api/wallets/locations", json={"path": str(savings)}))
    assert body["status"] == "success" and body["operation"] == "add-location"
    assert body["location"] == str(savings)
    assert body["wallets_added"] == [str(savings)]
    assert isinstance(body["message"], str) and body["message"]
    assert registry_of(data_dir)[-1] == str(savings)
    balance = await ok(await client.get("/api/wallets/balance", params={"wallet_path": str(savings)}))
    assert (balance["wallet_name"], balance["total_value"], balance["bank_notes"]) == ("Savings", 2000, 2)
    listed = await ok(await client.get("/api/wallets/list"))
    assert {"path": str(savings.parent), "wallets": [{"index": 1, "name": "Savings", "active": False}]} in listed[
        "locations"
    ]


async def test_locations_registers_every_wallet_in_a_folder(client, data_dir, tmp_path):
    drive = tmp_path / "drive"
    make_wallet(drive / "Alpha")
    make_wallet(drive / "Beta")
    (drive / "NotAWallet" / "Bank").mkdir(parents=True)  # no Fracked
    (drive / "file.txt").write_text("x")
    elsewhere = make_wallet(tmp_path / "elsewhere" / "Linked")
    (drive / "Linked").symlink_to(elsewhere)  # a link is not followed when scanning
    body = await ok(await client.get("/api/wallets/locations", params={"path": str(drive)}))
    assert body["wallets_added"] == [str(drive / "Alpha"), str(drive / "Beta")]
    assert registry_of(data_dir)[1:] == [str(drive / "Alpha"), str(drive / "Beta")]
    again = await ok(await client.post("/api/wallets/locations", data={"path": str(drive)}))
    assert again["wallets_added"] == []
    assert len(registry_of(data_dir)) == 3


async def test_locations_canonicalises_a_symlinked_path(client, data_dir, tmp_path):
    real = make_wallet(tmp_path / "real" / "Vault")
    link = tmp_path / "vault-link"
    link.symlink_to(real)
    body = await ok(await client.post("/api/wallets/locations", json={"path": str(link)}))
    assert body["wallets_added"] == [str(real)]
    await ok(await client.get("/api/wallets/balance", params={"wallet_path": str(link)}))


async def test_locations_of_the_wallets_folder_registers_hand_made_wallets(client, data_dir):
    make_wallet(data_dir / "Wallets" / "HandMade")
    body = await ok(await client.post("/api/wallets/locations", json={"path": str(data_dir / "Wallets")}))
    assert body["wallets_added"] == [str(data_dir / "Wallets" / "HandMade")]
    await ok(await client.get("/api/wallets/balance", params={"wallet_path": "HandMade"}))


async def test_locations_without_path_lists_the_locations(client, data_dir):
    body = await ok(await client.get("/api/wallets/locations"))
    assert body["locations"] == [
        {"path": str(data_dir / "Wallets"), "wallets": [{"index": 0, "name": "Default", "active": True}]}
    ]


@pytest.mark.parametrize(
    "make_path, status",
    [
        (lambda tmp, data: "relative/place", 400),
        (lambda tmp, data: str(tmp / "does-not-exist"), 404),
        (lambda tmp, data: str(tmp / "empty-folder"), 404),
        (lambda tmp, data: str(data), 400),
        (lambda tmp, data: str(data / "jobs"), 400),
        (lambda tmp, data: str(tmp / "a-file"), 404),
    ],
)
async def test_locations_errors_change_nothing(client, data_dir, tmp_path, make_path, status):
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    make_wallet(data_dir / "jobs" / "Hidden")
    before = snapshot(data_dir)
    await error(await client.post("/api/wallets/locations", json={"path": make_path(tmp_path, data_dir)}), status)
    assert snapshot(data_dir) == before


async def test_locations_skips_a_folder_whose_name_cannot_be_a_registry_row(client, data_dir, tmp_path):
    drive = tmp_path / "drive"
    make_wallet(drive / "Good")
    make_wallet(drive / "two\nlines")
    body = await ok(await client.post("/api/wallets/locations", json={"path": str(drive)}))
    assert body["wallets_added"] == [str(drive / "Good")]
    assert read_registry(data_dir / "wallet-locations.csv").bad_rows == ()


# -- create -----------------------------------------------------------------------------------


async def test_create_relative_makes_the_full_wallet_inside_wallets(client, data_dir):
    body = await ok(await client.post("/api/wallets/create", json={"wallet_path": "Savings"}))
    wallet = data_dir / "Wallets" / "Savings"
    assert body == {
        "command": "wallet-create",
        "success": True,
        "wallet_name": "Savings",
        "wallet_path": str(wallet),
        "message": body["message"],
    }
    assert sorted(p.name for p in wallet.iterdir() if p.is_dir()) == sorted(WALLET_FOLDERS)
    assert len(WALLET_FOLDERS) == 19
    assert (wallet / "transactions.csv").read_text() == TRANSACTIONS_HEADER
    settings = tomllib.loads((wallet / "config.toml").read_text(encoding="utf-8"))
    assert settings["wallet"]["name"] == "Savings"
    assert "created" in settings["wallet"] and "version" in settings["wallet"]
    assert settings["settings"]["encryption_enabled"] is False
    assert registry_of(data_dir) == [str(data_dir / "Wallets" / "Default"), str(wallet)]
    listed = await ok(await client.get("/api/wallets/list"))
    assert [(w["wallet_name"], w["active"], w["online"]) for w in listed["wallets"]] == [
        ("Default", True, True),
        ("Savings", False, True),
    ]


async def test_create_absolute_outside_client_data(client, data_dir, tmp_path):
    (tmp_path / "usb").mkdir()
    target = tmp_path / "usb" / "Travel"
    body = await ok(await client.get("/api/wallets/create", params={"wallet_path": str(target)}))
    assert body["wallet_path"] == str(target) and body["wallet_name"] == "Travel"
    assert (target / "Bank").is_dir() and (target / "Fracked").is_dir()
    assert registry_of(data_dir)[-1] == str(target)
    await ok(await client.get("/api/wallets/balance", params={"wallet_path": str(target)}))


async def test_create_name_with_spaces_and_unicode(client, data_dir):
    name = "Épargne 財布 2"
    body = await ok(await client.post("/api/wallets/create", data={"wallet_path": name}))
    assert body["wallet_name"] == name
    assert (
        tomllib.loads((data_dir / "Wallets" / name / "config.toml").read_text(encoding="utf-8"))["wallet"]["name"]
        == name
    )


async def test_create_name_with_quote_and_backslash_keeps_config_toml_valid(client, data_dir, tmp_path):
    (tmp_path / "usb").mkdir()
    name = "it's #1 wallet"
    await ok(await client.post("/api/wallets/create", json={"wallet_path": name}))
    assert (
        tomllib.loads((data_dir / "Wallets" / name / "config.toml").read_text(encoding="utf-8"))["wallet"]["name"]
        == name
    )


async def test_create_existing_wallet_is_409(client, data_dir):
    await ok(await client.post("/api/wallets/create", json={"wallet_path": "Twice"}))
    before = snapshot(data_dir)
    await error(await client.post("/api/wallets/create", json={"wallet_path": "Twice"}), 409)
    await error(await client.post("/api/wallets/create", json={"wallet_path": "Default"}), 409)
    assert snapshot(data_dir) == before


async def test_create_over_an_unregistered_folder_or_file_is_409(client, data_dir):
    (data_dir / "Wallets" / "Manual").mkdir()
    (data_dir / "Wallets" / "Manual" / "keep.txt").write_text("mine")
    (data_dir / "Wallets" / "AFile").write_text("x")
    before = snapshot(data_dir)
    await error(await client.post("/api/wallets/create", json={"wallet_path": "Manual"}), 409)
    await error(await client.post("/api/wallets/create", json={"wallet_path": "AFile"}), 409)
    assert snapshot(data_dir) == before
    assert os.listdir(data_dir / "Wallets" / "Manual") == ["keep.txt"]


async def test_create_where_an_offline_wallet_is_registered_is_409(make_client, data_dir, tmp_path):
    (tmp_path / "usb").mkdir()
    gone = tmp_path / "usb" / "Stick"
    data_dir.mkdir()
    write_registry(
        data_dir / "wallet-locations.csv",
        [RegistryEntry(str(data_dir / "Wallets" / "Default")), RegistryEntry(str(gone), "removable")],
    )
    client = await make_client()
    await error(await client.post("/api/wallets/create", json={"wallet_path": str(gone)}), 409)
    assert not gone.exists()
    assert registry_of(data_dir).count(str(gone)) == 1


@pytest.mark.parametrize(
    "name",
    [
        "CON",
        "nul.txt",
        "a:b",
        "a*b",
        "what?",
        "a<b>",
        "a|b",
        'say "x"',
        ".hidden",
        "$admin",
        "dot.",
        "tab\tname",
        "x" * 65,
        "..",
        ".",
    ],
)
async def test_create_invalid_name_is_400(client, data_dir, name):
    before = snapshot(data_dir)
    body = await error(await client.post("/api/wallets/create", json={"wallet_path": name}), 400)
    assert body["error"].startswith("Invalid wallet name: ")
    assert snapshot(data_dir) == before


@pytest.mark.parametrize(
    "make_raw",
    [
        lambda tmp, data: "../Escaped",
        lambda tmp, data: "Group/../../Escaped",
        lambda tmp, data: "NoSuchParent/Child",
        lambda tmp, data: "Default/Nested",
        lambda tmp, data: "Default/Bank/Deeper",
        lambda tmp, data: str(tmp / "no" / "such" / "parent" / "W"),
        lambda tmp, data: str(data / "jobs" / "Sneaky"),
        lambda tmp, data: str(data / "Sneaky"),
        lambda tmp, data: "relative\nline",
    ],
)
async def test_create_bad_place_is_400(client, data_dir, tmp_path, make_raw):
    before = snapshot(data_dir)
    jobs_before = sorted(os.listdir(data_dir / "jobs"))
    await error(await client.post("/api/wallets/create", json={"wallet_path": make_raw(tmp_path, data_dir)}), 400)
    assert snapshot(data_dir) == before
    assert sorted(os.listdir(data_dir / "jobs")) == jobs_before
    assert not (tmp_path / "Escaped").exists() and not (data_dir / "Escaped").exists()
    assert os.listdir(data_dir / "Wallets" / "Default" / "Bank") == []


@pytest.mark.parametrize("params", [{}, {"wallet_path": ""}, {"wallet_path": "   "}])
async def test_create_without_wallet_path_is_400(client, data_dir, params):
    before = snapshot(data_dir)
    await error(await client.post("/api/wallets/create", json=params), 400, "Missing required parameter: wallet_path")
    assert snapshot(data_dir) == before


async def test_create_is_undone_when_the_registry_cannot_be_saved(client, data_dir, monkeypatch, caplog):
    from app.wallet import wallets

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wallets, "write_registry", full_disk)
    before = snapshot(data_dir)
    with caplog.at_level("ERROR"):
        await error(await client.post("/api/wallets/create", json={"wallet_path": "Doomed"}), 500)
    assert snapshot(data_dir) == before
    assert not (data_dir / "Wallets" / "Doomed").exists()


# -- switch -----------------------------------------------------------------------------------


async def test_switch_moves_the_row_first_and_list_shows_it_active(client, data_dir, tmp_path):
    await ok(await client.post("/api/wallets/create", json={"wallet_path": "Second"}))
    await ok(await client.post("/api/wallets/create", json={"wallet_path": "Third"}))
    wallets = data_dir / "Wallets"
    body = await ok(await client.post("/api/wallets/switch", json={"wallet_path": "Third"}))
    assert {k: body[k] for k in ("command", "success", "wallet_name", "wallet_path")} == {
        "command": "wallet-switch",
        "success": True,
        "wallet_name": "Third",
        "wallet_path": str(wallets / "Third"),
    }
    assert registry_of(data_dir) == [str(wallets / "Third"), str(wallets / "Default"), str(wallets / "Second")]
    listed = await ok(await client.get("/api/wallets/list"))
    assert [(w["index"], w["wallet_name"], w["active"]) for w in listed["wallets"]] == [
        (0, "Third", True),
        (1, "Default", False),
        (2, "Second", False),
    ]


async def test_switch_by_absolute_and_symlinked_path(client, data_dir, tmp_path):
    await ok(await client.post("/api/wallets/create", json={"wallet_path": "Second"}))
    second = data_dir / "Wallets" / "Second"
    await ok(await client.get("/api/wallets/switch", params={"wallet_path": str(second)}))
    assert registry_of(data_dir)[0] == str(second)
    link = tmp_path / "default-link"
    link.symlink_to(data_dir / "Wallets" / "Default")
    body = await ok(await client.post("/api/wallets/switch", data={"wallet_path": str(link)}))
    assert body["wallet_path"] == str(data_dir / "Wallets" / "Default")
    assert registry_of(data_dir)[0] == str(data_dir / "Wallets" / "Default")


async def test_switch_to_the_active_wallet_changes_nothing(client, data_dir):
    before = registry_of(data_dir)
    await ok(await client.post("/api/wallets/switch", json={"wallet_path": "Default"}))
    assert registry_of(data_dir) == before


@pytest.mark.parametrize(
    "params, status, message",
    [
        ({}, 400, "Missing required parameter: wallet_path"),
        ({"wallet_path": ""}, 400, "Missing required parameter: wallet_path"),
        ({"wallet_path": "Nope"}, 404, "Wallet not found: Nope"),
        ({"wallet_path": "../Default"}, 404, "Wallet not found: ../Default"),
        ({"wallet_path": "/"}, 404, "Wallet not found: /"),
    ],
)
async def test_switch_errors_change_nothing(client, data_dir, params, status, message):
    before = snapshot(data_dir)
    await error(await client.post("/api/wallets/switch", json=params), status, message)
    assert snapshot(data_dir) == before


async def test_switch_to_an_unregistered_wallet_folder_is_404(client, data_dir):
    make_wallet(data_dir / "Wallets" / "Stranger")
    before = snapshot(data_dir)
    await error(await client.post("/api/wallets/switch", json={"wallet_path": "Stranger"}), 404)
    assert snapshot(data_dir) == before


async def test_registered_wallet_outside_client_data_is_read_and_made_active(client, data_dir, tmp_path):
    outside = make_wallet(tmp_path / "mnt" / "Far")
    write_coins(outside / "Fracked", [5], denomination=4)
    await ok(await client.post("/api/wallets/locations", json={"path": str(outside)}))
    await ok(await client.post("/api/wallets/switch", json={"wallet_path": str(outside)}))
    body = await ok(await client.get("/api/wallets/balance"))
    assert (body["wallet_path"], body["fracked_value"]) == (str(outside), 10000)
    shutil.rmtree(outside)
    listed = await ok(await client.get("/api/wallets/list"))
    assert listed["wallets"][0]["online"] is False


async def test_locations_refuses_a_wallet_nested_in_a_registered_one(client, data_dir, tmp_path):
    nested = make_wallet(data_dir / "Wallets" / "Default" / "Trash" / "Inner")
    before = snapshot(data_dir)
    body = await error(await client.post("/api/wallets/locations", json={"path": str(nested)}), 400)
    assert "nested" in body["error"]
    assert snapshot(data_dir) == before
    outer = tmp_path / "outer"
    make_wallet(outer)
    make_wallet(outer / "Export" / "Inner")
    await ok(await client.post("/api/wallets/locations", json={"path": str(outer / "Export" / "Inner")}))
    before = snapshot(data_dir)
    await error(await client.post("/api/wallets/locations", json={"path": str(outer)}), 400)
    assert snapshot(data_dir) == before


async def test_locations_of_a_single_unregistrable_folder_is_400(client, data_dir, tmp_path):
    odd = make_wallet(tmp_path / "two\nlines")
    before = snapshot(data_dir)
    await error(await client.post("/api/wallets/locations", json={"path": str(odd)}), 400)
    assert snapshot(data_dir) == before


async def test_locations_scan_skips_dot_folders_such_as_a_restore_in_progress(client, tmp_path):
    place = tmp_path / "place"
    for name in ("Real", ".cloudcoin-restore-abc.tmp"):
        (place / name / "Bank").mkdir(parents=True)
        (place / name / "Fracked").mkdir()
    body = await (await client.post("/api/wallets/locations", json={"path": str(place)})).json()
    assert body["wallets_added"] == [str((place / "Real").resolve())]


# -- the Default wallet made by hand before the first start ---------------------------------------


async def test_a_default_folder_made_by_hand_is_completed_at_start_and_backed_up(make_client, data_dir, tmp_path):
    default = data_dir / "Wallets" / "Default"
    (default / "Bank").mkdir(parents=True)
    mine = coin_bytes(7)
    (default / "Bank" / "mine.bin").write_bytes(mine)
    (default / "notes.txt").write_text("kept as it is")
    client = await make_client()
    body = await ok(await client.get("/api/wallets/list"))
    assert body["wallets"][0]["wallet_name"] == "Default" and body["wallets"][0]["online"] is True
    for folder in WALLET_FOLDERS:
        assert (default / folder).is_dir(), folder
    assert (default / "transactions.csv").read_text() == TRANSACTIONS_HEADER
    assert tomllib.loads((default / "config.toml").read_text())["wallet"]["name"] == "Default"
    assert (default / "Bank" / "mine.bin").read_bytes() == mine
    assert (default / "notes.txt").read_text() == "kept as it is"
    backup = await ok(await client.post("/api/wallets/backup", data={"destination": str(tmp_path / "out")}))
    assert backup["files_added"] == 1


async def test_a_symlinked_or_complete_default_is_left_as_it_is(make_client, data_dir, tmp_path):
    elsewhere = tmp_path / "offline-drive" / "Default"  # not there: a drive that is not mounted
    (data_dir / "Wallets").mkdir(parents=True)
    (data_dir / "Wallets" / "Default").symlink_to(elsewhere)
    client = await make_client()
    body = await ok(await client.get("/api/wallets/list"))
    assert body["wallets"][0]["online"] is False
    assert not elsewhere.exists() and not (tmp_path / "offline-drive").exists()


async def test_a_default_on_a_drive_that_is_gone_leaves_the_registry_as_it_was(make_client, data_dir, tmp_path):
    drive = tmp_path / "drive" / "Default"
    make_wallet(drive)
    (data_dir / "Wallets").mkdir(parents=True)
    (data_dir / "Wallets" / "Default").symlink_to(drive)
    await make_client()
    before = (data_dir / "wallet-locations.csv").read_bytes()
    assert registry_of(data_dir) == [str(drive)]
    shutil.rmtree(tmp_path / "drive")  # unmounted
    client = await make_client()
    assert (data_dir / "wallet-locations.csv").read_bytes() == before
    body = await ok(await client.get("/api/wallets/list"))
    assert [(w["wallet_path"], w["online"]) for w in body["wallets"]] == [(str(drive), False)]
