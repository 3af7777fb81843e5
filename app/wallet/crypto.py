"""Coin-file encryption (type 4): key derivation, key check, encrypt (one file or many), decrypt."""

import hashlib
import os
from itertools import repeat
from operator import itemgetter

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
#: The largest last byte of a `CoinEncryptor` nonce: its 25 counter blocks then differ in that byte
#: alone (no carry), so they are built by joins, without arithmetic on 128-bit numbers.
_LAST_BYTE_MAX = 255 - (_CTR_BLOCKS - 1)
#: For a nonce's last byte b: what joined with the nonce's first 15 bytes makes its 25 counter blocks.
_COUNTER_TAILS = [[b""] + [bytes((b + i,)) for i in range(_CTR_BLOCKS)] for b in range(_LAST_BYTE_MAX + 1)]


# `CoinEncryptor.encrypt_plain_singles`: the parts of a plaintext single coin that `_seal` puts
# together, as C-level getters, and where each coin's nonce, nonce prefix and body lie in a batch.
_HEAD_OF = itemgetter(slice(0, 5))
_HEADER_REST_OF = itemgetter(slice(15, HEADER_SIZE))
_COIN_HEADER_OF = itemgetter(slice(HEADER_SIZE, _BODY))
_BODY_OF = itemgetter(slice(_BODY, None))
_NONCES = [slice(at, at + NONCE_SIZE) for at in range(0, _BATCH * NONCE_SIZE, NONCE_SIZE)]
_NONCE_PREFIXES = [slice(at, at + NONCE_SIZE - 1) for at in range(0, _BATCH * NONCE_SIZE, NONCE_SIZE)]
_BODIES = [slice(at, at + AN_BLOCK) for at in range(0, _BATCH * AN_BLOCK, AN_BLOCK)]


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

    def encrypt_plain_singles(self, datas: list[bytes]) -> list[bytes]:
        """`encrypt_plain_single` of each of up to 256 plaintext single coins at once: the walk's batch path.

        Fresh nonces and one key stream for the batch; the ANs of all the coins XOR-ed as one
        integer; counter blocks and files put together by C-level maps (no Python step per coin).
        """
        count = len(datas)
        if count > _BATCH:
            raise ValueError(f"at most {_BATCH} coins at once")
        if not count:
            return []
        if set(map(len, datas)) != {PLAIN_SINGLE_SIZE}:
            raise ValueError("only plaintext single coins without PANs")
        bodies = b"".join(map(_BODY_OF, datas))
        nonces = _draw_nonces(count)
        pick = nonces.__getitem__
        counters = b"".join(
            map(
                bytes.join,
                map(pick, _NONCE_PREFIXES[:count]),
                map(_COUNTER_TAILS.__getitem__, nonces[NONCE_SIZE - 1 :: NONCE_SIZE]),
            )
        )
        stream = self._ecb.update(counters)
        size = len(bodies)
        sealed = (int.from_bytes(bodies, "little") ^ int.from_bytes(stream, "little")).to_bytes(size, "little")
        return list(
            map(
                b"".join,
                zip(
                    map(_HEAD_OF, datas),
                    repeat(self._middle),
                    map(_HEADER_REST_OF, datas),
                    map(pick, _NONCES[:count]),
                    map(_COIN_HEADER_OF, datas),
                    map(sealed.__getitem__, _BODIES[:count]),
                ),
            )
        )

    def _refill(self) -> None:
        nonces = _draw_nonces()
        tails, size = _COUNTER_TAILS, NONCE_SIZE
        # Nonce n's blocks n, n + 1, …, n + 24 are its first 15 bytes with last bytes b, b + 1, ….
        counters = b"".join(
            [nonces[at : at + size - 1].join(tails[nonces[at + size - 1]]) for at in range(0, len(nonces), size)]
        )
        self._stream = self._ecb.update(counters)
        self._nonces = nonces
        self._next = 0


def _draw_nonces(count: int = _BATCH) -> bytes:
    """`count` fresh random nonces: 16 random bytes each, the last one redrawn while above
    `_LAST_BYTE_MAX` (so that no counter block carries into the byte before it)."""
    nonces = bytearray(os.urandom(NONCE_SIZE * count))
    last = nonces[NONCE_SIZE - 1 :: NONCE_SIZE]
    if max(last) > _LAST_BYTE_MAX:
        spare: list[int] = []
        for i, value in enumerate(last):
            if value > _LAST_BYTE_MAX:
                while not spare:
                    spare = [b for b in os.urandom(64) if b <= _LAST_BYTE_MAX]
                last[i] = spare.pop()
        nonces[NONCE_SIZE - 1 :: NONCE_SIZE] = last
    return bytes(nonces)


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
