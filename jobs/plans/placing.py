"""The blocking steps of a plan run after the archive is written: copies into the other destinations, and retention.

A copy goes to ``.cloudcoin-plan-<job id>.tmp`` in its destination, is fsynced, read back and
compared by SHA-256 with the verified original, and only then claims its final name (never
replacing a file). Retention lists the destination's archives by name, keeps those whose summary
and manifest both carry this plan's id, and deletes what the policy forgets — nothing else, and a
file that cannot be read is neither counted nor deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path

from app.wallet.storage import fsync_dir
from jobs.backup.checks import claim_final_name
from jobs.models import JobCancelled

from .archives import ArchiveUnreadable, is_archive_name, read_manifest_head, read_summary
from .models import read_time
from .retention import Archive, KeepPolicy, apply_policy

log = logging.getLogger(__name__)

COPY_PREFIX = ".cloudcoin-plan-"
COPY_SUFFIX = ".tmp"
_CHUNK = 1 << 20
#: what one copy_file_range call moves (a cancel is seen between two)
_KERNEL_CHUNK = 16 << 20
_OPEN_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class CopyFailed(Exception):
    """The copy could not be placed or did not match the original; the message says why."""


def copy_name(job_id: str) -> str:
    return f"{COPY_PREFIX}{job_id}{COPY_SUFFIX}"


def place_copy(
    source: Path,
    sha256: str,
    destination: Path,
    *,
    job_id: str,
    wallet_name: str,
    date: str,
    cancel: threading.Event,
    progress: Callable[[int], None],
    on_verify: Callable[[], None] = lambda: None,
) -> Path:
    """Copy the verified archive into `destination` under its own final name; that name."""
    if not destination.is_dir():
        raise CopyFailed("Destination directory does not exist")
    tmp = destination / copy_name(job_id)
    try:
        src = os.open(source, _OPEN_READ)
    except OSError as exc:
        raise CopyFailed(f"Cannot read the archive to copy: {exc.strerror}") from None
    try:
        try:
            dst = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CopyFailed(f"Cannot write to the destination: {exc.strerror}") from None
        try:
            os.fchmod(dst, 0o600)
            _copy(src, dst, cancel, progress)
            os.fsync(dst)
            on_verify()
            if _hash_fd(dst, cancel) != sha256:
                raise CopyFailed("The copy does not match the verified archive (SHA-256)")
        except OSError as exc:
            raise CopyFailed(f"Cannot write to the destination: {exc.strerror}") from None
        finally:
            os.close(dst)
        try:
            final = claim_final_name(tmp, destination, wallet_name, date)
        except OSError as exc:
            raise CopyFailed(f"Cannot name the copy: {exc.strerror}") from None
    finally:
        os.close(src)
        _remove(tmp)
    try:
        fsync_dir(destination)
    except OSError as exc:
        log.warning("cannot fsync %s: %s", destination, exc)
    return final


def _copy(src: int, dst: int, cancel: threading.Event, progress: Callable[[int], None]) -> None:
    """Copy in the kernel where it can (copy_file_range: no trip through Python's buffers), else read/write."""
    size = os.fstat(src).st_size
    copied = 0
    kernel = hasattr(os, "copy_file_range")
    while copied < size:
        if cancel.is_set():
            raise JobCancelled()
        if kernel:
            try:
                n = os.copy_file_range(src, dst, min(_KERNEL_CHUNK, size - copied))
            except OSError:  # another file system, an old kernel: fall back from where it stopped
                kernel = False
                os.lseek(src, copied, os.SEEK_SET)
                os.lseek(dst, copied, os.SEEK_SET)
                continue
        else:
            chunk = os.read(src, _CHUNK)
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst, view) :]
            n = len(chunk)
        if n == 0:
            break  # the source shrank: the hash check below fails the copy
        copied += n
        progress(copied)


def sha256_of(path: Path, cancel: threading.Event) -> str:
    fd = os.open(path, _OPEN_READ)
    try:
        return _hash_fd(fd, cancel)
    finally:
        os.close(fd)


def _hash_fd(fd: int, cancel: threading.Event) -> str:
    """The whole file's SHA-256, read back from the start (from the disk cache after the fsync)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        if cancel.is_set():
            raise JobCancelled()
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def own_archives(destination: Path, plan_id: str) -> list[Archive]:
    """This plan's archives in `destination`: by name, summary and manifest head, under any wallet name."""
    found = []
    try:
        entries = list(os.scandir(destination))
    except OSError as exc:
        log.warning("cannot list %s for retention: %s", destination, exc)
        return []
    for entry in entries:
        if not is_archive_name(entry.name):
            continue
        try:
            if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                continue
            summary = read_summary(entry.path)
            head = read_manifest_head(entry.path)
            created = read_time(head.get("created"))
        except (OSError, ArchiveUnreadable, ValueError):
            continue  # unreadable: never counted, never deleted
        if created is None or summary.get("plan_id") != plan_id or head.get("plan_id") != plan_id:
            continue
        found.append(Archive(created, entry.name))
    return found


def prune(
    destination: Path, *, plan_id: str, keep: KeepPolicy, zone: tzinfo, protect: str
) -> tuple[list[str], list[str]]:
    """Apply `keep` to this plan's archives in `destination`; (deleted paths, paths that could not be deleted)."""
    if keep.keeps_everything:
        return [], []
    _, forgotten = apply_policy(own_archives(destination, plan_id), keep, zone, protect=protect)
    pruned, failed = [], []
    for archive in forgotten:
        path = destination / archive.name
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", path, exc)
            failed.append(str(path))
            continue
        pruned.append(str(path))
    if pruned:
        try:
            fsync_dir(destination)
        except OSError:
            pass
    return pruned, failed


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)
