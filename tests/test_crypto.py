"""Tests for app.wallet.crypto: type-4 coin-file encryption."""

import hashlib
import os
import threading
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.wallet import crypto
from app.wallet.coins import (
    AN_BLOCK,
    ENCRYPTED_SINGLE_SIZE,
    PLAIN_SINGLE_SIZE,
    Coin,
    CoinFileError,
    Encryption,
    build_coin_file,
    inspect_coin_file,
)
from app.wallet.crypto import (
    KEY_SALT,
    CoinEncryptor,
    WrongKey,
    decrypt_coin_file,
    derive_key,
    encrypt_coin_file,
    is_under_key,
    key_check,
)


@pytest.fixture(scope="module")
def key() -> bytes:
    return derive_key("correct horse battery staple")


@pytest.fixture(scope="module")
def other_key() -> bytes:
    # Any 32 bytes will do: only the key check has to differ.
    return hashlib.sha256(b"another key").digest()


def make_coin(denomination: int = 2, serial: int = 31337, *, pans: bool = False) -> Coin:
    return Coin(
        denomination,
        serial,
        ans=tuple(os.urandom(16) for _ in range(25)),
        pans=tuple(os.urandom(16) for _ in range(25)) if pans else None,
    )


def test_derive_key_is_deterministic_and_32_bytes(key):
    assert len(key) == 32
    assert derive_key("correct horse battery staple") == key
    assert derive_key("correct horse battery stapler") != key


def test_derive_key_is_the_documented_scrypt(key):
    assert KEY_SALT == b"CloudCoin coin file v9"
    expected = hashlib.scrypt(
        b"correct horse battery staple",
        salt=KEY_SALT,
        n=2**15,
        r=8,
        p=1,
        maxmem=64 * 1024 * 1024,
        dklen=32,
    )
    assert key == expected


def test_derive_key_is_the_cryptography_packages_scrypt(key):
    # storage.md names the `cryptography` package; the key must be exactly its Scrypt's.
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    assert key == Scrypt(salt=KEY_SALT, length=32, n=2**15, r=8, p=1).derive(b"correct horse battery staple")


def test_derive_key_lets_other_threads_run(key):
    # The loop's thread must not wait for a derivation: count what another thread does meanwhile.
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        started = time.perf_counter()
        for _ in range(3):
            derive_key("correct horse battery staple")
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        ticker.join()
    # Holding the GIL, three derivations let the ticker in a handful of times, not once a millisecond.
    assert ticks > elapsed * 1000 / 10


def test_key_check_is_first_seven_bytes_of_sha256(key):
    assert key_check(key) == hashlib.sha256(key).digest()[:7]
    assert len(key_check(key)) == 7


def test_encrypt_then_decrypt_gives_back_the_original(key):
    plain = build_coin_file([make_coin()], pown="p" * 25, task_id=b"xyz", experimental=3)
    encrypted = encrypt_coin_file(plain, key)
    assert len(encrypted) == ENCRYPTED_SINGLE_SIZE
    assert decrypt_coin_file(encrypted, key) == plain


def test_encrypted_header_layout(key):
    plain = build_coin_file([make_coin()])
    nonce = bytes(range(16))
    encrypted = encrypt_coin_file(plain, key, nonce=nonce)
    assert encrypted[5] == Encryption.AES256_CTR
    assert encrypted[8:15] == key_check(key)
    assert encrypted[32:48] == nonce
    assert encrypted[48:55] == plain[32:39]

    # Everything else in the file header is carried unchanged.
    def unchanged(data: bytes) -> bytes:
        return data[:5] + data[6:8] + data[15:32]

    assert unchanged(encrypted) == unchanged(plain)
    # AES-256-CTR with the nonce as the initial counter block, over the ANs only.
    decryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).decryptor()
    assert decryptor.update(encrypted[55:]) + decryptor.finalize() == plain[39:]


def test_nonce_is_fresh_each_time(key):
    plain = build_coin_file([make_coin()])
    first, second = encrypt_coin_file(plain, key), encrypt_coin_file(plain, key)
    assert first[32:48] != second[32:48]
    assert first[55:] != second[55:]


def test_no_an_appears_in_the_ciphertext(key):
    coin = make_coin(pans=True)
    encrypted = encrypt_coin_file(build_coin_file([coin]), key)
    for number in coin.ans + coin.pans:
        assert number not in encrypted


def test_inspect_reads_the_encrypted_file(key):
    encrypted = encrypt_coin_file(build_coin_file([make_coin(4, 8675309)], pown="f" * 25), key)
    info = inspect_coin_file(encrypted)
    assert info.encrypted
    assert info.encryption == Encryption.AES256_CTR
    assert info.key_check == key_check(key)
    assert info.pown == "f" * 25
    assert (info.coins[0].denomination, info.coins[0].serial_number) == (4, 8675309)
    assert info.total_value == 10**4 * 10**8


def test_wrong_key_is_refused(key, other_key):
    encrypted = encrypt_coin_file(build_coin_file([make_coin()]), key)
    with pytest.raises(WrongKey):
        decrypt_coin_file(encrypted, other_key)
    assert issubclass(WrongKey, ValueError)


def test_is_under_key(key, other_key):
    plain = build_coin_file([make_coin()])
    encrypted = encrypt_coin_file(plain, key)
    assert is_under_key(encrypted, key)
    assert not is_under_key(encrypted, other_key)
    assert not is_under_key(plain, key)
    assert not is_under_key(b"", key)


def test_refuses_multi_coin_input(key):
    with pytest.raises(CoinFileError, match="multi-coin"):
        encrypt_coin_file(build_coin_file([make_coin(), make_coin()]), key)


def test_refuses_already_encrypted_input(key):
    encrypted = encrypt_coin_file(build_coin_file([make_coin()]), key)
    with pytest.raises(CoinFileError, match="already encrypted"):
        encrypt_coin_file(encrypted, key)


def test_refuses_other_tools_type_1_input(key):
    plain = build_coin_file([make_coin()])
    type_1 = plain[:5] + b"\x01" + plain[6:]
    with pytest.raises(CoinFileError):
        encrypt_coin_file(type_1, key)
    with pytest.raises(CoinFileError, match="not a type-4 file"):
        decrypt_coin_file(type_1, key)


def test_decrypt_refuses_plaintext_and_broken_files(key):
    with pytest.raises(CoinFileError, match="not a type-4 file"):
        decrypt_coin_file(build_coin_file([make_coin()]), key)
    encrypted = encrypt_coin_file(build_coin_file([make_coin()]), key)
    with pytest.raises(CoinFileError, match="truncated"):
        decrypt_coin_file(encrypted[:-1], key)


def test_pans_variant_round_trip(key):
    plain = build_coin_file([make_coin(pans=True)])
    assert len(plain) == PLAIN_SINGLE_SIZE + AN_BLOCK
    encrypted = encrypt_coin_file(plain, key)
    assert len(encrypted) == ENCRYPTED_SINGLE_SIZE + AN_BLOCK
    assert inspect_coin_file(encrypted).state_flag == 1
    assert decrypt_coin_file(encrypted, key) == plain


def test_bad_nonce_or_key_length_is_refused(key):
    plain = build_coin_file([make_coin()])
    with pytest.raises(ValueError):
        encrypt_coin_file(plain, key, nonce=bytes(8))
    with pytest.raises(ValueError):
        encrypt_coin_file(plain, key[:16])


# -- CoinEncryptor: encrypt_coin_file for many files, byte for byte ---------------------------------


def test_encryptor_writes_exactly_what_encrypt_coin_file_writes(key):
    encryptor = CoinEncryptor(key)
    assert encryptor.key_check == key_check(key)
    seen = set()
    for serial in range(600):  # more than two batches of nonces
        plain = build_coin_file(
            [make_coin(serial % 20 - 8, serial)], pown="pfbneud"[serial % 7] * 25,
            task_id=serial.to_bytes(3, "big"), experimental=serial % 256,
        )  # fmt: skip
        out = encryptor.encrypt_plain_single(plain)
        nonce = out[32:48]
        assert out == encrypt_coin_file(plain, key, nonce=nonce)
        assert decrypt_coin_file(out, key) == plain
        seen.add(nonce)
    assert len(seen) == 600


def test_encryptor_takes_any_plaintext_single_coin_and_refuses_what_encrypt_coin_file_refuses(key):
    encryptor = CoinEncryptor(key)
    plain = build_coin_file([make_coin()])
    out = encryptor.encrypt(plain)
    assert out == encrypt_coin_file(plain, key, nonce=out[32:48])
    with_pans = build_coin_file([make_coin(pans=True)])
    assert decrypt_coin_file(encryptor.encrypt(with_pans), key) == with_pans
    with pytest.raises(CoinFileError, match="multi-coin"):
        encryptor.encrypt(build_coin_file([make_coin(), make_coin()]))
    with pytest.raises(CoinFileError, match="already encrypted"):
        encryptor.encrypt(out)
    with pytest.raises(CoinFileError):
        encryptor.encrypt(plain[:-1])
    assert repr(encryptor) == "<CoinEncryptor>"
    with pytest.raises(ValueError):
        CoinEncryptor(key[:16])


def test_encryptor_redraws_a_nonce_last_byte_that_would_carry(key, monkeypatch):
    real = os.urandom
    plain = build_coin_file([make_coin()])
    draws = []

    def urandom(n: int) -> bytes:
        draws.append(n)
        if len(draws) == 1:
            return b"\xff" * n  # every nonce at the very top: its last byte would carry
        return real(n)

    monkeypatch.setattr(crypto.os, "urandom", urandom)
    encryptor = CoinEncryptor(key)
    outs = [encryptor.encrypt_plain_single(plain) for _ in range(256)]
    monkeypatch.undo()
    assert len(draws) >= 2
    for out in outs:
        assert out[32:47] == b"\xff" * 15 and out[47] <= 231
        assert out == encrypt_coin_file(plain, key, nonce=out[32:48])
        assert decrypt_coin_file(out, key) == plain


def test_encryptor_nonces_are_random_in_every_byte_the_last_one_below_232(key):
    encryptor = CoinEncryptor(key)
    plain = build_coin_file([make_coin()])
    nonces = [encryptor.encrypt_plain_single(plain)[32:48] for _ in range(2048)]
    assert len(set(nonces)) == len(nonces)
    for position in range(16):
        values = {nonce[position] for nonce in nonces}
        assert len(values) > 200, position  # 2,048 draws of a random byte leave few values out
    assert max(nonce[15] for nonce in nonces) <= 231


# -- the batch path: encrypt_plain_singles -------------------------------------------------------


def plain_singles(count: int) -> list[bytes]:
    return [
        build_coin_file(
            [make_coin(serial % 20 - 8, serial)],
            pown="pfbneud"[serial % 7] * 25,
            task_id=serial.to_bytes(3, "big"),
            experimental=serial % 256,
        )  # fmt: skip
        for serial in range(count)
    ]


@pytest.mark.parametrize("count", [1, 2, 255, 256])
def test_batch_encryption_writes_exactly_what_encrypt_coin_file_writes(key, count):
    encryptor = CoinEncryptor(key)
    plains = plain_singles(count)
    outs = encryptor.encrypt_plain_singles(plains)
    assert len(outs) == count
    for plain, out in zip(plains, outs, strict=True):
        nonce = out[32:48]
        assert nonce[15] <= 231
        assert out == encrypt_coin_file(plain, key, nonce=nonce)
        assert decrypt_coin_file(out, key) == plain
    assert len({out[32:48] for out in outs}) == count


def test_batch_encryption_nonces_are_fresh_random_and_redrawn_where_they_would_carry(key, monkeypatch):
    encryptor = CoinEncryptor(key)
    plains = plain_singles(256)
    nonces = [out[32:48] for _ in range(8) for out in encryptor.encrypt_plain_singles(plains)]
    assert len(set(nonces)) == len(nonces)
    for position in range(16):
        assert len({nonce[position] for nonce in nonces}) > 200, position
    real = os.urandom
    draws = []

    def urandom(n: int) -> bytes:
        draws.append(n)
        return b"\xff" * n if len(draws) == 1 else real(n)

    monkeypatch.setattr(crypto.os, "urandom", urandom)
    outs = encryptor.encrypt_plain_singles(plains[:10])
    monkeypatch.undo()
    for plain, out in zip(plains, outs):
        assert out[32:47] == b"\xff" * 15 and out[47] <= 231
        assert decrypt_coin_file(out, key) == plain


def test_batch_encryption_refuses_what_is_not_a_batch_of_plain_single_coins(key):
    encryptor = CoinEncryptor(key)
    assert encryptor.encrypt_plain_singles([]) == []
    with pytest.raises(ValueError):
        encryptor.encrypt_plain_singles(plain_singles(257))
    with pytest.raises(ValueError):
        encryptor.encrypt_plain_singles([*plain_singles(3), build_coin_file([make_coin(pans=True)])])
    with pytest.raises(ValueError):
        encryptor.encrypt_plain_singles([plain_singles(1)[0][:-1]])
