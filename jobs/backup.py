"""The backup job: walk a wallet, encrypt plaintext coins under the login key, write a verified ZIP.

One run, all of it blocking work on the app's thread pool (`write_backup`):

1. the destination is checked again (a symlink may have been swapped since the request) and its
   last component created, mode 0700;
2. a cheap `scandir` pass counts the files (d_type only, no stat: progress needs a total, and a
   stat per coin would cost a fifth of the whole backup; so `bytes_total` is known only at the end);
3. the wallet is walked without following links and written with the lean `ZipWriter` to
   ``.cloudcoin-backup-<job id>.tmp`` in the destination: `.bin` stored, other files deflated,
   every folder (also empty ones) as its own entry, everything under ``<wallet name>/``;
4. ``backup-manifest.json`` goes in last, the archive is closed (with a comment naming wallet and
   date), fsynced and read back with `verify_zip` (every CRC);
5. the final name ``CloudCoin-Wallet-Backup_<wallet>_<YYYY-MM-DD>[_N].zip`` is claimed with
   `os.link`, which fails rather than overwrite, so two backups on one day never race; the
   temporary name is removed and the directory fsynced.

A cancel (checked between files) or any failure removes the temporary file; the central directory and
the manifest's entry list are spooled to nameless temporary files in the destination, so nothing
grows in memory and nothing else is ever left behind. After a crash `remove_temporary_files` (the
runner's cleanup hook) deletes the half-written archive. Nothing per entry is kept alive in Python:
quality.md measured garbage-collector passes over per-entry objects stalling the event loop.

The manifest (``backup-manifest.json`` at the archive root, the last entry; deflated up to 4 MiB,
stored above, format_version 1)::

    {"format": "cloudcoin-wallet-backup", "format_version": 1,
     "wallet_name": "Default", "wallet_path": "/…/Wallets/Default", "root": "Default/",
     "created": "2026-11-23T10:04:11.204Z", "server_version": "0.1.0", "job_id": "…",
     "reencrypted": true,            # plaintext coins were encrypted on their way in
     "key_check": "0a1b2c3d4e5f60",  # hex key check of the login key, null without one
     "entries": [                    # every entry but the manifest itself, in archive order
        {"path": "Default/", "type": "dir"},
        {"path": "Default/Bank/1 CloudCoin #7 'x'.bin", "type": "file", "size": 455, "sha256": "…"},
        …],
     "entry_count": 12,
     "skipped": [{"path": "Default/Bank/link.bin", "reason": "symbolic link"}],  # first 1000
     "folders": {"Bank": {"files", "bytes", "coin_files", "coins", "value", "value_units",
                          "encrypted_files", "unreadable_coin_files"}, …, ".": the root's files},
     "totals": {"files", "dirs", "bytes", "coins", "value", "value_units"},
     "counters": {"files_added", "files_skipped", "files_reencrypted_for_backup",
                  "files_added_plaintext", "files_added_multi_warned"}}

``size`` and ``sha256`` describe the bytes in the archive (after encryption); ``value`` is in
CloudCoin like the balance endpoint, ``value_units`` the exact integer in units of 10^-8.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _json_str
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app import __version__, coins, crypto
from app.config import Config
from app.errors import ApiError, FlagError, StatusError, WalletNotFound
from app.keyring import KeyRing
from app.paths import Unresolvable, canonical, is_inside
from app.storage import atomic_write_bytes, fsync_dir
from app.wallets import WalletService, is_wallet_folder
from jobs.models import Job, JobCancelled, JobFailed, JobKind
from jobs.runner import JobContext, JobRunner
from jobs.zipstream import ZipWriter, verify_zip

log = logging.getLogger(__name__)

MANIFEST_NAME = "backup-manifest.json"
MANIFEST_FORMAT = "cloudcoin-wallet-backup"
MANIFEST_VERSION = 1
TEMP_PREFIX = ".cloudcoin-backup-"
TEMP_SUFFIX = ".tmp"
#: the seed's folders whose plaintext coins are encrypted when a key is set
COIN_FOLDERS = frozenset({"Bank", "Fracked"})
#: BackupPlaces.txt keeps this many destinations (storage.md)
MAX_BACKUP_PLACES = 10
#: `.bin` files up to this size are read whole (the largest valid coin file, 65,535 coins with
#: PANs, is 52.9 MB); other files above 1 MiB are streamed by the ZipWriter.
_WHOLE_BIN_LIMIT = 64 << 20
_WHOLE_LIMIT = 1 << 20
#: skipped entries named in the manifest; the count is always exact
_MAX_SKIPPED_LISTED = 1000
#: files between two progress reports (the runner throttles publishing; this bounds the calls)
_REPORT_EVERY = 256
#: manifests bigger than this are stored, not deflated: deflating the 14 MB manifest of a
#: 100,000-coin wallet takes ~0.25 s, a sixth of the whole backup, to save ~9 MB
_DEFLATE_MANIFEST_UP_TO = 4 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# How a `.bin` from Bank or Fracked went into the archive (the response's counters).
_PLAINTEXT, _REENCRYPTED, _ENCRYPTED = 1, 2, 3

# -- the seed's error bodies ------------------------------------------------------------------

MISSING_DESTINATION = StatusError(400, "Missing required parameter: destination", error_code=1)
NOT_ABSOLUTE = FlagError(400, "Destination must be an absolute path")
UNRESOLVABLE = FlagError(400, "Destination path could not be resolved")
INSIDE_CLIENT_DATA = FlagError(
    400,
    "Backup destination cannot be inside Client_Data — choose a folder outside the program's data directory",
)
INSIDE_WALLET = FlagError(400, "Backup destination cannot be inside the wallet being backed up")
NO_PARENT = FlagError(400, "Destination directory does not exist")
CANNOT_CREATE = StatusError(500, "Cannot create backup directory", error_code=101)
ZIP_FAILED = StatusError(500, "Failed to create backup zip file", error_code=101)
SUCCESS_MESSAGE = "Wallet backup created successfully"


def wallet_not_found(raw: str) -> FlagError:
    return FlagError(404, f"Wallet not found: {raw}")


def _failed(error: ApiError) -> JobFailed:
    return JobFailed(error.status, error.body)


# -- checks shared by the endpoint and the job -----------------------------------------------


def resolve_destination(raw: str, *, data_dir: Path) -> Path:
    """The canonical destination, in api.md's order of checks; FlagError for each refusal."""
    if not os.path.isabs(raw):
        raise NOT_ABSOLUTE
    try:
        destination = canonical(raw)
    except Unresolvable:
        raise UNRESOLVABLE from None
    if is_inside(destination, data_dir):
        raise INSIDE_CLIENT_DATA
    return destination


def check_destination_place(destination: Path, wallet: Path) -> None:
    """The checks that need the wallet or the disk (blocking): not inside the wallet, parent exists."""
    if is_inside(destination, wallet):
        # The archive would end up inside what it archives (spec silent; refused like Client_Data).
        raise INSIDE_WALLET
    if not os.path.isdir(destination) and not os.path.isdir(destination.parent):
        raise NO_PARENT


def temp_name(job_id: str) -> str:
    """The archive's name while it is written; the job id lets the restart cleanup find it."""
    return f"{TEMP_PREFIX}{job_id}{TEMP_SUFFIX}"


def archive_name(wallet_name: str, date: str, n: int) -> str:
    suffix = "" if n == 1 else f"_{n}"
    return f"CloudCoin-Wallet-Backup_{wallet_name}_{date}{suffix}.zip"


# -- registering with the runner -------------------------------------------------------------


def register(
    runner: JobRunner, *, config: Config, wallets: WalletService, keyring: KeyRing, **_: Any
) -> None:
    """Register the backup job and its restart cleanup with the runner."""
    job = BackupJob(config=config, wallets=wallets, keyring=keyring)
    runner.register(JobKind.BACKUP, job.run, cleanup=remove_temporary_files)


def remove_temporary_files(job: Job) -> None:
    """The restart cleanup: delete the half-written archive a crash left in the job's destination."""
    destination = job.params.get("destination")
    if not isinstance(destination, str) or not os.path.isabs(destination):
        return
    path = os.path.join(destination, temp_name(job.id))
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("backup job %s: cannot remove %s: %s", job.id, path, exc)
        return
    log.info("backup job %s: removed the unfinished archive %s", job.id, path)
    try:
        fsync_dir(Path(destination))
    except OSError:
        pass


@dataclass(frozen=True, slots=True)
class BackupPlan:
    """Everything `write_backup` needs, fixed when the job starts running."""

    job_id: str
    wallet_path: Path
    destination: Path
    data_dir: Path
    key: bytes | None
    date: str  # YYYY-MM-DD, local time


class BackupJob:
    """The job function: re-check the wallet, run `write_backup` on the pool, remember the place."""

    def __init__(self, *, config: Config, wallets: WalletService, keyring: KeyRing) -> None:
        self._config = config
        self._wallets = wallets
        self._keyring = keyring
        self._places_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<BackupJob data_dir={self._config.data_dir}>"

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        started = time.monotonic()
        # Read at run time: a rename queued before this backup may have moved the wallet.
        wallet_path = ctx.job.wallet_path
        try:
            wallet = await self._wallets.resolve(wallet_path)
        except WalletNotFound:
            raise _failed(wallet_not_found(wallet_path)) from None
        plan = BackupPlan(
            job_id=ctx.job.id,
            wallet_path=wallet.path,
            destination=Path(str(ctx.job.params["destination"])),
            data_dir=canonical(self._config.data_dir),
            key=self._keyring.key,  # the key set now; a logout mid-backup does not change this run
            date=time.strftime("%Y-%m-%d"),
        )
        result = await ctx.run_blocking(write_backup, plan, cancel=ctx.cancel_event, report=ctx.report)
        await ctx.run_blocking(self._remember_place, result["destination"])
        result["duration_ms"] = round((time.monotonic() - started) * 1000)
        return result

    def _remember_place(self, destination: str) -> None:
        try:
            with self._places_lock:
                remember_backup_place(self._config.backup_places_path, destination)
        except OSError as exc:
            # The archive is complete and verified; a full Client_Data must not turn it into a failure.
            log.warning("cannot update %s: %s", self._config.backup_places_path, exc)


def remember_backup_place(path: Path, destination: str) -> None:
    """Put `destination` first in BackupPlaces.txt: newest first, unique, at most ten, atomic."""
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except FileNotFoundError:
        lines = []
    places = [destination]
    for line in lines:
        line = line.strip()
        if line and line not in places:
            places.append(line)
    text = "".join(f"{place}\n" for place in places[:MAX_BACKUP_PLACES])
    atomic_write_bytes(path, text.encode("utf-8", errors="surrogateescape"))


# -- the archive (blocking) ------------------------------------------------------------------

Report = Callable[..., None]


def write_backup(plan: BackupPlan, *, cancel: threading.Event, report: Report) -> dict[str, Any]:
    """Write, verify and name the archive of `plan.wallet_path`; the body of a successful backup."""
    wallet = plan.wallet_path
    if not is_wallet_folder(wallet):
        raise _failed(wallet_not_found(str(wallet)))
    try:
        destination = resolve_destination(str(plan.destination), data_dir=plan.data_dir)
        check_destination_place(destination, wallet)
    except ApiError as error:
        raise _failed(error) from None
    _make_destination(destination)
    if cancel.is_set():
        raise JobCancelled()
    total = count_entries(wallet, cancel)
    report(done=0, total=total, message=f"Archiving {wallet.name} (0 of {total:,} files)")
    tmp = destination / temp_name(plan.job_id)
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.error("backup job %s: cannot create %s: %s", plan.job_id, tmp, exc)
        raise _failed(ZIP_FAILED) from None
    final: Path | None = None
    try:
        os.fchmod(fd, 0o600)
        out = HashingFile(fd)
        archiver = _Archiver(plan, destination, out, cancel, report, total)
        archiver.archive()
        os.fsync(fd)
        report(message=f"Verifying {archiver.entries:,} entries")
        archiver.verify(tmp)
        zip_sha256 = out.hexdigest()
        zip_size = os.fstat(fd).st_size
        if cancel.is_set():
            raise JobCancelled()
        final = _claim_final_name(tmp, destination, wallet.name, plan.date)
    except (JobCancelled, JobFailed):
        raise
    except (OSError, ValueError) as exc:
        log.error("backup job %s of %s failed: %s", plan.job_id, wallet, exc, exc_info=True)
        raise _failed(ZIP_FAILED) from None
    finally:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("backup job %s: cannot remove %s: %s", plan.job_id, tmp, exc)
    try:
        fsync_dir(destination)
    except OSError as exc:
        log.warning("backup job %s: cannot fsync %s: %s", plan.job_id, destination, exc)
    log.info("backup job %s: %s -> %s (%d entries)", plan.job_id, wallet, final, archiver.entries)
    counters = archiver.counters()
    return {
        "command": "wallet-backup",
        "success": True,
        "wallet_path": str(wallet),
        "wallet_name": wallet.name,
        "zip_path": str(final),
        "destination": str(destination),
        **counters,
        "message": SUCCESS_MESSAGE,
        "job_id": plan.job_id,
        "filename": final.name,
        "zip_size": zip_size,
        "zip_sha256": zip_sha256,
        "entries": archiver.entries,
    }


def _make_destination(destination: Path) -> None:
    """Create the last component (0700) when missing; its parent must exist (api.md)."""
    try:
        os.mkdir(destination, 0o700)
    except FileExistsError:
        if not os.path.isdir(destination):
            raise _failed(CANNOT_CREATE) from None
        return
    except FileNotFoundError:
        raise _failed(NO_PARENT) from None
    except OSError as exc:
        log.error("cannot create backup directory %s: %s", destination, exc)
        raise _failed(CANNOT_CREATE) from None
    try:
        os.chmod(destination, 0o700)  # exactly 0700, whatever the umask
        fsync_dir(destination.parent)
    except OSError as exc:
        log.warning("backup directory %s: %s", destination, exc)


def count_entries(root: Path, cancel: threading.Event | None = None) -> int:
    """Every non-folder entry below `root`, links included, without a stat (d_type only)."""
    total = 0
    stack = [str(root)]
    while stack:
        if cancel is not None and cancel.is_set():
            raise JobCancelled()
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        continue
                except OSError:
                    pass
                total += 1
    return total


def _claim_final_name(tmp: Path, destination: Path, wallet_name: str, date: str) -> Path:
    """Give the finished archive the first free name; an existing file is never replaced.

    `os.link` fails with EEXIST instead of overwriting, so the claim is atomic even against a second
    backup finishing the same second. Where the file system has no hard links (FAT on a USB stick),
    an O_EXCL placeholder is claimed first and then replaced by the archive.
    """
    for n in range(1, 10_000):
        final = destination / archive_name(wallet_name, date, n)
        try:
            os.link(tmp, final, follow_symlinks=False)
            return final
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
        try:
            placeholder = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        os.close(placeholder)
        os.replace(tmp, final)
        return final
    raise OSError(errno.EEXIST, "no free backup file name left", str(destination))


class HashingFile:
    """The archive's output: unbuffered writes to `fd` (opened for reading too), SHA-256 as they go out.

    The ZipWriter writes front to back, except that it seeks back to patch the header of an entry
    it streamed (the manifest, files over 1 MiB) and cuts off an entry whose source failed. Such a
    write makes the running hash stale from that offset on; `hexdigest()` then resumes from the
    last saved hash state before it (one is saved every 4 MiB, a copy of ~200 bytes) and reads only
    the rest of the file back. A wallet's archive is hashed almost entirely while it is written.
    """

    __slots__ = ("_fd", "_pos", "_hashed", "_digest", "_saved", "_stale_from", "write_error")

    _SAVE_EVERY = 4 << 20

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0
        self._hashed = 0
        self._digest: Any = hashlib.sha256()
        self._saved: list[tuple[int, Any]] = [(0, self._digest.copy())]
        self._stale_from: int | None = None
        #: the first write that failed (disk full, I/O error): the archive is lost, not one file
        self.write_error: OSError | None = None

    def __repr__(self) -> str:
        return f"<HashingFile pos={self._pos} hashed={self._hashed} stale_from={self._stale_from}>"

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of `data` (short writes are retried here) and return its length."""
        pos = self._pos
        size = len(data)
        try:
            n = os.write(self._fd, data)
            if n < size:
                with memoryview(data) as view:
                    while n < size:
                        n += os.write(self._fd, view[n:])
        except OSError as exc:
            self.write_error = exc
            # What did reach the file is unknown: rehash it all from the last saved state.
            self._stale(pos)
            self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
            raise
        if pos == self._hashed:
            if pos - self._saved[-1][0] >= self._SAVE_EVERY:
                self._saved.append((pos, self._digest.copy()))
            self._digest.update(data)
            self._hashed = pos + n
        else:
            self._stale(pos)
        self._pos = pos + n
        return n

    def _stale(self, offset: int) -> None:
        if self._stale_from is None or offset < self._stale_from:
            self._stale_from = offset

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = os.lseek(self._fd, offset, whence)
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        os.ftruncate(self._fd, size)
        if size < self._hashed:
            self._stale(size)
        return size

    def flush(self) -> None:
        pass

    def hexdigest(self) -> str:
        """The SHA-256 of the whole file as it is now."""
        end = os.fstat(self._fd).st_size
        if self._stale_from is None and self._hashed == end:
            return self._digest.hexdigest()
        stale_from = min(self._stale_from if self._stale_from is not None else end, self._hashed)
        offset, saved = max((item for item in self._saved if item[0] <= stale_from), key=lambda item: item[0])
        digest = saved.copy()
        while offset < end and (chunk := os.pread(self._fd, min(1 << 20, end - offset), offset)):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()


_CTR_BLOCKS = coins.AN_BLOCK // 16  # 25 counter blocks cover the 400 bytes of ANs
_BATCH = 256  # coins whose nonces and key stream are made in one go
# The counter blocks of a batch: each nonce written 25 times, plus 0, 1, …, 24 on its copies. A
# carry from one block into the next happens only when a nonce is within 25 of 2**128, which
# `_refill` rules out.
_BATCH_STEPS = int.from_bytes(
    b"".join(i.to_bytes(16, "big") for i in range(_CTR_BLOCKS)) * _BATCH, "big"
)
_NONCE_LIMIT = (1 << 128) - _CTR_BLOCKS  # the largest nonce whose last counter block does not wrap


def _draw_nonces() -> bytes:
    """`_BATCH` fresh random nonces, none so close to 2**128 that its counter would wrap (p < 2**-115)."""
    size = coins.NONCE_SIZE
    while True:
        nonces = os.urandom(size * _BATCH)
        if nonces.find(b"\xff" * 8) < 0 or all(
            int.from_bytes(nonces[i : i + size], "big") <= _NONCE_LIMIT for i in range(0, len(nonces), size)
        ):
            return nonces


class CoinEncryptor:
    """Type-4 encryption of plaintext single-coin files, byte for byte what `crypto.encrypt_coin_file`
    writes, at a sixth of its cost.

    The seed's reference re-encrypts through a scratch temporary file; that is an implementation detail
    of it. A coin file is 439 bytes, so here it is encrypted in memory: its plaintext never touches
    the disk a second time and nothing is left to clean up. `crypto.encrypt_coin_file` inspects the
    file and builds a new cipher object per file (~17 µs, 1.7 s for 100,000 coins: P2 could not be
    met). This does AES-256-CTR as the mode defines it — the key stream of a file is AES(nonce),
    AES(nonce + 1), …, XOR-ed onto its ANs — but makes the fresh random nonces and the key streams
    of 256 coins at a time, with one `os.urandom` call and one call of an AES-ECB context made once
    per backup. Anything but the common plaintext single coin without PANs goes through
    `crypto.encrypt_coin_file` itself. tests/test_backup_encryption.py checks that both give
    identical bytes for the same nonce.
    """

    __slots__ = ("_key", "_check", "_ecb", "_nonces", "_stream", "_next", "_middle")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._check = crypto.key_check(key)
        self._ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self._nonces = b""
        self._stream = b""
        self._next = _BATCH
        # Header bytes 5-14 of a type-4 single coin: encryption 4, coin count 1, the key check.
        self._middle = bytes((coins.Encryption.AES256_CTR, 0, 1)) + self._check

    def __repr__(self) -> str:  # never the key
        return "<CoinEncryptor>"

    @property
    def key_check(self) -> bytes:
        return self._check

    def _refill(self) -> None:
        nonces = _draw_nonces()
        size = coins.NONCE_SIZE
        copies = b"".join(nonces[i : i + size] * _CTR_BLOCKS for i in range(0, len(nonces), size))
        counters = int.from_bytes(copies, "big") + _BATCH_STEPS
        self._stream = self._ecb.update(counters.to_bytes(len(copies), "big"))
        self._nonces = nonces
        self._next = 0

    def encrypt(self, data: bytes) -> bytes:
        """Any plaintext single-coin file as a type-4 file; CoinFileError when it cannot be one."""
        if plain_single_units(data) is None:
            return crypto.encrypt_coin_file(data, self._key)
        return self.encrypt_plain_single(data)

    def encrypt_plain_single(self, data: bytes) -> bytes:
        """`data`, which `plain_single_units` accepted, as a type-4 file under the key."""
        i = self._next
        if i >= _BATCH:
            self._refill()
            i = 0
        self._next = i + 1
        at = i * coins.AN_BLOCK
        stream = int.from_bytes(self._stream[at : at + coins.AN_BLOCK], "big")
        body = (int.from_bytes(data[39:], "big") ^ stream).to_bytes(coins.AN_BLOCK, "big")
        at = i * coins.NONCE_SIZE
        return b"".join(
            (
                data[:5], self._middle, data[15:32],  # the file header, now type 4 with the key check
                self._nonces[at : at + coins.NONCE_SIZE],
                data[32:39],  # the coin header stays readable
                body,
            )
        )  # fmt: skip


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


def units_to_json(units: int) -> int | float:
    """A value in CloudCoin for JSON: an integer when whole, else the decimal (as the balance shows it)."""
    whole, rest = divmod(abs(units), coins.UNITS_PER_COIN)
    value: int | float = whole if rest == 0 else float(f"{whole}.{rest:08d}")
    return -value if units < 0 else value


def _utc_now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class _FolderStats:
    """Per top-level folder: what the manifest's "folders" reports."""

    __slots__ = ("files", "bytes", "coin_files", "coins", "units", "encrypted", "unreadable")

    def __init__(self) -> None:
        self.files = self.bytes = self.coin_files = self.coins = self.units = 0
        self.encrypted = self.unreadable = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "coin_files": self.coin_files,
            "coins": self.coins,
            "value": units_to_json(self.units),
            "value_units": self.units,
            "encrypted_files": self.encrypted,
            "unreadable_coin_files": self.unreadable,
        }


class _Archiver:
    """One archive: the walk, the manifest spool, the counters. Used once, from one thread."""

    def __init__(
        self,
        plan: BackupPlan,
        destination: Path,
        out: HashingFile,
        cancel: threading.Event,
        report: Report,
        total: int,
    ) -> None:
        self.plan = plan
        self.destination = destination
        self.out = out
        self.cancel = cancel
        self.report = report
        self.total = total
        self.encryptor = CoinEncryptor(plan.key) if plan.key is not None else None
        self.entries = 0
        self.files_added = 0
        self.files_skipped = 0
        self.reencrypted = 0
        self.plaintext = 0
        self.multi_warned = 0
        self.dirs = 0
        self.folders: dict[str, _FolderStats] = {}
        self.skipped: list[dict[str, str]] = []

    def counters(self) -> dict[str, int]:
        return {
            "files_added": self.files_added,
            "files_skipped": self.files_skipped,
            "files_reencrypted_for_backup": self.reencrypted,
            "files_added_plaintext": self.plaintext,
            "files_added_multi_warned": self.multi_warned,
        }

    def _skip(self, path: str, reason: str) -> None:
        self.files_skipped += 1
        log.info("backup job %s: skipped %s (%s)", self.plan.job_id, path, reason)
        if len(self.skipped) < _MAX_SKIPPED_LISTED:
            self.skipped.append({"path": path, "reason": reason})

    def archive(self) -> None:
        """Walk the wallet into the archive, then add the manifest and close it."""
        spool_dir = self.destination
        with tempfile.TemporaryFile(dir=spool_dir, buffering=1 << 20) as manifest:
            writer = ZipWriter(self.out, spool_dir=spool_dir)  # type: ignore[arg-type]
            try:
                self._walk(writer, manifest)
                self._add_manifest(writer, manifest)
                name = self.plan.wallet_path.name
                comment = f"CloudCoin wallet backup: {name}, {self.plan.date}".encode("utf-8", "replace")
                writer.close(comment=comment[:0xFFFF])
            except BaseException:
                try:
                    writer.abort()
                except Exception:  # never hide the failure that brought us here
                    log.exception("backup job %s: dropping the unfinished archive failed", self.plan.job_id)
                raise
            self.entries = writer.entries

    def _walk(self, writer: ZipWriter, manifest: BinaryIO) -> None:
        """Every folder and file of the wallet into the archive, each file's line into the manifest.

        The hot loop (~100,000 turns for a big wallet): locals instead of attributes, per-folder
        sums kept in locals, no object kept per entry, and per file one openat/fstat/read/close
        relative to the folder's descriptor (cheaper than a full path, and a folder swapped for a
        link after it was opened cannot redirect the reads).
        """
        wallet = self.plan.wallet_path
        if _bad_name(wallet.name):
            raise ValueError(f"wallet name cannot be stored in a ZIP: {wallet.name!r}")
        root_arc = f"{wallet.name}/"
        cancel_is_set = self.cancel.is_set
        report = self.report
        total = self.total
        skip = self._skip
        encrypt = self.encryptor.encrypt_plain_single if self.encryptor is not None else None
        add_bytes = writer.add_bytes
        add_dir = writer.add_dir
        mwrite = manifest.write
        sha256 = hashlib.sha256
        fstat, read, close, open_ = os.fstat, os.read, os.close, os.open
        is_reg = stat.S_ISREG
        units_of = plain_single_units
        other_coin_file = self._other_coin_file
        done = bytes_done = 0
        added = plaintext = reencrypted = 0

        root_mtime = os.stat(wallet).st_mtime
        add_dir(root_arc, mtime=root_mtime)
        mwrite(f'{{"path":{_json_str(root_arc)},"type":"dir"}}'.encode())
        self.dirs += 1
        # (folder path, its archive name ending in "/", its top-level folder, "." for the root)
        stack: list[tuple[str, str, str]] = [(str(wallet), root_arc, ".")]
        while stack:
            dir_path, dir_arc, top = stack.pop()
            stats = self.folders.get(top)
            if stats is None:
                stats = self.folders[top] = _FolderStats()
            coin_folder = top in COIN_FOLDERS
            n_files = n_bytes = n_coin_files = n_coins = n_units = n_encrypted = 0
            try:
                dir_fd = open_(dir_path, _DIR_FLAGS)
            except OSError as exc:
                skip(dir_arc, f"folder cannot be read: {exc.strerror}")
                continue
            try:
                it = os.scandir(dir_fd)
            except OSError as exc:
                close(dir_fd)
                skip(dir_arc, f"folder cannot be read: {exc.strerror}")
                continue
            try:
                with it:
                    for entry in it:
                        name = entry.name
                        try:
                            regular = entry.is_file(follow_symlinks=False)
                            folder = not regular and entry.is_dir(follow_symlinks=False)
                        except OSError:
                            regular = folder = False
                        arc = dir_arc + name
                        if "\\" in name or (not name.isascii() and _bad_name(name)):
                            if not folder:
                                done += 1
                            skip(arc, "its name cannot be stored in a ZIP archive")
                            continue
                        if folder:
                            sub_arc = arc + "/"
                            try:
                                mtime = entry.stat(follow_symlinks=False).st_mtime
                            except OSError:
                                mtime = root_mtime
                            add_dir(sub_arc, mtime=mtime)
                            mwrite(f',\n{{"path":{_json_str(sub_arc)},"type":"dir"}}'.encode())
                            self.dirs += 1
                            stack.append((f"{dir_path}/{name}", sub_arc, name if top == "." else top))
                            continue
                        done += 1
                        if not regular:
                            skip(arc, "symbolic link" if entry.is_symlink() else "not a regular file")
                            continue
                        if cancel_is_set():
                            raise JobCancelled()
                        if not done % _REPORT_EVERY:
                            report(
                                done=done,
                                bytes_done=bytes_done,
                                message=f"Archiving {dir_arc} ({done:,} of {total:,} files)",
                            )
                        is_bin = name.endswith(".bin") or name[-4:].lower() == ".bin"
                        # No link followed (O_NOFOLLOW), no FIFO waited on (O_NONBLOCK).
                        try:
                            fd = open_(name, _OPEN_FLAGS, dir_fd=dir_fd)
                        except OSError as exc:
                            skip(arc, f"cannot be opened: {exc.strerror}")
                            continue
                        try:
                            st = fstat(fd)
                            if not is_reg(st.st_mode):
                                skip(arc, "not a regular file")
                                continue
                            size = st.st_size
                            data = None
                            if size <= (_WHOLE_BIN_LIMIT if is_bin else _WHOLE_LIMIT):
                                data = read(fd, size + 1)
                                if len(data) > size:  # it grew since the fstat: stream it instead
                                    data = None
                        except OSError as exc:
                            skip(arc, f"cannot be read: {exc.strerror}")
                            continue
                        finally:
                            close(fd)

                        if data is None:
                            hexdigest, size = self._add_big_file(writer, arc, f"{dir_path}/{name}", is_bin)
                            if hexdigest is None:
                                continue
                            if is_bin:
                                n_coin_files += 1
                                stats.unreadable += 1  # too big to be a coin file
                                if coin_folder:
                                    added += 1
                                    plaintext += 1
                        else:
                            if is_bin:
                                n_coin_files += 1
                                units = units_of(data)
                                if units is not None:  # a plaintext single coin: the common case
                                    n_coins += 1
                                    n_units += units
                                    if coin_folder:
                                        added += 1
                                        if encrypt is not None:
                                            data = encrypt(data)
                                            reencrypted += 1
                                            n_encrypted += 1
                                        else:
                                            plaintext += 1
                                else:
                                    data, outcome = other_coin_file(arc, data, stats, coin_folder)
                                    if coin_folder:
                                        added += 1
                                        if outcome == _PLAINTEXT:
                                            plaintext += 1
                                        elif outcome == _REENCRYPTED:
                                            reencrypted += 1
                            hexdigest = sha256(data).hexdigest()
                            add_bytes(arc, data, compress=not is_bin, mtime=st.st_mtime)
                            size = len(data)
                        n_files += 1
                        n_bytes += size
                        bytes_done += size
                        mwrite(
                            f',\n{{"path":{_json_str(arc)},"type":"file","size":{size},"sha256":"{hexdigest}"}}'.encode()
                        )
            finally:
                close(dir_fd)
                stats.files += n_files
                stats.bytes += n_bytes
                stats.coin_files += n_coin_files
                stats.coins += n_coins
                stats.units += n_units
                stats.encrypted += n_encrypted
        self.files_added = added
        self.plaintext = plaintext
        self.reencrypted = reencrypted
        report(done=done, total=max(total, done), bytes_done=bytes_done, bytes_total=bytes_done)

    def _add_big_file(self, writer: ZipWriter, arc: str, path: str, is_bin: bool) -> tuple[str | None, int]:
        """A file too big to read whole, streamed; (its SHA-256, size), or (None, 0) when skipped."""
        digest = hashlib.sha256()
        try:
            result = writer.add_file(arc, path, compress=not is_bin, on_chunk=digest.update)
        except OSError as exc:
            if self.out.write_error is not None:
                raise  # the archive could not be written: that fails the backup
            self._skip(arc, f"cannot be read: {exc.strerror}")
            return None, 0
        return digest.hexdigest(), result.size

    def _other_coin_file(
        self, arc: str, data: bytes, stats: _FolderStats, coin_folder: bool
    ) -> tuple[bytes, int]:
        """Every `.bin` but a plaintext single coin: what goes in the archive, and how it counted.

        Encrypted files (any type, any key) go in verbatim; a multi-coin file goes in verbatim and is
        counted in files_added_multi_warned; a plaintext single coin with PANs is encrypted when a
        key is set; a file that is not a readable coin file goes in verbatim, as plaintext.
        """
        try:
            info = coins.inspect_coin_file(data)
        except coins.CoinFileError as exc:
            stats.unreadable += 1
            log.warning("backup job %s: %s is not a readable coin file (%s)", self.plan.job_id, arc, exc.reason)
            encrypted = len(data) >= coins.HEADER_SIZE and data[:4] == _MAGIC and data[5] != 0
            if encrypted:
                stats.encrypted += 1
            return data, (_ENCRYPTED if encrypted else _PLAINTEXT)
        stats.coins += info.coin_count
        stats.units += info.total_value
        if coin_folder and info.is_multi:
            self.multi_warned += 1
            log.warning("backup job %s: multi-coin file inside a wallet folder: %s", self.plan.job_id, arc)
        if info.encrypted:
            stats.encrypted += 1
            return data, _ENCRYPTED
        if not coin_folder or info.is_multi or self.encryptor is None:
            return data, _PLAINTEXT
        stats.encrypted += 1
        return self.encryptor.encrypt(data), _REENCRYPTED

    def _add_manifest(self, writer: ZipWriter, manifest: BinaryIO) -> None:
        plan = self.plan
        wallet = plan.wallet_path
        entry_count = writer.entries  # every entry so far; the manifest is not listed in itself
        totals = _FolderStats()
        for stats in self.folders.values():
            totals.files += stats.files
            totals.bytes += stats.bytes
            totals.coins += stats.coins
            totals.units += stats.units
        head = json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "format_version": MANIFEST_VERSION,
                "wallet_name": wallet.name,
                "wallet_path": str(wallet),
                "root": f"{wallet.name}/",
                "created": _utc_now(),
                "server_version": __version__,
                "job_id": plan.job_id,
                "reencrypted": self.reencrypted > 0,
                "key_check": self.encryptor.key_check.hex() if self.encryptor is not None else None,
            },
            ensure_ascii=True,
        )
        tail = json.dumps(
            {
                "entry_count": entry_count,
                "skipped": self.skipped,
                "folders": {name: stats.to_json() for name, stats in sorted(self.folders.items())},
                "totals": {
                    "files": totals.files,
                    "dirs": self.dirs,
                    "bytes": totals.bytes,
                    "coins": totals.coins,
                    "value": units_to_json(totals.units),
                    "value_units": totals.units,
                },
                "counters": self.counters(),
            },
            ensure_ascii=True,
        )
        size = manifest.tell()
        manifest.flush()
        manifest.seek(0)

        def chunks() -> Any:
            yield head[:-1].encode() + b', "entries": [\n'
            while chunk := manifest.read(1 << 20):
                yield chunk
            yield b'\n], ' + tail[1:].encode() + b"\n"

        writer.add_stream(
            MANIFEST_NAME, chunks(), compress=size <= _DEFLATE_MANIFEST_UP_TO, mtime=time.time()
        )

    def verify(self, path: Path) -> None:
        """Read every entry back (CRC-32 and sizes); any problem fails the backup."""
        cancel = self.cancel
        report = self.report
        entries = self.entries

        def on_entry(n: int) -> None:
            if n % 4096 == 0:
                report(message=f"Verifying ({n:,} of {entries:,} entries)")

        checked, problems = verify_zip(path, on_entry=on_entry, should_stop=cancel.is_set)
        if cancel.is_set():
            raise JobCancelled()
        if problems or checked != entries:
            for problem in problems[:10]:
                log.error("backup job %s: verification: %s: %s", self.plan.job_id, problem.path, problem.problem)
            raise OSError(errno.EIO, f"archive failed verification ({len(problems)} problems, {checked} entries)")


def _bad_name(name: str) -> bool:
    """True when `name` cannot be an archive name: not UTF-8 (undecodable bytes), or a backslash."""
    if "\\" in name:
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
