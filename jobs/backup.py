"""The backup job: check the destination, archive the wallet, verify, name the ZIP; restart cleanup.

One run, all of it blocking work on the app's thread pool (`write_backup`):

1. the destination is checked again (a symlink may have been swapped since the request) and its
   last component created, mode 0700 (jobs/backup_checks.py);
2. a cheap `scandir` pass counts the files (d_type only, no stat: progress needs a total, and a
   stat per coin would cost a fifth of the whole backup; so `bytes_total` is known only at the end);
3. the wallet is walked into ``.cloudcoin-backup-<job id>.tmp`` in the destination, the manifest
   last (jobs/backup_archive.py, jobs/backup_manifest.py), while `HashingFile` hashes the archive
   on its way to the disk (jobs/backup_output.py);
4. the archive, closed with a comment naming wallet and date, is fsynced and read back with
   `verify_zip` (every CRC);
5. the final name ``CloudCoin-Wallet-Backup_<wallet>_<YYYY-MM-DD>[_N].zip`` is claimed with
   `os.link`, which fails rather than overwrite, so two backups on one day never race; the
   temporary name is removed and the directory fsynced.

A cancel (checked between files) or any failure removes the temporary file; nothing else is ever
left behind. After a crash `remove_temporary_files` (the runner's cleanup hook) deletes the
half-written archive.

The names other modules import from here stay here (`__all__`): the destination checks and error
bodies of the endpoint, the manifest constants and `COIN_FOLDERS` of the restore side, and what
moved out of this module (`HashingFile`, `CoinEncryptor`, `plain_single_units`). A test that patches
one of those patches it in the module that reads it.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import Config
from app.crypto import CoinEncryptor
from app.errors import ApiError, WalletNotFound
from app.keyring import KeyRing
from app.paths import canonical
from app.storage import atomic_write_bytes, fsync_dir
from app.wallets import WalletService, is_wallet_folder
from jobs.backup_archive import Archiver, Report, count_entries
from jobs.backup_coins import COIN_FOLDERS, plain_single_units
from jobs.backup_checks import (
    MISSING_DESTINATION,
    SUCCESS_MESSAGE,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    ZIP_FAILED,
    check_destination_place,
    claim_final_name,
    failed,
    make_destination,
    resolve_destination,
    temp_name,
    wallet_not_found,
)
from jobs.backup_manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION
from jobs.backup_output import HashingFile
from jobs.models import Job, JobCancelled, JobFailed, JobKind
from jobs.runner import JobContext, JobRunner
from jobs.zipstream import verify_zip

__all__ = [
    "COIN_FOLDERS",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "MAX_BACKUP_PLACES",
    "MISSING_DESTINATION",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "ZIP_FAILED",
    "BackupJob",
    "BackupPlan",
    "CoinEncryptor",
    "HashingFile",
    "check_destination_place",
    "count_entries",
    "plain_single_units",
    "register",
    "remember_backup_place",
    "remove_temporary_files",
    "resolve_destination",
    "temp_name",
    "wallet_not_found",
    "write_backup",
]

log = logging.getLogger(__name__)

#: BackupPlaces.txt keeps this many destinations (storage.md)
MAX_BACKUP_PLACES = 10


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
    plan_id: str | None = None  # set by a plan run: recorded in the manifest and the summary


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
            raise failed(wallet_not_found(wallet_path)) from None
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


def write_backup(plan: BackupPlan, *, cancel: threading.Event, report: Report) -> dict[str, Any]:
    """Write, verify and name the archive of `plan.wallet_path`; the body of a successful backup."""
    wallet = plan.wallet_path
    if not is_wallet_folder(wallet):
        raise failed(wallet_not_found(str(wallet)))
    try:
        destination = resolve_destination(str(plan.destination), data_dir=plan.data_dir)
        check_destination_place(destination, wallet)
    except ApiError as error:
        raise failed(error) from None
    make_destination(destination)
    if cancel.is_set():
        raise JobCancelled()
    total = count_entries(wallet, cancel)
    report(done=0, total=total, message=f"Archiving {wallet.name} (0 of {total:,} files)")
    tmp = destination / temp_name(plan.job_id)
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.error("backup job %s: cannot create %s: %s", plan.job_id, tmp, exc)
        raise failed(ZIP_FAILED) from None
    final: Path | None = None
    try:
        os.fchmod(fd, 0o600)
        out = HashingFile(fd)
        archiver = Archiver(
            wallet=wallet, job_id=plan.job_id, date=plan.date, key=plan.key, spool_dir=destination,
            out=out, cancel=cancel, report=report, total=total, plan_id=plan.plan_id,
        )  # fmt: skip
        archiver.archive()
        os.fsync(fd)
        report(message=f"Verifying {archiver.entries:,} entries")
        _verify(tmp, archiver.entries, job_id=plan.job_id, cancel=cancel, report=report)
        zip_sha256 = out.hexdigest()
        zip_size = os.fstat(fd).st_size
        if cancel.is_set():
            raise JobCancelled()
        final = claim_final_name(tmp, destination, wallet.name, plan.date)
    except (JobCancelled, JobFailed):
        raise
    except (OSError, ValueError) as exc:
        log.error("backup job %s of %s failed: %s", plan.job_id, wallet, exc, exc_info=True)
        raise failed(ZIP_FAILED) from None
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
    """Read every entry back (CRC-32 and sizes); any problem fails the backup."""

    def on_entry(n: int) -> None:
        report(message=f"Verifying ({n:,} of {entries:,} entries)")

    checked, problems = verify_zip(path, on_entry=on_entry, on_entry_every=4096, should_stop=cancel.is_set)
    if cancel.is_set():
        raise JobCancelled()
    if problems or checked != entries:
        for problem in problems[:10]:
            log.error("backup job %s: verification: %s: %s", job_id, problem.path, problem.problem)
        raise OSError(errno.EIO, f"archive failed verification ({len(problems)} problems, {checked} entries)")
