"""The backup kind: `plan_backup` (the endpoint's checks), `run_backup` (archive, verify, name); its
`cleanup_backup` and `backup_places` live in jobs/backup/recovery.py.

`plan_backup` runs api.md's checks in their order before any job exists (jobs/backup/checks.py).
The run is blocking work on the app's thread pool (`write_backup`):

1. the destination is checked again (a symlink may have been swapped since the request) and its
   last component created, mode 0700 (jobs/backup/checks.py);
2. a cheap `scandir` pass counts the files (d_type only, no stat: progress needs a total, and a
   stat per coin would cost a fifth of the whole backup; so `bytes_total` is known only at the end);
3. the wallet is walked into ``.cloudcoin-backup-<job id>.tmp`` in the destination, the manifest
   last (jobs/backup/archive.py, jobs/backup/manifest.py);
4. the archive, closed with a comment naming wallet and date, is read back with the reader restore
   and verify use (`ZipReader`: structure, local headers, every CRC) while `SyncAndHash` fsyncs it
   and computes its SHA-256 in a thread of its own (jobs/backup/output.py); both must end well
   before the next step;
5. the final name ``CloudCoin-Wallet-Backup_<wallet>_<YYYY-MM-DD>[_N].zip`` is claimed with
   `os.link`, which fails rather than overwrite, so two backups on one day never race; the
   temporary name is removed and the directory fsynced.

A cancel (checked between files) or any failure removes the temporary file; nothing else is ever
left behind. After a crash `cleanup_backup` (jobs/backup/recovery.py) tells a finished archive from
a half-written one, which `remove_temporary_files` deletes.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from app.wallet.coinfolders import is_wallet_folder
from app.wallet.config import Config
from app.wallet.errors import ApiError, WalletNotFound
from app.wallet.paths import canonical
from app.wallet.storage import atomic_write_bytes, fsync_dir
from jobs.backup.archive import Archiver, Report, count_entries
from jobs.backup.checks import (
    MISSING_DESTINATION,
    NO_PARENT,
    SUCCESS_MESSAGE,
    ZIP_FAILED,
    check_destination_place,
    claim_final_name,
    make_destination,
    resolve_destination,
    temp_name,
    wallet_not_found,
)
from jobs.backup.output import ArchiveFile, SyncAndHash
from jobs.context import JobContext, JobView
from jobs.models import Job, JobCancelled, JobFailed
from jobs.services import Services
from jobs.shape import Params
from jobs.zip.reader import ArchiveError, EntryDamaged, ZipReader

log = logging.getLogger(__name__)

#: a write failed because the destination has no room: a full disk, a quota, a file-size limit
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: the read-back stops at this many damaged entries (one fails the backup; these are logged)
_MAX_READ_BACK_PROBLEMS = 10
#: the read-back looks at a cancel and reports progress once per this many entries (plus one)
_READ_BACK_EVERY = 4095
#: BackupPlaces.txt keeps this many destinations (storage.md)
MAX_BACKUP_PLACES = 10


@dataclass(frozen=True, slots=True)
class BackupPlan:
    """A backup that passed the endpoint's checks: which wallet, and the canonical destination."""

    wallet_path: Path
    destination: Path

    @property
    def lane(self) -> str:
        return str(self.wallet_path)

    def params(self) -> dict[str, str]:
        return {"destination": str(self.destination)}

    @classmethod
    def from_job(cls, job: JobView) -> BackupPlan:
        # The job's wallet path, not the request's: a rename queued before this backup may have moved it.
        return cls(Path(job.wallet_path), Path(str(job.params["destination"])))


def plan_backup(params: Params, services: Services) -> BackupPlan:
    """The endpoint's checks in api.md's order, each raising the seed's exact error (blocking: stats)."""
    raw = params.get("destination", "")
    if not raw.strip():
        raise MISSING_DESTINATION
    destination = resolve_destination(raw, data_dir=canonical(services.config.data_dir))
    try:
        wallet = services.wallets.find(params.get("wallet_path"))
    except WalletNotFound as exc:
        raise wallet_not_found(exc.path) from None
    if not wallet.online:
        raise wallet_not_found(params.get("wallet_path") or str(wallet.path))
    check_destination_place(destination, wallet.path)
    return BackupPlan(wallet.path, destination)


async def run_backup(plan: BackupPlan, ctx: JobContext) -> dict[str, Any]:
    """Re-check the wallet, run `write_backup` on the pool, remember the place."""
    started = time.monotonic()
    config, wallets = ctx.services.config, ctx.services.wallets
    try:
        wallet = await wallets.resolve(str(plan.wallet_path))
    except WalletNotFound:
        raise JobFailed.from_error(wallet_not_found(str(plan.wallet_path))) from None
    run = BackupRun(
        job_id=ctx.job.id,
        wallet_path=wallet.path,
        destination=plan.destination,
        data_dir=canonical(config.data_dir),
        key=ctx.services.keyring.key,  # the key set now; a logout mid-backup does not change this run
        date=time.strftime("%Y-%m-%d"),
    )
    result = await ctx.run_blocking(write_backup, run, cancel=ctx.cancel_event, report=ctx.report)
    await ctx.run_blocking(_remember_place, config, result["destination"])
    result["duration_ms"] = round((time.monotonic() - started) * 1000)
    return result


def remove_temporary_files(job: Job) -> None:
    """Delete the half-written archive a crash left in the job's destination."""
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
class BackupRun:
    """Everything `write_backup` needs, fixed when the job starts running."""

    job_id: str
    wallet_path: Path
    destination: Path
    data_dir: Path
    key: bytes | None
    date: str  # YYYY-MM-DD, local time
    plan_id: str | None = None  # set by a plan run: recorded in the manifest and the summary
    #: False for a plan run: a missing destination is never created (an empty mount point is no backup)
    create_destination: bool = True


#: BackupPlaces.txt is rewritten by one backup at a time (two may finish together).
_places_lock = threading.Lock()


def _remember_place(config: Config, destination: str) -> None:
    try:
        with _places_lock:
            remember_backup_place(config.backup_places_path, destination)
    except OSError as exc:
        # The archive is complete and verified; a full Client_Data must not turn it into a failure.
        log.warning("cannot update %s: %s", config.backup_places_path, exc)


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


def write_backup(plan: BackupRun, *, cancel: threading.Event, report: Report) -> dict[str, Any]:
    """Write, verify and name the archive of `plan.wallet_path`; the body of a successful backup."""
    wallet = plan.wallet_path
    if not is_wallet_folder(wallet):
        raise JobFailed.from_error(wallet_not_found(str(wallet)))
    try:
        destination = resolve_destination(str(plan.destination), data_dir=plan.data_dir)
        check_destination_place(destination, wallet)
    except ApiError as error:
        raise JobFailed.from_error(error) from None
    if plan.create_destination:
        created = make_destination(destination)
    elif not os.path.isdir(destination):
        raise JobFailed.from_error(NO_PARENT)
    else:
        created = False
    try:
        return _archive_into(plan, wallet, destination, cancel=cancel, report=report)
    except JobFailed:
        if created:
            _remove_created(destination, plan.job_id)
        raise


def _remove_created(destination: Path, job_id: str) -> None:
    """A failed backup leaves nothing, not even the folder it created (when it is empty, as it then is)."""
    try:
        os.rmdir(destination)
        fsync_dir(destination.parent)
    except OSError as exc:
        log.warning("backup job %s: cannot remove the folder it created, %s: %s", job_id, destination, exc)
        return
    log.info("backup job %s: removed the folder it created, %s", job_id, destination)


def _archive_into(
    plan: BackupRun, wallet: Path, destination: Path, *, cancel: threading.Event, report: Report
) -> dict[str, Any]:
    if cancel.is_set():
        raise JobCancelled()
    total = count_entries(wallet, cancel)
    report(
        phase="archiving", span=(0, 85), done=0, total=total, message=f"Archiving {wallet.name} (0 of {total:,} files)"
    )
    tmp = destination / temp_name(plan.job_id)
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.error("backup job %s: cannot create %s: %s", plan.job_id, tmp, exc)
        raise JobFailed.from_error(ZIP_FAILED) from None
    final: Path | None = None
    try:
        os.fchmod(fd, 0o600)
        out = ArchiveFile(fd)
        archiver = Archiver(
            wallet=wallet, job_id=plan.job_id, date=plan.date, key=plan.key, spool_dir=destination,
            out=out, cancel=cancel, report=report, total=total, plan_id=plan.plan_id,
        )  # fmt: skip
        archiver.archive()
        finisher = SyncAndHash(fd)  # fsync and SHA-256 on the second core while the entries are read back
        try:
            zip_size = os.fstat(fd).st_size
            report(phase="verifying", span=(85, 100), done=0, total=archiver.entries,
                   message=f"Verifying (0 of {archiver.entries:,} entries)")  # fmt: skip
            _verify(tmp, archiver.entries, job_id=plan.job_id, cancel=cancel, report=report)
        finally:
            finisher.join()  # before `fd` is closed, whatever happened
        zip_sha256 = finisher.hexdigest()  # raises the fsync's error
        report(done=archiver.entries, bytes_done=zip_size, bytes_total=zip_size,
               message=f"Verified ({archiver.entries:,} of {archiver.entries:,} entries)")  # fmt: skip
        if cancel.is_set():
            raise JobCancelled()
        final = claim_final_name(tmp, destination, wallet.name, plan.date)
    except (JobCancelled, JobFailed):
        raise
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            log.error(
                "backup job %s of %s failed: the destination %s is full (%s)", plan.job_id, wallet, destination,
                exc.strerror,
            )  # fmt: skip
        else:
            log.error("backup job %s of %s failed: %s", plan.job_id, wallet, exc, exc_info=True)
        raise JobFailed.from_error(ZIP_FAILED) from None
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
    return {
        "command": "wallet-backup",
        "success": True,
        "wallet_path": str(wallet),
        "wallet_name": wallet.name,
        "zip_path": str(final),
        "destination": str(destination),
        **archiver.counters(),
        "message": SUCCESS_MESSAGE,
        "job_id": plan.job_id,
        "filename": final.name,
        "zip_size": zip_size,
        "zip_sha256": zip_sha256,
        "entries": archiver.entries,
    }


def _verify(path: Path, entries: int, *, job_id: str, cancel: threading.Event, report: Report) -> None:
    """The backup's read-back (`read_back`): any problem, or an entry count that is not the one
    written, fails the backup."""

    def progress(checked: int) -> None:
        report(done=checked, message=f"Verifying ({checked:,} of {entries:,} entries)")

    checked, problems = read_back(path, cancel, progress)
    if problems or checked != entries:
        for name, problem in problems:
            log.error("backup job %s: verification: %s: %s", job_id, name, problem)
        raise OSError(errno.EIO, f"archive failed verification ({len(problems)} problems, {checked} entries)")


def read_back(
    path: Path, cancel: threading.Event, progress: Callable[[int], None] | None = None
) -> tuple[int, list[tuple[str, str]]]:
    """Read every entry back with the reader restore and verify use (jobs/zip/reader.py): the end
    records, every directory record, local header, size and CRC-32. (entries read, [(entry,
    problem)]), at most `_MAX_READ_BACK_PROBLEMS`; a broken structure is the last problem. An
    archive this reader passes is one a restore can read. JobCancelled on a cancel, looked for
    every 4,096 entries (when `progress` is told too) and every 1 MiB of a big entry."""
    checked = 0
    problems: list[tuple[str, str]] = []
    try:
        with ZipReader(path) as reader:
            for row in reader.rows():
                checked += 1
                data, problem = row[9], row[10]
                if problem is None and data is not None and type(data) is not bytes:
                    try:  # a big entry comes in chunks, its CRC-32 checked after the last one
                        for _ in cast("Iterator[bytes]", data):
                            if cancel.is_set():  # a file of gigabytes must not hold a cancel
                                raise JobCancelled()
                    except EntryDamaged as exc:
                        problem = str(exc)
                if problem is not None:
                    problems.append((row[0].decode("utf-8", "replace"), problem))
                    if len(problems) >= _MAX_READ_BACK_PROBLEMS:
                        break
                if not checked & _READ_BACK_EVERY:
                    if cancel.is_set():
                        raise JobCancelled()
                    if progress is not None:
                        progress(checked)
    except ArchiveError as exc:
        problems.append((exc.path, exc.problem))
    if cancel.is_set():
        raise JobCancelled()
    return checked, problems
