"""Extraction of a backup archive into a fresh temporary folder, every entry checked first (blocking).

Every name and manifest check runs before anything is written. Then the entries are streamed into
the temporary folder (files 0600, folders 0700; with a login key, Bank and Fracked coin files under
that key are decrypted on the way out), each file's SHA-256 compared with the manifest as it is
written, and the file system synced. A refusal, failure or cancel removes the folder again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from app.wallet import coins, crypto
from app.wallet.paths import write_refusal
from jobs.backup.coins import COIN_FOLDERS
from jobs.backup.manifest import MANIFEST_NAME
from jobs.models import JobCancelled, JobFailed
from jobs.restore.archive_checks import (
    READ_CHUNK,
    READ_ERRORS,
    REPORT_EVERY,
    Manifest,
    ManifestError,
    Report,
    entry_problems,
    first_problems,
    read_manifest,
)
from jobs.restore.plan import MAX_REFUSAL_PROBLEMS, RestorePlan, refusal
from jobs.restore.temp import removed_on_failure, sync_tree

#: the restore's log, as before this code left jobs.restore.restore
log = logging.getLogger("jobs.restore.restore")


@dataclass(slots=True)
class RestoreCounts:
    files: int = 0
    folders: int = 0
    bytes: int = 0
    decrypted: int = 0
    left_encrypted: int = 0  # coin files in Bank/Fracked under some other key (or no key set)


def extract_archive(
    plan: RestorePlan, temp: Path, *, key: bytes | None, cancel: threading.Event, report: Report
) -> RestoreCounts:
    """Check the archive and extract it into `temp` (created here, removed on any failure)."""
    with _open_archive(plan.zip_path) as archive:
        infos = archive.infolist()
        # Names first, without the manifest: an archive that tries to escape is refused as such.
        unsafe = first_problems(entry_problems(infos, None, root=None), MAX_REFUSAL_PROBLEMS)
        if unsafe:
            raise _refused(unsafe)
        try:
            manifest = read_manifest(archive)
        except ManifestError as exc:
            raise JobFailed.plain(400, f"Refusing to restore: {exc}") from None
        problems = first_problems(entry_problems(infos, manifest, root=manifest.root), MAX_REFUSAL_PROBLEMS)
        if problems:
            raise _refused(problems)
        root = manifest.root
        for folder in ("Bank", "Fracked"):
            if f"{root}{folder}/" not in manifest.entries and not any(
                path.startswith(f"{root}{folder}/") for path in manifest.entries
            ):
                raise JobFailed.plain(
                    400, f"Refusing to restore: the archive holds no wallet ({root}{folder}/ is missing)"
                )
        if cancel.is_set():
            raise JobCancelled()
        try:
            os.mkdir(temp, 0o700)
        except OSError as exc:
            log.error("restore: cannot create %s: %s", temp, exc)
            refusal = write_refusal(exc, "Cannot restore into the location", plan.location)
            if refusal is not None:  # the place, not the server: a 403/400 with the reason
                raise JobFailed.from_error(refusal) from None
            raise JobFailed.plain(500, f"Cannot create the wallet folder in {plan.location}: {exc.strerror}") from None
        with removed_on_failure(temp):
            extractor = _Extractor(archive, manifest, temp, key, cancel, report)
            extractor.extract(infos)
            try:
                sync_tree(temp)
            except OSError as exc:
                log.error("restore: cannot sync %s: %s", temp, exc)
                raise JobFailed.plain(500, f"Cannot write the restored wallet: {exc.strerror}") from None
        return extractor.counts


def _open_archive(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise JobFailed.plain(400, f"Not a valid ZIP archive: {exc}") from None
    except FileNotFoundError:
        raise JobFailed.plain(404, f"Backup file not found: {path}") from None
    except OSError as exc:
        raise JobFailed.plain(400, f"The backup file cannot be read: {exc.strerror}") from None


def _refused(problems: list[tuple[str, str]]) -> JobFailed:
    return JobFailed.from_error(refusal(problems))


class _Extractor:
    """One extraction into a fresh temporary folder. Used once, from one thread."""

    def __init__(
        self,
        archive: zipfile.ZipFile,
        manifest: Manifest,
        temp: Path,
        key: bytes | None,
        cancel: threading.Event,
        report: Report,
    ) -> None:
        self.archive = archive
        self.manifest = manifest
        self.temp = temp
        self.key = key
        self.key_check = crypto.key_check(key) if key is not None else None
        self.cancel = cancel
        self.report = report
        self.counts = RestoreCounts()
        self._temp = str(temp) + os.sep  # paths as strings: pathlib costs a second per 100,000 files
        self._made: set[str] = {""}  # folders made, relative to temp ("" is temp itself)
        self._last_time: tuple[tuple[int, ...], float | None] = ((), None)
        self._folder_times: list[tuple[str, float]] = []

    def extract(self, infos: list[zipfile.ZipInfo]) -> None:
        root_len = len(self.manifest.root)
        files = [info for info in infos if not info.is_dir() and info.orig_filename != MANIFEST_NAME]
        total = len(files)
        bytes_total = sum(info.file_size for info in files)
        self.report(done=0, total=total, bytes_done=0, bytes_total=bytes_total,
                    message=f"Restoring {self.manifest.wallet_name} (0 of {total:,} files)")  # fmt: skip
        for info in infos:
            name = info.orig_filename
            if name == MANIFEST_NAME:
                continue
            rel = name[root_len:]
            if info.is_dir():
                self._folder(rel.removesuffix("/"), info)
                continue
            if self.cancel.is_set():
                raise JobCancelled()
            self._file(rel, info)
            done = self.counts.files
            if done % REPORT_EVERY == 0:
                self.report(done=done, bytes_done=self.counts.bytes,
                            message=f"Restoring {self.manifest.wallet_name} ({done:,} of {total:,} files)")  # fmt: skip
        self.report(done=self.counts.files, bytes_done=self.counts.bytes, message="Syncing")
        # Folder times last: writing into a folder changes its time. Deepest first, for the same reason.
        for rel, mtime in sorted(self._folder_times, key=lambda item: -item[0].count("/")):
            _set_time(self.temp / rel if rel else self.temp, mtime)

    def _folder(self, rel: str, info: zipfile.ZipInfo) -> None:
        self._make_parents(rel)
        if rel not in self._made:
            self._mkdir(rel)
        mtime = _zip_time(info)
        if mtime is not None:
            self._folder_times.append((rel, mtime))

    def _make_parents(self, rel: str) -> None:
        parent = rel.rpartition("/")[0]
        if parent in self._made:
            return
        self._make_parents(parent)
        self._mkdir(parent)

    def _mkdir(self, rel: str) -> None:
        path = self.temp / rel
        try:
            os.mkdir(path, 0o700)
            os.chmod(path, 0o700)  # exactly 0700, whatever the umask
        except (FileExistsError, NotADirectoryError):
            raise _refused([(self.manifest.root + rel + "/", "collides with another entry")]) from None
        except OSError as exc:
            raise self._write_failed(rel, exc) from None
        self._made.add(rel)
        self.counts.folders += 1

    def _file(self, rel: str, info: zipfile.ZipInfo) -> None:
        self._make_parents(rel)
        name = info.orig_filename
        listed = self.manifest.entries[name]
        assert listed is not None  # entry_problems checked the types
        size, expected = listed
        try:
            fd = os.open(self._temp + rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise _refused([(name, "collides with another entry")]) from None
        except OSError as exc:
            raise self._write_failed(rel, exc) from None
        try:
            digest = hashlib.sha256()
            try:
                with self.archive.open(info) as src:
                    if size <= READ_CHUNK:
                        data = src.read()
                        digest.update(data)
                        data = self._maybe_decrypt(rel, data)
                        self._write(fd, rel, data)
                    else:
                        while chunk := src.read(READ_CHUNK):
                            digest.update(chunk)
                            self._write(fd, rel, chunk)
            except READ_ERRORS as exc:
                raise _refused([(name, f"is damaged ({exc})")]) from None
            except OSError as exc:  # writes raise JobFailed: this is the archive failing to read
                log.error("restore: cannot read %s from %s: %s", name, self.archive.filename, exc)
                raise JobFailed.plain(500, f"The backup file cannot be read: {exc.strerror}") from None
            if digest.hexdigest() != expected:
                raise _refused([(name, "does not match the manifest (SHA-256 differs)")])
            mtime = self._time_of(info)
            if mtime is not None:
                _set_time(fd, mtime)
        finally:
            os.close(fd)
        self.counts.files += 1
        self.counts.bytes += info.file_size

    def _time_of(self, info: zipfile.ZipInfo) -> float | None:
        # Files archived together share their two-second DOS time stamp: one mktime for each run.
        last, mtime = self._last_time
        if info.date_time != last:
            mtime = _zip_time(info)
            self._last_time = (info.date_time, mtime)
        return mtime

    def _maybe_decrypt(self, rel: str, data: bytes) -> bytes:
        """With a key, a coin file in Bank or Fracked under that key comes out in plaintext."""
        top = rel.partition("/")[0]
        if top not in COIN_FOLDERS or not rel.lower().endswith(".bin"):
            return data
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
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise self._write_failed(rel, exc) from None

    def _write_failed(self, rel: str, exc: OSError) -> JobFailed:
        log.error("restore: cannot write %s in %s: %s", rel, self.temp, exc)
        return JobFailed.plain(500, f"Cannot write the restored wallet: {exc.strerror}")


def _zip_time(info: zipfile.ZipInfo) -> float | None:
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _set_time(target: int | Path, mtime: float) -> None:
    """Best effort: a restored entry keeps its archived time when the file system allows."""
    try:
        os.utime(target, (mtime, mtime))
    except OSError:
        pass
