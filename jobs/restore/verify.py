"""The verify job: a backup archive read back in one sequential pass and compared with its manifest.

It drives the same checker as restore (jobs/restore/checker.py), so the two never disagree: every
structural fault, unsafe name, duplicate, collision, CRC-32 and SHA-256 mismatch and manifest
disagreement restore refuses is a problem here. Everything found is a problem in the answer (``ok``
false); a file that is no ZIP at all is a problem too, not an error.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.context import JobContext, JobView
from jobs.models import JobCancelled, JobFailed
from jobs.restore.archive_checks import Report
from jobs.restore.checker import BackupCheck, CheckStopped
from jobs.restore.plan import required_zip_path, resolve_zip_path
from jobs.services import Services
from jobs.shape import Params
from jobs.zip.reader import ArchiveError, ZipReader

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
    """Check a backup: structure, names, every entry's CRC-32 and SHA-256 against the manifest."""
    problems: list[dict[str, str]] = []

    def add(path: str, problem: str, kind: str = "") -> None:
        if len(problems) < _MAX_PROBLEMS:
            problems.append({"path": path, "problem": problem})

    body: dict[str, Any] = {
        "command": VERIFY_COMMAND,
        "success": True,
        "ok": False,
        "zip_path": str(zip_path),
        "entries_checked": 0,
        "manifest_found": False,
        "wallet_name": None,
        "problems": problems,
    }
    report(message="Reading the archive's directory")
    try:
        reader = ZipReader(zip_path)
    except OSError as exc:  # nothing was verified: an error, not a problem of the archive
        raise JobFailed.plain(400, f"The backup file cannot be read: {exc.strerror}") from None
    except ArchiveError as exc:
        add(exc.path, exc.problem)
        return body
    with reader:
        check = BackupCheck(reader, add, cancel)
        try:
            _read_all(check, report)
            body["wallet_name"] = check.root[:-1] if check.root else None
        except CheckStopped:
            pass
        except OSError as exc:
            add("", f"read error: {exc}")
        body["entries_checked"] = check.checked
        body["manifest_found"] = check.manifest_found
    if cancel.is_set():
        raise JobCancelled()
    body["ok"] = not problems
    return body


def _read_all(check: BackupCheck, report: Report) -> None:
    """Every entry through the checker in one pass; progress in entries of the end record's count."""
    total = check.reader.count
    report(phase="verifying", done=0, total=total, bytes_done=0, bytes_total=check.reader.cd_offset,
           message=f"Verifying (0 of {total:,} entries)")  # fmt: skip

    def step() -> None:
        done = check.checked
        report(done=done, bytes_done=check.position, message=f"Verifying ({done:,} of {total:,} entries)")

    check.check_all(step)
    report(done=check.checked, bytes_done=check.reader.cd_offset,
           message=f"Verified ({check.checked:,} of {total:,} entries)")  # fmt: skip
