"""Coin-file encryption (type 4): key derivation, key check, encrypt (one file or many), decrypt."""

import hashlib
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.wallet.coins import (
    AN_BLOCK,
    COIN_HEADER_SIZE,
    HEADER_SIZE,
    NONCE_SIZE,
    PLAIN_SINGLE_SIZE,
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
_BODY = HEADER_SIZE + COIN_HEADER_SIZE  # where the ANs of a plaintext single coin start
_ONE_COIN = b"\x00\x01"  # header bytes 6-7, the coin count, of a single-coin file
_CTR_BLOCKS = AN_BLOCK // 16  # 25 counter blocks cover the 400 bytes of ANs
_BATCH = 256  # coins whose nonces and key streams `CoinEncryptor` makes in one go
# The counter blocks of a batch: each nonce written 25 times, plus 0, 1, …, 24 on its copies. A
# carry from one block into the next happens only when a nonce is within 25 of 2**128, which
# `_draw_nonces` rules out.
_BATCH_STEPS = int.from_bytes(b"".join(i.to_bytes(16, "big") for i in range(_CTR_BLOCKS)) * _BATCH, "big")
_NONCE_LIMIT = (1 << 128) - _CTR_BLOCKS  # the largest nonce whose last counter block does not wrap


class WrongKey(ValueError):
    """The file's key check does not match the key: it was encrypted under another one."""


#: scrypt's working memory is 128 * r * n = 32 MiB; OpenSSL wants a little more than that.
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def derive_key(password: str) -> bytes:
    """The 32-byte AES-256 key for ``password`` (scrypt; ~50–100 ms, so derive once at login).

    The same scrypt as the `cryptography` package's `Scrypt` (storage.md), through `hashlib`, whose
    OpenSSL call lets go of the GIL: `Scrypt.derive` holds it for the whole ~0.1 s, and the event
    loop stood still that long at every login.
    """
    return hashlib.scrypt(
        password.encode("utf-8"), salt=KEY_SALT, n=2**15, r=8, p=1, maxmem=_SCRYPT_MAXMEM, dklen=KEY_SIZE
    )


def key_check(key: bytes) -> bytes:
    """The 7 bytes that name ``key`` in a file header without revealing it."""
    return hashlib.sha256(key).digest()[:KEY_CHECK_SIZE]


def is_under_key(data: bytes, key: bytes) -> bool:
    """Whether the file header says it is encrypted under ``key``."""
    return len(data) >= HEADER_SIZE and data[_ENCRYPTION_BYTE] != Encryption.NONE and data[_KEY_CHECK] == key_check(key)


def _ctr(key: bytes, nonce: bytes) -> Cipher:
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes")
    return Cipher(algorithms.AES(key), modes.CTR(nonce))


def _type4_middle(count: bytes, check: bytes) -> bytes:
    """Header bytes 5-14 of a type-4 file: encryption type 4, the coin count (2 bytes), the key check."""
    return bytes((Encryption.AES256_CTR,)) + count + check


def _seal(data: bytes, middle: bytes, nonce: bytes, key_stream: bytes) -> bytes:
    """The type-4 layout, written in this one place for every encryptor of this module.

    `data` is a plaintext single-coin file, `middle` its header bytes 5-14 as `_type4_middle` makes
    them, `key_stream` the AES-256-CTR key stream from `nonce`, exactly as long as what follows the
    coin header. Header bytes 0-4 and 15-31 and the coin header stay readable; the nonce goes between
    the file header and the coin header; the ANs (and PANs) are XOR-ed with the key stream.
    """
    size = len(key_stream)
    # One XOR of two big integers is the cheapest byte-wise XOR in Python; the byte order is
    # immaterial as long as all three conversions use the same one.
    body = int.from_bytes(data[_BODY:], "little") ^ int.from_bytes(key_stream, "little")
    return b"".join(
        (data[:5], middle, data[15:HEADER_SIZE], nonce, data[HEADER_SIZE:_BODY], body.to_bytes(size, "little"))
    )


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
    key_stream = encryptor.update(bytes(len(data) - _BODY)) + encryptor.finalize()
    return _seal(data, _type4_middle(data[6:8], key_check(key)), nonce, key_stream)


class CoinEncryptor:
    """`encrypt_coin_file` for many files under one key, byte for byte the same, at a sixth of the cost.

    `encrypt_coin_file` inspects each file and builds a cipher per file (~17 µs: 1.7 s for the
    100,000 coins of a backup, past quality.md's P2). This does AES-256-CTR as the mode defines it
    (the key stream from a nonce is AES(nonce), AES(nonce + 1), …) but draws the fresh random
    nonces of 256 coins with one `os.urandom` call and makes their key streams with one call of an
    AES-ECB context made once; the file itself is written by `_seal`, like every type-4 file here.
    Not thread-safe: one encryptor, one thread.
    """

    __slots__ = ("_key", "_check", "_middle", "_ecb", "_nonces", "_stream", "_next")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"key must be {KEY_SIZE} bytes")
        self._key = key
        self._check = key_check(key)
        self._middle = _type4_middle(_ONE_COIN, self._check)
        self._ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self._nonces = b""
        self._stream = b""
        self._next = _BATCH

    def __repr__(self) -> str:  # never the key
        return "<CoinEncryptor>"

    @property
    def key_check(self) -> bytes:
        return self._check

    def encrypt(self, data: bytes) -> bytes:
        """What `encrypt_coin_file(data, key)` returns (CoinFileError for what it refuses)."""
        info = inspect_coin_file(data)
        if info.encrypted or info.is_multi or len(data) != PLAIN_SINGLE_SIZE:
            return encrypt_coin_file(data, self._key)  # its errors, or a coin with PANs
        return self.encrypt_plain_single(data)

    def encrypt_plain_single(self, data: bytes) -> bytes:
        """A plaintext single coin without PANs (439 bytes; the caller has checked) as a type-4 file."""
        i = self._next
        if i >= _BATCH:
            self._refill()
            i = 0
        self._next = i + 1
        at = i * NONCE_SIZE
        nonce = self._nonces[at : at + NONCE_SIZE]
        at = i * AN_BLOCK
        return _seal(data, self._middle, nonce, self._stream[at : at + AN_BLOCK])

    def _refill(self) -> None:
        nonces = _draw_nonces()
        copies = b"".join(nonces[i : i + NONCE_SIZE] * _CTR_BLOCKS for i in range(0, len(nonces), NONCE_SIZE))
        counters = int.from_bytes(copies, "big") + _BATCH_STEPS
        self._stream = self._ecb.update(counters.to_bytes(len(copies), "big"))
        self._nonces = nonces
        self._next = 0


def _draw_nonces() -> bytes:
    """`_BATCH` fresh random nonces, none so close to 2**128 that its counter would wrap (p < 2**-115)."""
    while True:
        nonces = os.urandom(NONCE_SIZE * _BATCH)
        if nonces.find(b"\xff" * 8) < 0 or all(
            int.from_bytes(nonces[i : i + NONCE_SIZE], "big") <= _NONCE_LIMIT for i in range(0, len(nonces), NONCE_SIZE)
        ):
            return nonces


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
