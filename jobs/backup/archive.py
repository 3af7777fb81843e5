"""Walking a wallet into a ZIP: every folder and file, plaintext coins encrypted, the manifest last.

`Archiver.archive()` walks the wallet without following links and writes it with the lean
`ZipWriter`: `.bin` stored, other files deflated, every folder (also empty ones) as its own entry,
everything under ``<wallet name>/``, then ``backup-manifest.json`` (jobs/backup/manifest.py). With a
login key, plaintext single coins from `COIN_FOLDERS` are encrypted on their way in (type 4,
`app.wallet.crypto.CoinEncryptor`); every other file goes in as it is. A file that cannot be read is
skipped and reported; only a failed write to the archive fails the walk.

Nothing per entry is kept alive in Python: quality.md measured garbage-collector passes over
per-entry objects stalling the event loop. The central directory and the manifest's entry lines
are spooled to nameless temporary files in the destination.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from itertools import islice
from json.encoder import encode_basestring_ascii as _json_str
from pathlib import Path
from typing import IO

from app.wallet.crypto import CoinEncryptor
from jobs.backup.batch import OPEN_FILE_FLAGS, manifest_lines, plain_names, read_files
from jobs.backup.coins import (
    COIN_FOLDERS,
    PLAINTEXT,
    REENCRYPTED,
    admit_other_coin_file,
    plain_single_units,
    plain_singles_units,
)
from jobs.backup.manifest import FolderStats, add_manifest, manifest_head, manifest_tail, summary_comment
from jobs.backup.output import ArchiveFile
from jobs.models import JobCancelled
from jobs.zip.writer import ZipWriter

log = logging.getLogger(__name__)

Report = Callable[..., None]

#: `.bin` files up to this size are read whole (the largest valid coin file, 65,535 coins with
#: PANs, is 52.9 MB); other files above 1 MiB are streamed by the ZipWriter.
_WHOLE_BIN_LIMIT = 64 << 20
_WHOLE_LIMIT = 1 << 20
#: skipped entries named in the manifest; the count is always exact
_MAX_SKIPPED_LISTED = 1000
#: files between two progress reports and cancel checks (the runner throttles publishing; this
#: bounds the calls; a cancel waits for at most this many small files)
_REPORT_EVERY = 256
#: small stored files handed to the writer in one call
_BATCH = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


class Archiver:
    """One archive of one wallet: the walk, the manifest spool, the counters. Used once, from one thread."""

    def __init__(
        self,
        *,
        wallet: Path,
        job_id: str,
        date: str,
        key: bytes | None,
        spool_dir: Path,
        out: ArchiveFile,
        cancel: threading.Event,
        report: Report,
        total: int,
        plan_id: str | None = None,
    ) -> None:
        self.wallet = wallet
        self.plan_id = plan_id
        self.comment = b""
        self.job_id = job_id
        self.date = date
        self.spool_dir = spool_dir
        self.out = out
        self.cancel = cancel
        self.report = report
        self.total = total
        self.encryptor = CoinEncryptor(key) if key is not None else None
        self.entries = 0
        self.files_added = 0
        self.files_skipped = 0
        self.reencrypted = 0
        self.plaintext = 0
        self.multi_warned = 0
        self.dirs = 0
        self.folders: dict[str, FolderStats] = {}
        self.skipped: list[dict[str, str]] = []

    def __repr__(self) -> str:
        return f"<Archiver {self.wallet.name} entries={self.entries} skipped={self.files_skipped}>"

    def counters(self) -> dict[str, int]:
        return {
            "files_added": self.files_added,
            "files_skipped": self.files_skipped,
            "files_reencrypted_for_backup": self.reencrypted,
            "files_added_plaintext": self.plaintext,
            "files_added_multi_warned": self.multi_warned,
        }

    def archive(self) -> None:
        """Walk the wallet into the archive, then add the manifest and close it."""
        with tempfile.TemporaryFile(dir=self.spool_dir, buffering=1 << 20) as manifest:
            writer = ZipWriter(self.out, spool_dir=self.spool_dir)  # type: ignore[arg-type]
            try:
                self._walk(writer, manifest)
                self._add_manifest(writer, manifest)
                writer.close(comment=self.comment)
            except BaseException:
                writer.abort()
                raise
            self.entries = writer.entries

    def _skip(self, path: str, reason: str) -> None:
        self.files_skipped += 1
        log.info("backup job %s: skipped %s (%s)", self.job_id, path, reason)
        if len(self.skipped) < _MAX_SKIPPED_LISTED:
            self.skipped.append({"path": path, "reason": reason})

    def _walk(self, writer: ZipWriter, manifest: IO[bytes]) -> None:
        """Every folder and file of the wallet into the archive, each entry's line into the manifest.

        The hot loop (~100,000 turns for a big wallet): locals instead of attributes and globals,
        per-folder sums kept in locals, no object kept per entry, and per file one
        openat/fstat/read/close relative to the folder's descriptor (cheaper than a full path, and
        a folder swapped for a link after it was opened cannot redirect the reads). Small stored
        files wait in a batch of at most `_BATCH` (a few hundred KiB) that goes to the writer, and
        their manifest lines to the spool, in one call each; anything else first sends the batch,
        so the archive keeps the walk's order. A folder is listed 256 entries at a time: a chunk of
        plain coin files takes the batch path (jobs/backup/batch.py), any other chunk the
        file-by-file loop below.
        """
        wallet = self.wallet
        if _bad_name(wallet.name):
            raise ValueError(f"wallet name cannot be stored in a ZIP: {wallet.name!r}")
        root_arc = f"{wallet.name}/"
        cancel_is_set = self.cancel.is_set
        report = self.report
        total = self.total
        skip = self._skip
        folders = self.folders
        job_id = self.job_id
        encryptor = self.encryptor
        encrypt = encryptor.encrypt_plain_single if encryptor is not None else None
        encrypt_batch = encryptor.encrypt_plain_singles if encryptor is not None else None
        add_file = writer.add_bytes_fast
        add_batch = writer.add_stored_batch
        add_dir = writer.add_dir
        mwrite = manifest.write
        sha256 = hashlib.sha256
        json_str = _json_str
        fstat, read, close, open_ = os.fstat, os.read, os.close, os.open
        is_reg = stat.S_ISREG
        units_of = plain_single_units
        open_flags, dir_flags, report_every, batch_max = OPEN_FILE_FLAGS, _DIR_FLAGS, _REPORT_EVERY, _BATCH
        whole_bin_limit, whole_limit = _WHOLE_BIN_LIMIT, _WHOLE_LIMIT
        done = bytes_done = dirs = 0
        added = plaintext = reencrypted = multi_warned = 0
        # The batch: archive names, contents, mtimes and manifest lines of small stored files.
        b_names: list[str] = []
        b_datas: list[bytes] = []
        b_mtimes: list[float] = []
        b_lines: list[str] = []

        def send_batch() -> None:
            add_batch(b_names, b_datas, b_mtimes)
            mwrite("".join(b_lines).encode())
            b_names.clear()
            b_datas.clear()
            b_mtimes.clear()
            b_lines.clear()

        root_mtime = os.stat(wallet).st_mtime
        add_dir(root_arc, mtime=root_mtime)
        mwrite(f'{{"path":{json_str(root_arc)},"type":"dir"}}'.encode())
        dirs += 1
        # (folder path, its archive name ending in "/", its top-level folder, "." for the root)
        stack: list[tuple[str, str, str]] = [(str(wallet), root_arc, ".")]
        while stack:
            dir_path, dir_arc, top = stack.pop()
            stats = folders.get(top)
            if stats is None:
                stats = folders[top] = FolderStats()
            coin_folder = top in COIN_FOLDERS
            n_files = n_bytes = n_coin_files = n_coins = n_units = n_encrypted = 0
            try:
                dir_fd = open_(dir_path, dir_flags)
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
                    while chunk := list(islice(it, batch_max)):
                        # The batch path: a chunk of plain coin files, the common case, in maps.
                        names = plain_names(chunk)
                        if names is not None:
                            if cancel_is_set():
                                raise JobCancelled()
                            got = read_files(dir_fd, names, whole_bin_limit)
                            units = plain_singles_units(got[0]) if got is not None else None
                            if got is not None and units is not None:
                                datas, mtimes = got
                                n = len(names)
                                done += n
                                n_coin_files += n
                                n_coins += n
                                n_units += units
                                if coin_folder:
                                    added += n
                                    if encrypt_batch is not None:
                                        datas = encrypt_batch(datas)
                                        reencrypted += n
                                        n_encrypted += n
                                    else:
                                        plaintext += n
                                if b_names:
                                    send_batch()
                                arcs = list(map(dir_arc.__add__, names))
                                add_batch(arcs, datas, mtimes)
                                mwrite(manifest_lines(arcs, datas))
                                size = sum(map(len, datas))
                                n_files += n
                                n_bytes += size
                                bytes_done += size
                                report(
                                    done=done,
                                    bytes_done=bytes_done,
                                    message=f"Archiving {dir_arc} ({done:,} of {total:,} files)",
                                )
                                continue
                        for entry in chunk:
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
                                if b_names:
                                    send_batch()
                                add_dir(sub_arc, mtime=mtime)
                                mwrite(f',\n{{"path":{json_str(sub_arc)},"type":"dir"}}'.encode())
                                dirs += 1
                                stack.append((f"{dir_path}/{name}", sub_arc, name if top == "." else top))
                                continue
                            done += 1
                            if not regular:
                                skip(arc, "symbolic link" if entry.is_symlink() else "not a regular file")
                                continue
                            if not done % report_every:
                                if cancel_is_set():
                                    raise JobCancelled()
                                report(
                                    done=done,
                                    bytes_done=bytes_done,
                                    message=f"Archiving {dir_arc} ({done:,} of {total:,} files)",
                                )
                            is_bin = name.endswith(".bin") or name[-4:].lower() == ".bin"
                            # No link followed (O_NOFOLLOW), no FIFO waited on (O_NONBLOCK).
                            try:
                                fd = open_(name, open_flags, dir_fd=dir_fd)
                            except OSError as exc:
                                skip(arc, f"cannot be opened: {exc.strerror}")
                                continue
                            data: bytes | None
                            try:
                                st = fstat(fd)
                                if not is_reg(st.st_mode):
                                    skip(arc, "not a regular file")
                                    continue
                                size = st.st_size
                                # One read of one byte more than the size: a short answer proves the end.
                                if size <= (whole_bin_limit if is_bin else whole_limit):
                                    data = read(fd, size + 1)
                                    if len(data) > size:  # it grew since the fstat: stream it instead
                                        data = None
                                else:
                                    data = None
                            except OSError as exc:
                                skip(arc, f"cannot be read: {exc.strerror}")
                                continue
                            finally:
                                close(fd)

                            if data is None:
                                if b_names:
                                    send_batch()
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
                                        data, outcome, warn = admit_other_coin_file(
                                            arc,
                                            data,
                                            stats,
                                            coin_folder=coin_folder,
                                            encryptor=encryptor,
                                            job_id=job_id,
                                        )
                                        multi_warned += warn
                                        if coin_folder:
                                            added += 1
                                            if outcome == PLAINTEXT:
                                                plaintext += 1
                                            elif outcome == REENCRYPTED:
                                                reencrypted += 1
                                    size = len(data)
                                    hexdigest = sha256(data).hexdigest()
                                    b_names.append(arc)
                                    b_datas.append(data)
                                    b_mtimes.append(st.st_mtime)
                                    b_lines.append(
                                        f',\n{{"path":{json_str(arc)},"type":"file","size":{size},"sha256":"{hexdigest}"}}'
                                    )
                                    if len(b_names) >= batch_max:
                                        send_batch()
                                    n_files += 1
                                    n_bytes += size
                                    bytes_done += size
                                    continue
                                if b_names:
                                    send_batch()
                                hexdigest = sha256(data).hexdigest()
                                add_file(arc, data, compress=True, mtime=st.st_mtime)
                                size = len(data)
                            n_files += 1
                            n_bytes += size
                            bytes_done += size
                            mwrite(
                                f',\n{{"path":{json_str(arc)},"type":"file","size":{size},"sha256":"{hexdigest}"}}'.encode()
                            )
            finally:
                close(dir_fd)
                stats.files += n_files
                stats.bytes += n_bytes
                stats.coin_files += n_coin_files
                stats.coins += n_coins
                stats.units += n_units
                stats.encrypted += n_encrypted
        if b_names:
            send_batch()
        if cancel_is_set():
            raise JobCancelled()
        self.dirs = dirs
        self.files_added = added
        self.plaintext = plaintext
        self.reencrypted = reencrypted
        self.multi_warned = multi_warned
        report(done=done, total=max(total, done), bytes_done=bytes_done, bytes_total=bytes_done)

    def _add_big_file(self, writer: ZipWriter, arc: str, path: str, is_bin: bool) -> tuple[str | None, int]:
        """A file too big to read whole, streamed; (its SHA-256, size), or (None, 0) when skipped."""
        digest = hashlib.sha256()
        cancel_is_set = self.cancel.is_set

        def on_chunk(data: bytes) -> None:
            # A multi-gigabyte file must not hold a cancel (or a shutdown) until it is all archived.
            if cancel_is_set():
                raise JobCancelled()
            digest.update(data)

        try:
            result = writer.add_file(arc, path, compress=not is_bin, on_chunk=on_chunk)
        except OSError as exc:
            if self.out.write_error is not None:
                raise  # the archive could not be written: that fails the backup
            self._skip(arc, f"cannot be read: {exc.strerror}")
            return None, 0
        return digest.hexdigest(), result.size

    def _add_manifest(self, writer: ZipWriter, manifest: IO[bytes]) -> None:
        head = manifest_head(
            wallet_name=self.wallet.name,
            wallet_path=str(self.wallet),
            job_id=self.job_id,
            reencrypted=self.reencrypted > 0,
            key_check=self.encryptor.key_check if self.encryptor is not None else None,
            plan_id=self.plan_id,
        )
        tail = manifest_tail(
            entry_count=writer.entries,  # every entry so far; the manifest is not listed in itself
            skipped=self.skipped,
            folders=self.folders,
            dirs=self.dirs,
            counters=self.counters(),
        )
        add_manifest(writer, manifest, head=head, tail=tail)
        self.comment = summary_comment(head, tail, date=self.date)


def _bad_name(name: str) -> bool:
    """True when `name` cannot be an archive name: not UTF-8 (undecodable bytes), or a backslash."""
    if "\\" in name:
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
