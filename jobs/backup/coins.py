"""How a `.bin` file goes into a backup: told apart, valued, and encrypted under the login key or kept.

The seed's rule: with a login key set, every plaintext single coin in `COIN_FOLDERS` is encrypted on
its way into the archive (type 4, `app.wallet.crypto.CoinEncryptor`); everything else goes in byte for
byte. The walk tells the common case, a 439-byte plaintext single coin, with `plain_single_units`
alone; every other `.bin` goes through `admit_other_coin_file`, which reads its headers.
"""

from __future__ import annotations

import logging
from operator import itemgetter

from app.wallet import coins
from app.wallet.crypto import CoinEncryptor
from jobs.backup.manifest import FolderStats

log = logging.getLogger(__name__)

#: the seed's folders whose plaintext coins are encrypted when a key is set
COIN_FOLDERS = frozenset({"Bank", "Fracked"})
# How a `.bin` from Bank or Fracked went into the archive (the response's counters): as plaintext,
# encrypted on its way in, or already encrypted.
PLAINTEXT, REENCRYPTED, ENCRYPTED = 1, 2, 3

# Header bytes 0-3 of every coin file: format 9, cloud 1, coin id 6.
_MAGIC = bytes((coins.FORMAT, coins.CLOUD_ID)) + coins.COIN_ID.to_bytes(2, "big")
# Bytes 5-7 of a plaintext single coin: encryption 0, coin count 1.
_PLAIN_ONE = b"\x00\x00\x01"
# Units of one coin by the denomination byte (unsigned, as it sits in the file); absent: invalid.
_UNITS_BY_BYTE = {d & 0xFF: coins.denomination_value(d) for d in range(-8, 12)}


def plain_single_units(data: bytes) -> int | None:
    """The value in units of a 439-byte plaintext single coin without PANs, else None.

    The common case, told without building objects (`coins.inspect_coin_file` costs ~5 µs a file).
    """
    if (
        len(data) == coins.PLAIN_SINGLE_SIZE
        and data[:4] == _MAGIC
        and data[5:8] == _PLAIN_ONE
        and data[15] == 0
        and data[32] == 0
        and data[33] == 0
    ):
        return _UNITS_BY_BYTE.get(data[34])
    return None


# Fields of a batch's coins taken with C-level getters (`plain_singles_units`).
_MAGIC_OF = itemgetter(slice(0, 4))
_KIND_OF = itemgetter(slice(5, 8))
_ZEROS_OF = itemgetter(15, 32, 33)
_DENOMINATION_OF = itemgetter(34)


def plain_singles_units(datas: list[bytes]) -> int | None:
    """`plain_single_units` of a whole batch: the units of all when every file is a plaintext single
    coin without PANs, else None. No Python step per file (a `map` per field), for the walk's batches."""
    if (
        set(map(len, datas)) != {coins.PLAIN_SINGLE_SIZE}
        or set(map(_MAGIC_OF, datas)) != {_MAGIC}
        or set(map(_KIND_OF, datas)) != {_PLAIN_ONE}
        or set(map(_ZEROS_OF, datas)) != {(0, 0, 0)}
    ):
        return None
    denominations = list(map(_DENOMINATION_OF, datas))
    if not _UNITS_BY_BYTE.keys() >= set(denominations):
        return None
    return sum(map(_UNITS_BY_BYTE.__getitem__, denominations))


def admit_other_coin_file(
    arc: str,
    data: bytes,
    stats: FolderStats,
    *,
    coin_folder: bool,
    encryptor: CoinEncryptor | None,
    job_id: str,
) -> tuple[bytes, int, bool]:
    """Every `.bin` but a plaintext single coin: what goes in the archive, how it counts, and whether
    it is a multi-coin file to warn about (counted in files_added_multi_warned).

    Encrypted files (any type, any key) go in verbatim; a multi-coin file goes in verbatim, warned
    about when in a coin folder; a plaintext single coin with PANs is encrypted when a key is set; a
    file that is not a readable coin file goes in verbatim, as plaintext. The folder's coins, value,
    encrypted and unreadable files are added to `stats`.
    """
    try:
        info = coins.inspect_coin_file(data)
    except coins.CoinFileError as exc:
        stats.unreadable += 1
        log.warning("backup job %s: %s is not a readable coin file (%s)", job_id, arc, exc.reason)
        encrypted = len(data) >= coins.HEADER_SIZE and data[:4] == _MAGIC and data[5] != 0
        if encrypted:
            stats.encrypted += 1
        return data, (ENCRYPTED if encrypted else PLAINTEXT), False
    stats.coins += info.coin_count
    stats.units += info.total_value
    warn = coin_folder and info.is_multi
    if warn:
        log.warning("backup job %s: multi-coin file inside a wallet folder: %s", job_id, arc)
    if info.encrypted:
        stats.encrypted += 1
        return data, ENCRYPTED, warn
    if not coin_folder or info.is_multi or encryptor is None:
        return data, PLAINTEXT, warn
    stats.encrypted += 1
    return encryptor.encrypt(data), REENCRYPTED, False
