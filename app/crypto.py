"""Coin-file encryption (type 4): key derivation, key check, encrypt, decrypt — pure functions."""

import hashlib
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.coins import (
    COIN_HEADER_SIZE,
    HEADER_SIZE,
    NONCE_SIZE,
    CoinFileError,
    Encryption,
    inspect_coin_file,
)

KEY_SALT = b"CloudCoin coin file v9"
KEY_SIZE = 32
KEY_CHECK_SIZE = 7
_KEY_CHECK = slice(8, 8 + KEY_CHECK_SIZE)
_ENCRYPTION_BYTE = 5
_NO_KEY_CHECK = bytes(KEY_CHECK_SIZE)


class WrongKey(ValueError):
    """The file's key check does not match the key: it was encrypted under another one."""


def derive_key(password: str) -> bytes:
    """The 32-byte AES-256 key for ``password`` (scrypt; ~50–100 ms, so derive once at login)."""
    kdf = Scrypt(salt=KEY_SALT, length=KEY_SIZE, n=2**15, r=8, p=1)
    return kdf.derive(password.encode("utf-8"))


def key_check(key: bytes) -> bytes:
    """The 7 bytes that name ``key`` in a file header without revealing it."""
    return hashlib.sha256(key).digest()[:KEY_CHECK_SIZE]


def is_under_key(data: bytes, key: bytes) -> bool:
    """Whether the file header says it is encrypted under ``key``."""
    return (
        len(data) >= HEADER_SIZE
        and data[_ENCRYPTION_BYTE] != Encryption.NONE
        and data[_KEY_CHECK] == key_check(key)
    )


def _ctr(key: bytes, nonce: bytes) -> Cipher:
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes")
    return Cipher(algorithms.AES(key), modes.CTR(nonce))


def encrypt_coin_file(data: bytes, key: bytes, *, nonce: bytes | None = None) -> bytes:
    """A plaintext single-coin file as a type-4 file: ANs (and PANs) under AES-256-CTR."""
    info = inspect_coin_file(data)
    if info.encrypted:
        raise CoinFileError("already encrypted")
    if info.is_multi:
        raise CoinFileError("multi-coin files are never encrypted")
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    elif len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    encryptor = _ctr(key, nonce).encryptor()
    header = bytearray(data[:HEADER_SIZE])
    header[_ENCRYPTION_BYTE] = Encryption.AES256_CTR
    header[_KEY_CHECK] = key_check(key)
    body = HEADER_SIZE + COIN_HEADER_SIZE
    return b"".join(
        (
            header,
            nonce,
            data[HEADER_SIZE:body],
            encryptor.update(data[body:]),
            encryptor.finalize(),
        )
    )


def decrypt_coin_file(data: bytes, key: bytes) -> bytes:
    """A type-4 file back to plaintext (type 0); WrongKey when it is under another key."""
    info = inspect_coin_file(data)
    if info.encryption != Encryption.AES256_CTR:
        raise CoinFileError(f"not a type-4 file (encryption type {info.encryption})")
    if info.key_check != key_check(key):
        raise WrongKey("coin file is encrypted under another key")
    coin_header = HEADER_SIZE + NONCE_SIZE
    body = coin_header + COIN_HEADER_SIZE
    decryptor = _ctr(key, data[HEADER_SIZE:coin_header]).decryptor()
    header = bytearray(data[:HEADER_SIZE])
    header[_ENCRYPTION_BYTE] = Encryption.NONE
    header[_KEY_CHECK] = _NO_KEY_CHECK
    return b"".join(
        (
            header,
            data[coin_header:body],
            decryptor.update(data[body:]),
            decryptor.finalize(),
        )
    )
