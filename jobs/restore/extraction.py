"""Extraction of a backup archive into a fresh temporary folder, in one checked sequential pass (blocking).

The archive's directory is checked whole first (jobs/restore/checker.py: structure, names, types,
duplicates, collisions; then the manifest's head): nothing is written for an archive refused there.
Then one sequential read brings every entry, checked against the manifest (type, size, SHA-256,
CRC-32) before a small file is written, and a big file's chunks are written as they are checked, its
verdict after the last one. Files are created relative to the descriptor of their folder (0600, times
from the archive; folders 0700); with a login key, Bank and Fracked coin files under that key are
decrypted on the way out. Small files go out in batches written by two threads
(`jobs.restore.filebatch`), bigger ones by this thread alone. No file is fsynced by itself: the
whole tree is made durable in one step (`jobs.restore.temp.sync_tree`) before the caller renames it
into place. A refusal, failure or cancel removes the folder again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from app.wallet import coins, crypto
from app.wallet.coinfolders import VALUE_FOLDERS, coin_file_value
from app.wallet.paths import write_refusal
from jobs.backup.coins import COIN_FOLDERS, plain_single_units
from jobs.models import JobCancelled, JobFailed
from jobs.restore.archive_checks import REPORT_EVERY, Report
from jobs.restore.checker import DAMAGED, DIGEST, MANIFEST, NAME, STRUCTURE, BackupCheck, Entry
from jobs.restore.filebatch import FILE_FLAGS, FileBatch, FileError, set_times, write_all
from jobs.restore.plan import MAX_REFUSAL_PROBLEMS, RestorePlan, refusal
from jobs.restore.temp import removed_on_failure, sync_tree
from jobs.zip.reader import ArchiveError, ZipReader

#: the restore's log, as before this code left jobs.restore.restore
log = logging.getLogger("jobs.restore.restore")

failed = JobFailed.from_error
failure = JobFailed.plain

#: a coin file bigger than the reader's window is read back whole for its value up to this size
_MAX_READ_BACK = 64 << 20
#: DOS time stamps remembered with their conversion (a wallet's files share a handful)
_MAX_TIMES = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(slots=True)
class RestoreCounts:
    files: int = 0
    folders: int = 0
    bytes: int = 0
    decrypted: int = 0
    left_encrypted: int = 0  # coin files in Bank/Fracked under some other key (or no key set)
    units: int = 0  # the balance of the restored wallet (Bank, Fracked, Limbo), as wallet_balance counts it
    notes: int = 0


def extract_archive(
    plan: RestorePlan, temp: Path, *, key: bytes | None, cancel: threading.Event, report: Report
) -> RestoreCounts:
    """Check the archive and extract it into `temp` (created here, removed on any failure)."""
    try:
        reader = ZipReader(plan.zip_path)
    except ArchiveError as exc:
        raise failure(400, f"Not a valid ZIP archive: {exc.problem}") from None
    except FileNotFoundError:
        raise failure(404, f"Backup file not found: {plan.zip_path}") from None
    except OSError as exc:
        raise failure(400, f"The backup file cannot be read: {exc.strerror}") from None
    with reader:
        refuser = _Refuser()
        check = BackupCheck(reader, refuser, cancel)
        try:
            check.scan()
            if refuser.collected:
                raise failed(refusal(refuser.collected))
            refuser.at_once = True
            check.read_manifest()
        except OSError as exc:
            raise _read_failed(plan, exc) from None
        root = check.root
        assert root is not None  # read_manifest raised otherwise
        for folder in ("Bank", "Fracked"):
            if f"{root}{folder}" not in check.folder_paths:
                raise failure(400, f"Refusing to restore: the archive holds no wallet ({root}{folder}/ is missing)")
        if cancel.is_set():
            raise JobCancelled()
        try:
            os.mkdir(temp, 0o700)
        except OSError as exc:
            log.error("restore: cannot create %s: %s", temp, exc)
            refused = write_refusal(exc, "Cannot restore into the location", plan.location)
            if refused is not None:  # the place, not the server: a 403/400 with the reason
                raise JobFailed.from_error(refused) from None
            raise failure(500, f"Cannot create the wallet folder in {plan.location}: {exc.strerror}") from None
        with removed_on_failure(temp):
            writer = _Writer(temp, root, key, cancel)
            try:
                report(phase="restoring", span=(0, 95), done=0, total=check.files, bytes_done=0,
                       bytes_total=check.bytes_total, message=f"Restoring {root[:-1]} (0 of {check.files:,} files)")  # fmt: skip
                writer.write(check.entries(), check.files, report)
            except OSError as exc:  # the writer's own errors are JobFailed: this is the archive failing to read
                raise _read_failed(plan, exc) from None
            finally:
                writer.close()
            if cancel.is_set():  # the checker looks every 128 entries; a smaller archive ends here
                raise JobCancelled()
            report(phase="syncing", span=(95, 100), message="Making the restored files durable")
            try:
                sync_tree(temp)
            except OSError as exc:
                log.error("restore: cannot sync %s: %s", temp, exc)
                raise failure(500, f"Cannot write the restored wallet: {exc.strerror}") from None
        return writer.counts


def _read_failed(plan: RestorePlan, exc: OSError) -> JobFailed:
    log.error("restore: cannot read %s: %s", plan.zip_path, exc)
    return failure(500, f"The backup file cannot be read: {exc.strerror}")


class _Refuser:
    """The checker's problem callback for a restore: collects the directory's problems (up to 20),
    then refuses at the first problem of the manifest or the data."""

    def __init__(self) -> None:
        self.collected: list[tuple[str, str]] = []
        self.at_once = False

    def __call__(self, path: str, problem: str, kind: str) -> None:
        if kind == STRUCTURE and not path:
            raise failure(400, f"Not a valid ZIP archive: {problem}")
        if kind == MANIFEST:
            raise failure(400, f"Refusing to restore: {problem}")
        if kind in (DAMAGED, STRUCTURE):
            problem = f"is damaged ({problem})"
        elif kind == DIGEST:
            problem = "does not match the manifest (SHA-256 differs)"
        if kind != NAME or self.at_once:
            raise failed(refusal([(path, problem)]))
        self.collected.append((path, problem))
        if len(self.collected) >= MAX_REFUSAL_PROBLEMS:
            raise failed(refusal(self.collected))


class _Writer:
    """Writes checked entries below a fresh folder, each file relative to its folder's descriptor."""

    def __init__(self, temp: Path, root: str, key: bytes | None, cancel: threading.Event) -> None:
        self.temp = temp
        self.cancel = cancel
        self.root_len = len(root)
        self.wallet = root[:-1]
        self.key = key
        self.key_check = crypto.key_check(key) if key is not None else None
        self.counts = RestoreCounts()
        self.root_fd = os.open(temp, _DIR_FLAGS)
        self.made: set[str] = {""}  # folders made, relative to temp ("" is temp itself)
        self.folder_times: list[tuple[str, float]] = []
        self.folder = ""  # the folder of the last file, and its descriptor
        self.folder_fd = self.root_fd
        self.coin_folder = False
        self.value_folder = False  # files directly in Bank, Fracked or Limbo count toward the balance
        self._dos = -1
        self._mtime: float | None = None
        self._times: dict[int, float | None] = {}  # DOS stamp -> mtime, converted once each
        self.batch = FileBatch()  # the small files not written yet, all in self.folder

    def close(self) -> None:
        self.batch.close()
        if self.folder_fd != self.root_fd:
            os.close(self.folder_fd)
        os.close(self.root_fd)

    def write(self, entries: Iterator[Entry], total: int, report: Report) -> None:
        counts = self.counts
        root_len = self.root_len
        # The loop below runs once per file: what it calls is held in locals, and the common coin
        # file (bytes in hand, the time of the file before) takes one method call, into its batch.
        add = self.batch.add
        plain_units = plain_single_units
        plain = int(coins.Encryption.NONE)
        files = size_sum = 0
        try:
            for name, is_dir, data, dos, size in entries:
                rel = name[root_len:]
                if is_dir:
                    rel = rel[:-1]
                    if rel not in self.made:
                        self._make(rel)
                    mtime = self._time(dos)
                    if mtime is not None:
                        self.folder_times.append((rel, mtime))
                    continue
                folder, _, base = rel.rpartition("/")
                if folder != self.folder:
                    self._enter(folder)
                is_bin = base[-4:].lower() == ".bin"
                mtime = self._mtime if dos == self._dos else self._time(dos)
                if type(data) is bytes:  # a small file: checked whole, written with its batch
                    if self.coin_folder and is_bin and len(data) >= coins.HEADER_SIZE and data[5] != plain:
                        data = self._maybe_decrypt(rel, data)
                    if self.value_folder and is_bin:
                        units = plain_units(data)  # the common case, no objects
                        if units is not None:
                            counts.units += units
                            counts.notes += 1
                        else:
                            self._count_value(base, data, -1)
                    try:
                        add(self.folder_fd, base, data, mtime, name)
                    except FileError as exc:
                        raise self._file_failed(exc) from None
                else:
                    self._write_big(base, name, cast("Iterator[bytes]", data), mtime, is_bin)
                files += 1
                size_sum += size
                if not files % REPORT_EVERY:
                    counts.files, counts.bytes = files, size_sum
                    report(done=files, bytes_done=size_sum,
                           message=f"Restoring {self.wallet} ({files:,} of {total:,} files)")  # fmt: skip
            self._flush()
        finally:
            counts.files, counts.bytes = files, size_sum
        report(done=counts.files, bytes_done=counts.bytes,
               message=f"Restored {self.wallet} ({counts.files:,} of {total:,} files)")  # fmt: skip
        # Folder times last: writing into a folder changes its time. Deepest first, for the same reason.
        for rel, mtime in sorted(self.folder_times, key=lambda item: -item[0].count("/")):
            try:
                if rel:
                    os.utime(rel, (mtime, mtime), dir_fd=self.root_fd, follow_symlinks=False)
                else:
                    os.utime(self.root_fd, (mtime, mtime))
            except OSError:
                pass

    def _enter(self, folder: str) -> None:
        """Make `folder` (and its parents) if needed and hold its descriptor for the files that follow."""
        self._flush()  # the batch's files are written before their folder's descriptor is closed
        if folder not in self.made:
            self._make(folder)
        if self.folder_fd != self.root_fd:
            os.close(self.folder_fd)
            self.folder_fd = self.root_fd
        if folder:
            try:
                self.folder_fd = os.open(folder, _DIR_FLAGS, dir_fd=self.root_fd)
            except OSError as exc:
                raise self._write_failed(folder, exc) from None
        self.folder = folder
        self.coin_folder = folder.partition("/")[0] in COIN_FOLDERS
        self.value_folder = folder in VALUE_FOLDERS

    def _make(self, rel: str) -> None:
        """Make `rel` and every missing parent, top down (no recursion: depth is bounded by the checks)."""
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            if path in self.made:
                continue
            try:
                os.mkdir(path, 0o700, dir_fd=self.root_fd)
                os.chmod(path, 0o700, dir_fd=self.root_fd)  # exactly 0700, whatever the umask
            except (FileExistsError, NotADirectoryError):
                raise failed(refusal([(self.wallet + "/" + path + "/", "collides with another entry")])) from None
            except OSError as exc:
                raise self._write_failed(path, exc) from None
            self.made.add(path)
            self.counts.folders += 1

    def _write_big(self, base: str, name: str, chunks: Iterator[bytes], mtime: float | None, is_bin: bool) -> None:
        """A file bigger than the reader's window: written chunk by chunk as each is checked."""
        rel = name[self.root_len :]
        try:
            fd = os.open(base, FILE_FLAGS, 0o600, dir_fd=self.folder_fd)
        except OSError as exc:
            raise self._file_failed(FileError(name, exc)) from None
        try:
            for chunk in chunks:
                if self.cancel.is_set():  # a big file stops between its chunks
                    raise JobCancelled()
                self._write(fd, rel, chunk)
            if self.value_folder and is_bin:
                self._count_value(base, None, fd)
            set_times(fd, mtime)
        finally:
            os.close(fd)

    def _flush(self) -> None:
        try:
            self.batch.flush()
        except FileError as exc:
            raise self._file_failed(exc) from None

    def _file_failed(self, exc: FileError) -> JobFailed:
        if isinstance(exc.error, (FileExistsError, NotADirectoryError, IsADirectoryError)):
            return failed(refusal([(exc.name, "collides with another entry")]))
        return self._write_failed(exc.name[self.root_len :], exc.error)

    def _count_value(self, name: str, data: bytes | None, fd: int) -> None:
        """Add a coin file to the balance from the bytes in hand (a big one is read back from disk)."""
        units = plain_single_units(data) if data is not None else None  # the common case, no objects
        if units is not None:
            value: tuple[int, int] | None = (units, 1)
        else:
            if data is None:
                size = os.fstat(fd).st_size
                data = os.pread(fd, size + 1, 0) if size <= _MAX_READ_BACK else None
            value = coin_file_value(name, data)
        if value is not None:
            self.counts.units += value[0]
            self.counts.notes += value[1]

    def _time(self, dos: int) -> float | None:
        # Files archived together share their two-second DOS time stamp, but a folder's files may take
        # turns between a few of them: each stamp is converted once (mktime looks at /etc/localtime
        # every call, a system call; it was 7% of a restore).
        self._dos = dos
        try:
            self._mtime = self._times[dos]
        except KeyError:
            date, clock = dos >> 16, dos & 0xFFFF
            try:
                mtime: float | None = time.mktime((
                    (date >> 9) + 1980, (date >> 5) & 0xF, date & 0x1F,
                    clock >> 11, (clock >> 5) & 0x3F, (clock & 0x1F) * 2, 0, 0, -1,
                ))  # fmt: skip
            except (OverflowError, ValueError):
                mtime = None
            if len(self._times) >= _MAX_TIMES:  # bounded, whatever the archive holds
                self._times.clear()
            self._mtime = self._times[dos] = mtime
        return self._mtime

    def _maybe_decrypt(self, rel: str, data: bytes) -> bytes:
        """With a key, a coin file in Bank or Fracked under that key comes out in plaintext."""
        if len(data) < coins.HEADER_SIZE or data[5] == coins.Encryption.NONE:
            return data
        if self.key is not None and data[8:15] == self.key_check:
            try:
                plain = crypto.decrypt_coin_file(data, self.key)
            except (coins.CoinFileError, crypto.WrongKey) as exc:
                log.warning("restore: %s is not decrypted (%s); restored as it is", rel, exc)
            else:
                self.counts.decrypted += 1
                return plain
        self.counts.left_encrypted += 1
        return data

    def _write(self, fd: int, rel: str, data: bytes) -> None:
        try:
            write_all(fd, data)
        except OSError as exc:
            raise self._write_failed(rel, exc) from None

    def _write_failed(self, rel: str, exc: OSError) -> JobFailed:
        log.error("restore: cannot write %s in %s: %s", rel, self.temp, exc)
        return failure(500, f"Cannot write the restored wallet: {exc.strerror}")
