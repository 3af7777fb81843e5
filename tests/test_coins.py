"""Tests for app.wallet.coins: the format-9 coin file."""

import os
import struct

import pytest

from app.wallet.coins import (
    AN_BLOCK,
    ENCRYPTED_SINGLE_SIZE,
    HEADER_SIZE,
    NONCE_SIZE,
    PLAIN_SINGLE_SIZE,
    POWN_CODES,
    UNITS_PER_COIN,
    Coin,
    CoinFileError,
    CoinInfo,
    Encryption,
    build_coin_file,
    coin_file_name,
    denomination_value,
    format_value,
    inspect_coin_file,
    parse_coin_file,
    units_to_json,
    value_from_file_name,
)


def make_coin(denomination: int = 0, serial: int = 7998, *, pans: bool = False) -> Coin:
    return Coin(
        denomination=denomination,
        serial_number=serial,
        ans=tuple(os.urandom(16) for _ in range(25)),
        pans=tuple(os.urandom(16) for _ in range(25)) if pans else None,
    )


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


# --- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("denomination", range(-8, 7))
def test_denomination_value_is_power_of_ten_in_units(denomination):
    value = denomination_value(denomination)
    assert isinstance(value, int)
    assert value == 10 ** (denomination + 8)


def test_denomination_value_known_points():
    assert denomination_value(-8) == 1
    assert denomination_value(-2) == UNITS_PER_COIN // 100
    assert denomination_value(0) == UNITS_PER_COIN
    assert denomination_value(3) == 1_000 * UNITS_PER_COIN
    assert denomination_value(6) == 1_000_000 * UNITS_PER_COIN


@pytest.mark.parametrize("denomination", range(7, 12))
def test_key_coins_are_worth_zero(denomination):
    assert denomination_value(denomination) == 0
    assert make_coin(denomination).value == 0


@pytest.mark.parametrize("denomination", [-9, 12, 100, -128])
def test_bad_denomination_is_coin_file_error(denomination):
    with pytest.raises(CoinFileError, match="bad denomination"):
        denomination_value(denomination)


def test_multi_coin_total_value():
    coins = [make_coin(3, 1), make_coin(0, 2), make_coin(-2, 3), make_coin(8, 4)]
    info = inspect_coin_file(build_coin_file(coins))
    assert info.total_value == 1_000 * UNITS_PER_COIN + UNITS_PER_COIN + UNITS_PER_COIN // 100
    assert [c.value for c in info.coins] == [c.value for c in coins]


# --- round trips --------------------------------------------------------------------------------


def test_single_coin_round_trip():
    coin = make_coin(3, 7998)
    data = build_coin_file([coin])
    assert len(data) == PLAIN_SINGLE_SIZE
    info, coins = parse_coin_file(data)
    assert coins == (coin,)
    assert info.encryption == Encryption.NONE
    assert not info.encrypted and not info.is_multi
    assert info.coin_count == 1
    assert info.state_flag == 0
    assert info.key_check == bytes(7)
    assert info.pown == "u" * 25
    assert info.coins == (CoinInfo(3, 7998, 1_000 * UNITS_PER_COIN),)


def test_single_coin_with_pans_round_trip():
    coin = make_coin(-8, 2**32 - 1, pans=True)
    data = build_coin_file([coin])
    assert len(data) == PLAIN_SINGLE_SIZE + AN_BLOCK
    info, coins = parse_coin_file(data)
    assert info.state_flag == 1
    assert coins == (coin,)


def test_several_coins_round_trip():
    coins = [make_coin(d, 100 + i) for i, d in enumerate(range(-8, 12))]
    data = build_coin_file(coins)
    assert len(data) == HEADER_SIZE + len(coins) * (7 + AN_BLOCK)
    assert data[16:32] == b"Live Free or Die"
    info, parsed = parse_coin_file(data)
    assert parsed == tuple(coins)
    assert info.is_multi and info.coin_count == len(coins)
    assert info.pown is None


def test_several_coins_with_pans_round_trip():
    coins = [make_coin(1, 1, pans=True), make_coin(2, 2, pans=True)]
    data = build_coin_file(coins)
    assert len(data) == HEADER_SIZE + 2 * (7 + 2 * AN_BLOCK)
    info, parsed = parse_coin_file(data)
    assert info.state_flag == 1
    assert parsed == tuple(coins)


def test_header_fields_of_a_built_file():
    data = build_coin_file([make_coin()], task_id=b"abc", experimental=5)
    assert data[0] == 9 and data[1] == 1
    assert struct.unpack(">H", data[2:4]) == (6,)
    assert data[4] == 5 and data[5] == 0
    assert struct.unpack(">H", data[6:8]) == (1,)
    assert data[29:32] == b"abc"
    assert data[32:39] == b"\0\0\0" + struct.pack(">I", 7998)


def test_build_refuses_mixed_pans():
    with pytest.raises(ValueError, match="PANs"):
        build_coin_file([make_coin(pans=True), make_coin()])


def test_build_refuses_no_coins():
    with pytest.raises(ValueError):
        build_coin_file([])


def test_coin_refuses_wrong_an_count():
    with pytest.raises(ValueError):
        Coin(0, 1, ans=(bytes(16),) * 24)


# --- POWN ---------------------------------------------------------------------------------------


def test_pown_packs_as_nibbles_with_final_zero():
    pown = "pbndefu" + "p" * 18
    data = build_coin_file([make_coin()], pown=pown)
    packed = data[16:29]
    nibbles = [n for b in packed for n in (b >> 4, b & 0xF)]
    assert nibbles == [POWN_CODES[c] for c in pown] + [0]
    assert packed[:4] == bytes([0xAB, 0xCD, 0xEF, 0x0A])
    assert inspect_coin_file(data).pown == pown


def test_every_pown_code_round_trips():
    pown = "".join(POWN_CODES)[::-1] * 3 + "pppp"
    assert inspect_coin_file(build_coin_file([make_coin()], pown=pown)).pown == pown


@pytest.mark.parametrize("pown", ["u" * 24, "u" * 26, "x" * 25])
def test_bad_pown_is_refused(pown):
    with pytest.raises(ValueError):
        build_coin_file([make_coin()], pown=pown)


# --- broken files -------------------------------------------------------------------------------

GOOD = build_coin_file([make_coin()])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (GOOD[:31], "truncated"),
        (GOOD[:-1], "truncated"),
        (GOOD[:HEADER_SIZE], "truncated"),
        (GOOD + b"\0", "trailing bytes"),
        (patched(GOOD, 0, b"\x08"), "wrong format byte 8"),
        (patched(GOOD, 1, b"\x02"), "wrong cloud id 2"),
        (patched(GOOD, 2, b"\x00\x07"), "wrong coin id 7"),
        (patched(GOOD, 5, b"\x03"), "unknown encryption type 3"),
        (patched(GOOD, 6, b"\x00\x00"), "coin count 0"),
        (patched(GOOD, 6, b"\x00\x02"), "truncated"),
        (patched(GOOD, 15, b"\x02"), "unknown state flag 2"),
        (patched(GOOD, 15, b"\x01"), "truncated"),
        (patched(GOOD, 34, b"\x0c"), "bad denomination 12"),
        (patched(GOOD, 34, b"\xf7"), "bad denomination -9"),
        (patched(GOOD, 32, b"\x01"), "non-zero split"),
        (patched(GOOD, 33, b"\x01"), "non-zero split"),
    ],
)
def test_broken_file_is_coin_file_error(data, reason):
    with pytest.raises(CoinFileError) as exc_info:
        inspect_coin_file(data)
    assert exc_info.value.reason == reason
    with pytest.raises(CoinFileError):
        parse_coin_file(data)


def test_bad_denomination_in_second_record_is_caught():
    data = build_coin_file([make_coin(0, 1), make_coin(0, 2)])
    with pytest.raises(CoinFileError, match="bad denomination"):
        inspect_coin_file(patched(data, HEADER_SIZE + 407 + 2, b"\x40"))


def test_coin_file_error_is_a_value_error():
    assert issubclass(CoinFileError, ValueError)


# --- other tools' encrypted files ---------------------------------------------------------------


def test_inspect_reads_type_1_file_in_place():
    data = patched(GOOD, 5, b"\x01")
    data = patched(data, 8, b"\x11" * 7)
    info = inspect_coin_file(data)
    assert info.encryption == Encryption.AES128_CTR
    assert info.encrypted
    assert info.key_check == b"\x11" * 7
    assert info.coins == (CoinInfo(0, 7998, UNITS_PER_COIN),)
    with pytest.raises(CoinFileError, match="encrypted"):
        parse_coin_file(data)


def test_inspect_reads_type_1_multi_coin_file():
    data = patched(build_coin_file([make_coin(1, 5), make_coin(2, 6)]), 5, b"\x01")
    info = inspect_coin_file(data)
    assert info.encrypted and info.is_multi
    assert [(c.denomination, c.serial_number) for c in info.coins] == [(1, 5), (2, 6)]


def _type_4(plain: bytes) -> bytes:
    header = patched(plain[:HEADER_SIZE], 5, b"\x04")
    header = patched(header, 8, b"\x22" * 7)
    return header + os.urandom(NONCE_SIZE) + plain[32:39] + os.urandom(len(plain) - 39)


def test_inspect_reads_type_4_coin_header_after_nonce():
    data = _type_4(build_coin_file([make_coin(5, 123456)], pown="p" * 25))
    assert len(data) == ENCRYPTED_SINGLE_SIZE
    info = inspect_coin_file(data)
    assert info.encryption == Encryption.AES256_CTR
    assert info.key_check == b"\x22" * 7
    assert info.pown == "p" * 25
    assert info.coins == (CoinInfo(5, 123456, 100_000 * UNITS_PER_COIN),)
    with pytest.raises(CoinFileError, match="encrypted"):
        parse_coin_file(data)


def test_inspect_reads_type_4_with_pans():
    data = _type_4(build_coin_file([make_coin(0, 9, pans=True)]))
    assert inspect_coin_file(data).state_flag == 1
    with pytest.raises(CoinFileError, match="trailing bytes"):
        inspect_coin_file(data + b"\0")


def test_type_4_without_nonce_is_truncated():
    data = patched(GOOD, 5, b"\x04")
    with pytest.raises(CoinFileError, match="truncated"):
        inspect_coin_file(data)


def test_type_4_multi_coin_is_refused():
    data = patched(build_coin_file([make_coin(), make_coin()]), 5, b"\x04")
    with pytest.raises(CoinFileError, match="multi-coin"):
        inspect_coin_file(data + bytes(NONCE_SIZE))


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (UNITS_PER_COIN, "1"),
        (1_000 * UNITS_PER_COIN, "1,000"),
        (1_000_000 * UNITS_PER_COIN, "1,000,000"),
        (UNITS_PER_COIN // 100, "0.01"),
        (1, "0.00000001"),
        (1_234 * UNITS_PER_COIN + 50_000_000, "1,234.5"),
        (0, "0"),
    ],
)
def test_format_value(units, text):
    assert format_value(units) == text


@pytest.mark.parametrize(
    ("units", "value"),
    [
        (0, 0),
        (UNITS_PER_COIN, 1),
        (250 * UNITS_PER_COIN, 250),
        (UNITS_PER_COIN // 100, 0.01),
        (1, 0.00000001),
        (1_234 * UNITS_PER_COIN + 50_000_000, 1234.5),
        (-3 * UNITS_PER_COIN, -3),
        (-(UNITS_PER_COIN + 1), -1.00000001),
    ],
)
def test_units_to_json_is_an_int_when_whole_else_the_exact_decimal(units, value):
    result = units_to_json(units)
    assert result == value
    assert type(result) is type(value)


def test_single_coin_file_name():
    name = coin_file_name([make_coin(3, 7998)], tag="From Ron")
    assert name == "1,000 CloudCoin #7998 'From Ron'.bin"
    assert coin_file_name([CoinInfo(-2, 5, 10**6)]) == "0.01 CloudCoin #5 ''.bin"


def test_several_coins_file_name():
    coins = [make_coin(3, 1), make_coin(3, 2), make_coin(-1, 3)]
    assert coin_file_name(coins, tag="Gift") == "2,000.1 CloudCoin #3 'Gift'.bin"


def test_file_name_refuses_path_in_tag():
    with pytest.raises(ValueError):
        coin_file_name([make_coin()], tag="../x")


@pytest.mark.parametrize(
    ("name", "units"),
    [
        ("1,000 CloudCoin #7998 'From Ron'.bin", 1_000 * UNITS_PER_COIN),
        ("1 CloudCoin #1 ''.bin", UNITS_PER_COIN),
        ("0.01 CloudCoin #5 'x'.bin", UNITS_PER_COIN // 100),
        ("0.00000001 CloudCoin #5.bin", 1),
        ("1,000,000 CloudCoin #2 'y'.bin", 1_000_000 * UNITS_PER_COIN),
        ("2500 CloudCoin #3.bin", 2_500 * UNITS_PER_COIN),
        ("random.bin", None),
        ("CloudCoin 1.bin", None),
        ("1,00 CloudCoin #1.bin", None),
        ("1CloudCoin.bin", None),
        ("", None),
    ],
)
def test_value_from_file_name(name, units):
    assert value_from_file_name(name) == units


def test_built_names_parse_back():
    for denomination in range(-8, 7):
        coin = make_coin(denomination, 42)
        assert value_from_file_name(coin_file_name([coin], tag="t")) == coin.value
