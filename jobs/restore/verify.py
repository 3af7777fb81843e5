"""The verify job: a backup archive read back entry by entry and compared with its manifest.

`verify_zip` reads every entry back (headers, sizes, CRC-32), then a second pass hashes every entry
and compares it with the manifest. Everything found is a problem in the answer (``ok`` false); a
file that is no ZIP at all is a problem too, not an error.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.backup.manifest import MANIFEST_NAME
from jobs.context import JobContext, JobView
from jobs.models import JobCancelled, JobFailed
from jobs.restore.archive_checks import (
    READ_CHUNK,
    READ_ERRORS,
    REPORT_EVERY,
    Manifest,
    ManifestError,
    Report,
    entry_problems,
    read_manifest,
)
from jobs.restore.plan import required_zip_path, resolve_zip_path
from jobs.services import Services
from jobs.shape import Params
from jobs.zip.readback import verify_zip

VERIFY_COMMAND = "backup-verify"
#: problems listed in a verify answer; the first ones say enough
_MAX_PROBLEMS = 1000


@dataclass(frozen=True, slots=True)
class VerifyPlan:
    """A verify that passed the request's checks: the canonical path of an existing file."""

    zip_path: Path

    @property
    def lane(self) -> str:
        return str(self.zip_path)

    def params(self) -> dict[str, str]:
        return {"zip_path": str(self.zip_path)}

    @classmethod
    def from_job(cls, job: JobView) -> VerifyPlan:
        return cls(Path(job.params["zip_path"]))


def plan_verify(params: Params, services: Services) -> VerifyPlan:
    """/api/wallets/backup/verify: zip_path present, canonical, an existing file (blocking)."""
    return VerifyPlan(resolve_zip_path(required_zip_path(params)))


async def run_verify(plan: VerifyPlan, ctx: JobContext) -> dict[str, Any]:
    zip_path = plan.zip_path
    if not await ctx.run_blocking(zip_path.is_file):
        raise JobFailed.plain(404, f"Backup file not found: {zip_path}")
    before = await ctx.run_blocking(os.stat, zip_path)
    body = await ctx.run_blocking(verify_archive, zip_path, cancel=ctx.cancel_event, report=ctx.report)
    body["job_id"] = ctx.job.id
    if body.get("ok"):
        await ctx.services.archive_verified(str(zip_path), before.st_size, before.st_mtime_ns)
    return body


def verify_archive(zip_path: Path, *, cancel: threading.Event, report: Report) -> dict[str, Any]:
    """Check a backup: every entry's CRC-32 read back, then every entry against the manifest."""
    problems: list[dict[str, str]] = []

    def add(path: str, problem: str) -> None:
        if len(problems) < _MAX_PROBLEMS:
            problems.append({"path": path, "problem": problem})

    report(message="Reading the archive")
    try:
        checked, zip_problems = verify_zip(
            zip_path, on_entry=_progress(report, "Checking CRC-32"), should_stop=cancel.is_set
        )
    except OSError as exc:  # nothing was verified: an error, not a problem of the archive
        raise JobFailed.plain(400, f"The backup file cannot be read: {exc.strerror}") from None
    if cancel.is_set():
        raise JobCancelled()
    for found in zip_problems:
        add(found.path, found.problem)
    manifest_found = False
    wallet_name = None
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        if not problems:
            add("", f"not a valid ZIP archive: {exc}")
    else:
        with archive:
            infos = archive.infolist()
            manifest_found = MANIFEST_NAME in archive.NameToInfo
            try:
                manifest: Manifest | None = read_manifest(archive)
            except ManifestError as exc:
                manifest = None
                add(MANIFEST_NAME, str(exc))
            if manifest is not None:
                wallet_name = manifest.wallet_name
            root = manifest.root if manifest is not None else None
            for path, problem in entry_problems(infos, manifest, root=root):
                add(path, problem)
            if manifest is not None:
                damaged = {found.path for found in zip_problems}
                _check_hashes(archive, infos, manifest, damaged, add, cancel, report)
    body: dict[str, Any] = {
        "command": VERIFY_COMMAND,
        "success": True,
        "ok": not problems,
        "zip_path": str(zip_path),
        "entries_checked": checked,
        "manifest_found": manifest_found,
        "wallet_name": wallet_name,
        "problems": problems,
    }
    return body


def _progress(report: Report, what: str) -> Callable[[int], None]:
    def on_entry(n: int) -> None:
        if n % 1024 == 0:
            report(message=f"{what} ({n:,} entries)")

    return on_entry


def _check_hashes(
    archive: zipfile.ZipFile,
    infos: list[zipfile.ZipInfo],
    manifest: Manifest,
    damaged: set[str],
    add: Callable[[str, str], None],
    cancel: threading.Event,
    report: Report,
) -> None:
    """Hash every listed file the CRC pass found sound and compare it with the manifest."""
    files = [
        info for info in infos
        if not info.is_dir() and info.orig_filename in manifest.entries and info.orig_filename not in damaged
    ]  # fmt: skip
    report(done=0, total=len(files), bytes_done=0, bytes_total=sum(info.file_size for info in files))
    hashed = bytes_done = 0
    for info in files:
        if cancel.is_set():
            raise JobCancelled()
        listed = manifest.entries[info.orig_filename]
        if listed is None or info.file_size != listed[0]:
            continue  # already reported by entry_problems
        digest = hashlib.sha256()
        try:
            with archive.open(info) as src:
                while chunk := src.read(READ_CHUNK):
                    digest.update(chunk)
        except READ_ERRORS as exc:
            add(info.orig_filename, f"cannot be read: {exc}")
            continue
        if digest.hexdigest() != listed[1]:
            add(info.orig_filename, "SHA-256 differs from the manifest")
        hashed += 1
        bytes_done += info.file_size
        if hashed % REPORT_EVERY == 0:
            report(done=hashed, bytes_done=bytes_done, message=f"Comparing with the manifest ({hashed:,} files)")
    report(done=hashed, bytes_done=bytes_done)
