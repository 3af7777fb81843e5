"""A backup while logged in: plaintext coins from Bank and Fracked are encrypted on their way in."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from app.wallet import coins, crypto
from app.wallet.crypto import CoinEncryptor
from jobs.backup.coins import plain_single_units
from tests.conftest import coin_bytes, write_coins

PASSWORD = "correct horse battery staple"


def snapshot(wallet: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(wallet)): p.read_bytes()
        for p in sorted(wallet.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def numbers_of(data: bytes) -> list[bytes]:
    """Every AN (and PAN) of a plaintext coin file, 16 bytes each."""
    _, parsed = coins.parse_coin_file(data)
    found = []
    for coin in parsed:
        found.extend(coin.ans)
        found.extend(coin.pans or ())
    return found


@pytest.fixture(scope="module")
def key() -> bytes:
    return crypto.derive_key(PASSWORD)


async def login(client: Any, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/system/login", json={"password": password})
    assert response.status == 200, await response.text()
    return await response.json()


async def post_backup(client: Any, destination: Path) -> dict[str, Any]:
    response = await client.post("/api/wallets/backup", json={"destination": str(destination)})
    body = await response.json()
    assert response.status == 200, body
    return body


async def test_logged_in_backup_holds_no_plaintext_an(client, tmp_path, data_dir, key):
    wallet = data_dir / "Wallets" / "Default"
    plain = write_coins(wallet / "Bank", range(1, 21)) + write_coins(wallet / "Fracked", range(50, 55), 2)
    with_pans = coin_bytes(77, pans=True)
    (wallet / "Bank" / "1 CloudCoin #77 'pans'.bin").write_bytes(with_pans)
    ours = crypto.encrypt_coin_file(coin_bytes(80), key)
    (wallet / "Bank" / "1 CloudCoin #80 'ours'.bin").write_bytes(ours)
    foreign = crypto.encrypt_coin_file(coin_bytes(81), crypto.derive_key("someone else"))
    (wallet / "Fracked" / "1 CloudCoin #81 'foreign'.bin").write_bytes(foreign)
    type1 = bytearray(coin_bytes(82))
    type1[5] = 1
    type1[8:15] = os.urandom(7)
    (wallet / "Bank" / "1 CloudCoin #82 'type1'.bin").write_bytes(bytes(type1))
    multi = coins.build_coin_file([coins.Coin(0, s, tuple(os.urandom(16) for _ in range(25))) for s in (90, 91)])
    (wallet / "Bank" / "2 CloudCoin #2 'multi'.bin").write_bytes(multi)
    limbo = write_coins(wallet / "Limbo", [95])  # outside the seed's scope: archived as it is
    before = snapshot(wallet)
    check = (await login(client))["key_check"]
    assert check == crypto.key_check(key).hex()

    body = await post_backup(client, tmp_path / "b")

    assert body["files_added"] == 20 + 5 + 1 + 3 + 1
    assert body["files_reencrypted_for_backup"] == 26  # 25 plain singles + the one with PANs
    assert body["files_added_plaintext"] == 1  # the multi-coin file
    assert body["files_added_multi_warned"] == 1
    already = 3
    assert body["files_reencrypted_for_backup"] + body["files_added_plaintext"] + already == body["files_added"]
    assert snapshot(wallet) == before, "the wallet itself must not change"

    archive_bytes = Path(body["zip_path"]).read_bytes()
    secrets = [n for path in plain for n in numbers_of(path.read_bytes())] + numbers_of(with_pans)
    assert len(secrets) == 25 * 25 + 50
    leaked = [n.hex() for n in secrets if n in archive_bytes]
    assert leaked == []
    with zipfile.ZipFile(body["zip_path"]) as archive:
        assert archive.testzip() is None
        for path in plain:
            rel = path.relative_to(wallet)
            stored = archive.read(f"Default/{rel}")
            assert len(stored) == coins.ENCRYPTED_SINGLE_SIZE
            assert crypto.is_under_key(stored, key)
            assert crypto.decrypt_coin_file(stored, key) == path.read_bytes()
        stored = archive.read("Default/Bank/1 CloudCoin #77 'pans'.bin")
        assert crypto.decrypt_coin_file(stored, key) == with_pans
        assert archive.read("Default/Bank/1 CloudCoin #80 'ours'.bin") == ours
        assert archive.read("Default/Fracked/1 CloudCoin #81 'foreign'.bin") == foreign
        assert archive.read("Default/Bank/1 CloudCoin #82 'type1'.bin") == bytes(type1)
        assert archive.read("Default/Bank/2 CloudCoin #2 'multi'.bin") == multi
        assert archive.read(f"Default/Limbo/{limbo[0].name}") == limbo[0].read_bytes()
        manifest = json.loads(archive.read("backup-manifest.json"))
    assert manifest["reencrypted"] is True
    assert manifest["key_check"] == check
    assert manifest["counters"]["files_reencrypted_for_backup"] == 26
    assert manifest["folders"]["Bank"]["encrypted_files"] == 20 + 1 + 2
    assert manifest["folders"]["Bank"]["coins"] == 20 + 1 + 1 + 1 + 2
    assert manifest["folders"]["Fracked"]["value"] == 5 * 100 + 1


async def test_nonces_are_fresh_for_every_file_and_every_backup(client, tmp_path, data_dir, key):
    wallet = data_dir / "Wallets" / "Default"
    write_coins(wallet / "Bank", range(1, 301))
    await login(client)
    nonces = []
    for n in range(2):
        body = await post_backup(client, tmp_path / f"b{n}")
        with zipfile.ZipFile(body["zip_path"]) as archive:
            for name in archive.namelist():
                if name.endswith(".bin"):
                    nonces.append(archive.read(name)[32:48])
    assert len(nonces) == 600 == len(set(nonces))


async def test_without_a_key_everything_goes_in_verbatim(client, tmp_path, data_dir, key):
    wallet = data_dir / "Wallets" / "Default"
    plain = write_coins(wallet / "Bank", range(1, 6))
    ours = crypto.encrypt_coin_file(coin_bytes(80), key)
    (wallet / "Fracked" / "1 CloudCoin #80 'ours'.bin").write_bytes(ours)
    body = await post_backup(client, tmp_path / "b")
    assert (body["files_added"], body["files_added_plaintext"], body["files_reencrypted_for_backup"]) == (6, 5, 0)
    with zipfile.ZipFile(body["zip_path"]) as archive:
        for path in plain:
            assert archive.read(f"Default/Bank/{path.name}") == path.read_bytes()
        manifest = json.loads(archive.read("backup-manifest.json"))
    assert manifest["reencrypted"] is False and manifest["key_check"] is None


async def test_after_logout_backups_are_plaintext_again(client, tmp_path, data_dir):
    write_coins(data_dir / "Wallets" / "Default" / "Bank", range(1, 4))
    await login(client)
    assert (await post_backup(client, tmp_path / "a"))["files_reencrypted_for_backup"] == 3
    assert (await client.post("/api/system/logout")).status == 200
    body = await post_backup(client, tmp_path / "b")
    assert (body["files_reencrypted_for_backup"], body["files_added_plaintext"]) == (0, 3)


async def test_the_job_never_shows_the_key(client, tmp_path, data_dir, key):
    write_coins(data_dir / "Wallets" / "Default" / "Bank", range(1, 4))
    await login(client)
    body = await post_backup(client, tmp_path / "b")
    text = await (await client.get(f"/api/jobs/{body['job_id']}")).text()
    assert key.hex() not in text and PASSWORD not in text
    assert key not in Path(body["zip_path"]).read_bytes()


# -- the walk's fast path: plain_single_units picks the coins that the batch encryptor takes ---------


def test_encryptor_writes_exactly_what_crypto_writes(key):
    encryptor = CoinEncryptor(key)
    seen = set()
    for serial in range(600):  # more than two batches of nonces
        plain = coin_bytes(serial, denomination=serial % 15 - 8)
        assert plain_single_units(plain) == coins.denomination_value(serial % 15 - 8)
        out = encryptor.encrypt_plain_single(plain)
        nonce = out[32:48]
        assert out == crypto.encrypt_coin_file(plain, key, nonce=nonce)
        assert crypto.decrypt_coin_file(out, key) == plain
        seen.add(nonce)
    assert len(seen) == 600


def test_what_plain_single_units_refuses_goes_to_the_general_encryption(key):
    encryptor = CoinEncryptor(key)
    with_pans = coin_bytes(1, pans=True)
    assert plain_single_units(with_pans) is None
    out = encryptor.encrypt(with_pans)
    assert crypto.decrypt_coin_file(out, key) == with_pans
    multi = coins.build_coin_file([coins.Coin(0, s, tuple(os.urandom(16) for _ in range(25))) for s in (1, 2)])
    assert plain_single_units(multi) is None
    with pytest.raises(coins.CoinFileError):
        encryptor.encrypt(multi)


def test_plain_single_units_rejects_what_is_not_a_plain_single_coin():
    good = coin_bytes(5, denomination=3)
    assert plain_single_units(good) == 1000 * coins.UNITS_PER_COIN
    for index, value in ((0, 8), (1, 2), (3, 5), (5, 4), (7, 2), (15, 1), (32, 1), (34, 12)):
        bad = bytearray(good)
        bad[index] = value
        assert plain_single_units(bytes(bad)) is None, index
    assert plain_single_units(good[:-1]) is None
