"""The format-9 coin file: parse its headers, build plaintext files, value coins and name files."""

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

UNITS_PER_COIN = 10**8  #: values are ints in units of 10^-8 CloudCoin, never floats
HEADER_SIZE = 32
COIN_HEADER_SIZE = 7
AN_BLOCK = 400  #: 25 RAIDA × 16-byte authenticity numbers
NONCE_SIZE = 16
PLAIN_SINGLE_SIZE = HEADER_SIZE + COIN_HEADER_SIZE + AN_BLOCK  # 439
ENCRYPTED_SINGLE_SIZE = HEADER_SIZE + NONCE_SIZE + COIN_HEADER_SIZE + AN_BLOCK  # 455

FORMAT = 9
CLOUD_ID = 1
COIN_ID = 6
RAIDA_COUNT = 25
AN_SIZE = 16
MOTTO = b"Live Free or Die"

POWN_CODES = {"u": 0x0, "p": 0xA, "b": 0xB, "n": 0xC, "d": 0xD, "e": 0xE, "f": 0xF}


class Encryption(IntEnum):
    NONE = 0  #: plaintext
    AES128_CTR = 1  #: written by other tools; header readable, never decrypted here
    AES256_CTR = 4  #: this project's scheme (storage.md, "Coin-file encryption")


class CoinFileError(ValueError):
    """A coin file that cannot be read; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# format, cloud id, coin id, experimental, encryption, count, key check, state flag, bytes 16-31
_FILE_HEADER = struct.Struct(">BBHBBH7sB16s")
# split, shard, denomination, serial number
_COIN_HEADER = struct.Struct(">BBbI")
_KNOWN_ENCRYPTIONS = frozenset(int(e) for e in Encryption)
_RECORD_SIZES = {0: COIN_HEADER_SIZE + AN_BLOCK, 1: COIN_HEADER_SIZE + 2 * AN_BLOCK}
_POWN_SIZE = 13
# One entry per byte value -> its two POWN letters. A nibble of no known code reads as "u":
# the status is unknown, and a stray code must not make an otherwise sound coin unreadable.
_NIBBLE_LETTERS = {code: letter for letter, code in POWN_CODES.items()}
_POWN_BYTE_TABLE = tuple(_NIBBLE_LETTERS.get(b >> 4, "u") + _NIBBLE_LETTERS.get(b & 0xF, "u") for b in range(256))
_NAME_VALUE = re.compile(r"\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,8}))?\s+CloudCoin\b")


def denomination_value(denomination: int) -> int:
    """Value in units of 10^-8 of one coin of ``denomination``; key coins (7–11) are worth 0."""
    if -8 <= denomination <= 6:
        return 10 ** (denomination + 8)
    if 7 <= denomination <= 11:
        return 0
    raise CoinFileError(f"bad denomination {denomination}")


@dataclass(frozen=True, slots=True)
class CoinInfo:
    """A coin as its header describes it."""

    denomination: int
    serial_number: int
    value: int


@dataclass(frozen=True, slots=True)
class Coin:
    """A whole coin: header fields, 25 ANs and, after a POWN round, 25 PANs."""

    denomination: int
    serial_number: int
    ans: tuple[bytes, ...]
    pans: tuple[bytes, ...] | None = None

    def __post_init__(self) -> None:
        denomination_value(self.denomination)
        if not 0 <= self.serial_number < 2**32:
            raise ValueError(f"serial number out of range: {self.serial_number}")
        _check_numbers(self.ans, "ans")
        if self.pans is not None:
            _check_numbers(self.pans, "pans")

    @property
    def value(self) -> int:
        return denomination_value(self.denomination)

    @property
    def info(self) -> CoinInfo:
        return CoinInfo(self.denomination, self.serial_number, self.value)


@dataclass(frozen=True, slots=True)
class CoinFileInfo:
    """What a coin file's headers say; readable for encryption types 0, 1 and 4."""

    encryption: int
    key_check: bytes
    coin_count: int
    state_flag: int
    pown: str | None
    coins: tuple[CoinInfo, ...]

    @property
    def encrypted(self) -> bool:
        return self.encryption != Encryption.NONE

    @property
    def is_multi(self) -> bool:
        return self.coin_count > 1

    @property
    def total_value(self) -> int:
        return sum(c.value for c in self.coins)


def _check_numbers(numbers: tuple[bytes, ...], what: str) -> None:
    if len(numbers) != RAIDA_COUNT or any(not isinstance(n, bytes) or len(n) != AN_SIZE for n in numbers):
        raise ValueError(f"{what} must be {RAIDA_COUNT} values of {AN_SIZE} bytes")


def _read_coin_header(data: bytes, offset: int) -> CoinInfo:
    split, shard, denomination, serial = _COIN_HEADER.unpack_from(data, offset)
    if split or shard:
        raise CoinFileError("non-zero split")
    return CoinInfo(denomination, serial, denomination_value(denomination))


def _unpack_pown(packed: bytes) -> str:
    return "".join([_POWN_BYTE_TABLE[b] for b in packed])[:RAIDA_COUNT]


def _pack_pown(pown: str) -> bytes:
    if len(pown) != RAIDA_COUNT or any(ch not in POWN_CODES for ch in pown):
        raise ValueError(f"pown must be {RAIDA_COUNT} of {''.join(POWN_CODES)}: {pown!r}")
    nibbles = [POWN_CODES[ch] for ch in pown] + [0]
    return bytes((hi << 4) | lo for hi, lo in zip(nibbles[::2], nibbles[1::2]))


def inspect_coin_file(data: bytes) -> CoinFileInfo:
    """Read the file and coin headers (never the ANs) of a type 0, 1 or 4 file."""
    size = len(data)
    if size == 0:
        raise CoinFileError("empty")
    if size < HEADER_SIZE:
        raise CoinFileError("truncated")
    fmt, cloud, coin_id, _exp, enc, count, check, state, tail = _FILE_HEADER.unpack_from(data)
    if fmt != FORMAT:
        raise CoinFileError(f"wrong format byte {fmt}")
    if cloud != CLOUD_ID:
        raise CoinFileError(f"wrong cloud id {cloud}")
    if coin_id != COIN_ID:
        raise CoinFileError(f"wrong coin id {coin_id}")
    if enc not in _KNOWN_ENCRYPTIONS:
        raise CoinFileError(f"unknown encryption type {enc}")
    if count == 0:
        raise CoinFileError("coin count 0")
    record = _RECORD_SIZES.get(state)
    if record is None:
        raise CoinFileError(f"unknown state flag {state}")
    start = HEADER_SIZE
    if enc == Encryption.AES256_CTR:
        if count != 1:
            raise CoinFileError("encrypted multi-coin file")
        start += NONCE_SIZE
    expected = start + count * record
    if size < expected:
        raise CoinFileError("truncated")
    if size > expected:
        raise CoinFileError("trailing bytes")
    coins = tuple(_read_coin_header(data, start + i * record) for i in range(count))
    return CoinFileInfo(
        encryption=Encryption(enc),
        key_check=check,
        coin_count=count,
        state_flag=state,
        pown=_unpack_pown(tail[:_POWN_SIZE]) if count == 1 else None,
        coins=coins,
    )


def parse_coin_file(data: bytes) -> tuple[CoinFileInfo, tuple[Coin, ...]]:
    """Read a plaintext (type 0) file whole: headers, ANs and PANs."""
    info = inspect_coin_file(data)
    if info.encrypted:
        raise CoinFileError("encrypted")
    record = _RECORD_SIZES[info.state_flag]
    coins = []
    for i, coin in enumerate(info.coins):
        an_start = HEADER_SIZE + i * record + COIN_HEADER_SIZE
        ans = _split_numbers(data, an_start)
        pans = _split_numbers(data, an_start + AN_BLOCK) if info.state_flag else None
        coins.append(Coin(coin.denomination, coin.serial_number, ans, pans))
    return info, tuple(coins)


def _split_numbers(data: bytes, start: int) -> tuple[bytes, ...]:
    return tuple(data[start + i * AN_SIZE : start + (i + 1) * AN_SIZE] for i in range(RAIDA_COUNT))


def build_coin_file(
    coins: Sequence[Coin],
    *,
    pown: str = "u" * RAIDA_COUNT,
    task_id: bytes = b"\0\0\0",
    experimental: int = 0,
) -> bytes:
    """A plaintext (type 0) file holding ``coins``; ``pown`` and ``task_id`` only for one coin."""
    if not coins:
        raise ValueError("a coin file holds at least one coin")
    if len(coins) > 0xFFFF:
        raise ValueError(f"too many coins for one file: {len(coins)}")
    with_pans = coins[0].pans is not None
    if any((c.pans is not None) != with_pans for c in coins):
        raise ValueError("either every coin carries PANs or none does")
    if len(task_id) != 3:
        raise ValueError("task id must be 3 bytes")
    if not 0 <= experimental <= 0xFF:
        raise ValueError(f"experimental must fit one byte: {experimental}")
    tail = _pack_pown(pown) + bytes(task_id) if len(coins) == 1 else MOTTO
    parts = [
        _FILE_HEADER.pack(
            FORMAT,
            CLOUD_ID,
            COIN_ID,
            experimental,
            Encryption.NONE,
            len(coins),
            bytes(7),
            int(with_pans),
            tail,
        )
    ]
    for coin in coins:
        parts.append(_COIN_HEADER.pack(0, 0, coin.denomination, coin.serial_number))
        parts.extend(coin.ans)
        if coin.pans is not None:
            parts.extend(coin.pans)
    return b"".join(parts)


def units_to_json(units: int) -> int | float:
    """A value in CloudCoin for JSON: an integer when whole, else the exact decimal as a number."""
    whole, rest = divmod(abs(units), UNITS_PER_COIN)
    value: int | float = whole if rest == 0 else float(f"{whole}.{rest:08d}")
    return -value if units < 0 else value


def format_value(units: int) -> str:
    """``units`` as CloudCoin with thousands commas and no trailing zeros: 1,000 or 0.01."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), UNITS_PER_COIN)
    text = f"{sign}{whole:,}"
    if fraction:
        text += "." + f"{fraction:08d}".rstrip("0")
    return text


def coin_file_name(coins: Sequence[CoinInfo | Coin], *, tag: str = "") -> str:
    """The reference file name: value and serial for one coin, total and count for several."""
    if not coins:
        raise ValueError("no coins to name")
    if any(ch in tag for ch in "/\\\0"):
        raise ValueError(f"tag may not hold a path separator: {tag!r}")
    if len(coins) == 1:
        value, number = coins[0].value, coins[0].serial_number
    else:
        value, number = sum(c.value for c in coins), len(coins)
    return f"{format_value(value)} CloudCoin #{number} '{tag}'.bin"


def value_from_file_name(name: str) -> int | None:
    """The leading value of a reference file name in units, or None when the name is not one."""
    match = _NAME_VALUE.match(name)
    if match is None:
        return None
    whole, fraction = match.groups()
    units = int(whole.replace(",", "")) * UNITS_PER_COIN
    if fraction:
        units += int(fraction.ljust(8, "0"))
    return units
