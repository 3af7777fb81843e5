"""POST /api/system/login and /logout, GET /api/system/encryption-status."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from app.wallet import crypto
from app.wallet.logins import LoginGate
from tests.conftest import coin_bytes, write_coins

PASSWORD = "s3cret pa55word"
WRONG = {"error": True, "message": "Incorrect password", "code": 401}


@pytest.fixture(scope="module")
def key() -> bytes:
    return crypto.derive_key(PASSWORD)


async def status_of(client: Any) -> dict[str, Any]:
    response = await client.get("/api/system/encryption-status")
    assert response.status == 200
    return await response.json()


def add_encrypted(folder: Path, key: bytes, serial: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"1 CloudCoin #{serial} 'enc'.bin"
    path.write_bytes(crypto.encrypt_coin_file(coin_bytes(serial), key))
    return path


async def test_login_with_no_encrypted_coins_sets_the_key(client, key):
    response = await client.post("/api/system/login", json={"password": PASSWORD})
    assert response.status == 200
    body = await response.json()
    assert body == {"command": "login", "success": True, "key_set": True, "key_check": crypto.key_check(key).hex()}
    assert len(body["key_check"]) == 14
    assert (await status_of(client))["key_set"] is True


async def test_login_with_a_form_body(client, key):
    response = await client.post("/api/system/login", data={"password": PASSWORD})
    assert response.status == 200
    assert (await response.json())["key_check"] == crypto.key_check(key).hex()


async def test_password_in_the_query_string_is_refused(client):
    for kwargs in ({}, {"json": {"password": PASSWORD}}):
        response = await client.post("/api/system/login", params={"password": PASSWORD}, **kwargs)
        assert response.status == 400
        body = await response.json()
        assert body["success"] is False and body["code"] == 400
        assert "query" in body["error"]
    assert (await status_of(client))["key_set"] is False


@pytest.mark.parametrize("payload", [{}, {"password": ""}, {"other": "x"}])
async def test_missing_password_is_400(client, payload):
    response = await client.post("/api/system/login", json=payload)
    assert response.status == 400
    assert await response.json() == {"success": False, "error": "Missing required parameter: password", "code": 400}


async def test_login_is_post_only(client):
    response = await client.get("/api/system/login")
    assert response.status == 405


async def test_wrong_password_with_encrypted_coins_is_401_and_sets_no_key(client, data_dir, key):
    wallet = data_dir / "Wallets" / "Default"
    write_coins(wallet / "Bank", range(1, 4))
    add_encrypted(wallet / "Fracked", key, 10)
    response = await client.post("/api/system/login", json={"password": "not it"})
    assert response.status == 401
    assert await response.json() == WRONG
    assert (await status_of(client))["key_set"] is False
    response = await client.post("/api/system/login", json={"password": PASSWORD})
    assert response.status == 200
    assert (await status_of(client))["key_set"] is True


async def test_a_wrong_password_keeps_the_key_already_set(client, data_dir, key):
    add_encrypted(data_dir / "Wallets" / "Default" / "Bank", key, 10)
    assert (await client.post("/api/system/login", json={"password": PASSWORD})).status == 200
    assert (await client.post("/api/system/login", json={"password": "nope"})).status == 401
    assert (await status_of(client))["key_set"] is True


async def test_one_matching_file_among_foreign_ones_is_enough(client, data_dir, key):
    other = crypto.derive_key("another password")
    wallet = data_dir / "Wallets" / "Default"
    for serial in range(5):
        add_encrypted(wallet / "Bank", other, serial)
    add_encrypted(wallet / "Fracked", key, 99)
    assert (await client.post("/api/system/login", json={"password": PASSWORD})).status == 200


async def test_files_of_other_tools_do_not_block_login(client, data_dir):
    wallet = data_dir / "Wallets" / "Default"
    other_tool = bytearray(coin_bytes(5))
    other_tool[5] = 1  # AES-128-CTR of another tool: its key check is not made our way
    other_tool[8:15] = b"\x01" * 7
    (wallet / "Bank" / "1 CloudCoin #5 'other'.bin").write_bytes(bytes(other_tool))
    response = await client.post("/api/system/login", json={"password": PASSWORD})
    assert response.status == 200
    body = await status_of(client)
    assert (body["encrypted_count"], body["key_set"], body["login_required"]) == (1, True, False)


async def test_coins_of_every_registered_wallet_count(client, tmp_path, key):
    wallet = tmp_path / "usb" / "Savings"
    (wallet / "Fracked").mkdir(parents=True)
    add_encrypted(wallet / "Bank", key, 1)
    assert (await client.post("/api/wallets/locations", json={"path": str(wallet)})).status == 200
    assert (await client.post("/api/system/login", json={"password": "wrong"})).status == 401
    assert (await client.post("/api/system/login", json={"password": PASSWORD})).status == 200


async def test_logout_forgets_the_key(client):
    assert (await client.post("/api/system/login", json={"password": PASSWORD})).status == 200
    response = await client.post("/api/system/logout")
    assert response.status == 200
    assert await response.json() == {"command": "logout", "success": True, "key_set": False}
    assert (await status_of(client))["key_set"] is False
    response = await client.post("/api/system/logout")  # logging out twice is fine
    assert response.status == 200


async def test_encryption_status_counts_coin_files_in_bank_and_fracked(client, tmp_path, data_dir, key):
    wallet = data_dir / "Wallets" / "Default"
    write_coins(wallet / "Bank", range(1, 4))
    write_coins(wallet / "Fracked", [7])
    add_encrypted(wallet / "Bank", key, 20)
    add_encrypted(wallet / "Fracked", crypto.derive_key("x"), 21)
    write_coins(wallet / "Limbo", [30])  # not Bank/Fracked
    (wallet / "Bank" / "notes.bin").write_bytes(b"not a coin file")
    (wallet / "Bank" / "readme.txt").write_bytes(coin_bytes(40))
    other = tmp_path / "Other"
    (other / "Fracked").mkdir(parents=True)
    add_encrypted(other / "Bank", key, 50)
    assert (await client.post("/api/wallets/locations", json={"path": str(other)})).status == 200

    body = await status_of(client)
    assert body == {
        "command": "encryption-status",
        "success": True,
        "key_set": False,
        "encrypted_count": 3,
        "plaintext_count": 4,
        "login_required": True,
    }
    assert (await client.post("/api/system/login", json={"password": PASSWORD})).status == 200
    body = await status_of(client)
    assert body["key_set"] is True and body["login_required"] is False


async def test_encryption_status_of_a_plaintext_wallet_needs_no_login(client, data_dir):
    write_coins(data_dir / "Wallets" / "Default" / "Bank", range(1, 3))
    body = await status_of(client)
    assert (body["encrypted_count"], body["plaintext_count"], body["login_required"]) == (0, 2, False)


async def test_the_password_and_key_are_never_logged(client, data_dir, key, caplog):
    caplog.set_level(logging.DEBUG)
    add_encrypted(data_dir / "Wallets" / "Default" / "Bank", key, 1)
    await client.post("/api/system/login", json={"password": "a wrong one"})
    await client.post("/api/system/login", json={"password": PASSWORD})
    await client.post("/api/system/login", params={"password": PASSWORD})
    await client.post("/api/system/logout")
    text = caplog.text
    for secret in (PASSWORD, "a wrong one", key.hex()):
        assert secret not in text
    assert repr(key) not in text


# -- a second password, failed logins, one derivation at a time (issue: login hardening) -----------------

ALREADY = {"success": False, "error": "Already logged in with another password: log out first", "code": 409}


async def test_another_password_while_a_key_is_set_is_409_and_keeps_the_key(client, key):
    assert (await client.post("/api/system/login", json={"password": PASSWORD})).status == 200
    response = await client.post("/api/system/login", json={"password": "another one"})
    assert response.status == 409
    assert await response.json() == ALREADY
    # The key is still the first one: the same password is accepted again, and answers its check.
    response = await client.post("/api/system/login", json={"password": PASSWORD})
    assert response.status == 200
    assert (await response.json())["key_check"] == crypto.key_check(key).hex()
    assert (await client.post("/api/system/logout")).status == 200
    response = await client.post("/api/system/login", json={"password": "another one"})
    assert response.status == 200
    assert (await response.json())["key_check"] == crypto.key_check(crypto.derive_key("another one")).hex()


async def test_failed_logins_are_limited_then_429_with_retry_after(client, data_dir, key):
    add_encrypted(data_dir / "Wallets" / "Default" / "Bank", key, 1)
    for attempt in range(5):
        response = await client.post("/api/system/login", json={"password": f"guess {attempt}"})
        assert response.status == 401
    for password in ("guess 6", PASSWORD):  # while limited, even the right password waits
        response = await client.post("/api/system/login", json={"password": password})
        assert response.status == 429
        retry_after = int(response.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        body = await response.json()
        assert body == {
            "success": False,
            "error": f"Too many failed logins: try again in {retry_after} seconds",
            "code": 429,
        }
    assert (await status_of(client))["key_set"] is False


async def test_409s_count_as_failed_logins(client):
    assert (await client.post("/api/system/login", json={"password": PASSWORD})).status == 200
    statuses = [(await client.post("/api/system/login", json={"password": f"other {i}"})).status for i in range(6)]
    assert statuses == [409] * 5 + [429]


def test_the_limit_forgets_failures_after_a_minute_and_on_success():
    now = [1000.0]
    gate = LoginGate(clock=lambda: now[0])
    for _ in range(5):
        assert gate.retry_after() is None
        gate.failed()
    assert gate.retry_after() == 60
    now[0] += 59.5
    assert gate.retry_after() == 1
    now[0] += 0.5
    assert gate.retry_after() is None  # the failures are a minute old
    for _ in range(5):
        gate.failed()
    assert gate.retry_after() == 60
    gate.succeeded()
    assert gate.retry_after() is None


async def test_twenty_logins_at_once_derive_one_key_at_a_time_and_listing_is_served(client, monkeypatch):
    running, most = 0, 0
    real = crypto.derive_key

    def counted(password: str) -> bytes:
        nonlocal running, most
        running += 1  # on the app's threads: += under the GIL is enough for a count of overlaps
        most = max(most, running)
        try:
            return real(password)
        finally:
            running -= 1

    monkeypatch.setattr(crypto, "derive_key", counted)
    logins = [asyncio.ensure_future(client.post("/api/system/login", json={"password": PASSWORD})) for _ in range(20)]
    await asyncio.sleep(0.05)
    listing = await client.get("/api/wallets/list")
    assert listing.status == 200
    assert not all(login.done() for login in logins)  # answered while logins still waited their turn
    assert [r.status for r in await asyncio.gather(*logins)] == [200] * 20
    assert most == 1
