"""A backup a restart interrupted, settled by what is on disk; and where backups leave temporary names.

The archive is written as ``.cloudcoin-backup-<job id>.tmp``, verified, then hard-linked to its final
name before the temporary name goes. So after a crash:

- the temporary name is there with a second link: the final name was claimed, the archive is complete
  (the link is made only after the read-back check) -> completed, the temporary name removed;
- the temporary name is there alone: half written -> removed, failed;
- it is gone but a ``CloudCoin-Wallet-Backup_*.zip`` written since the job was made carries the
  job's id in its manifest: the backup had finished (or took the placeholder path of a file system without
  hard links) -> completed;
- else nothing was written -> failed.

A completed one is remembered in BackupPlaces.txt as a finished backup would have been.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.wallet.config import Config
from jobs.backup.backup import remember_backup_place, remove_temporary_files
from jobs.backup.checks import SUCCESS_MESSAGE, temp_name
from jobs.backup.manifest import MANIFEST_NAME
from jobs.models import Job
from jobs.shape import recovered

log = logging.getLogger(__name__)

ARCHIVE_PREFIX = "CloudCoin-Wallet-Backup_"
#: how much of the manifest is read for its job id (it is in the head, the first few hundred bytes)
MANIFEST_HEAD_BYTES = 4096
#: a final archive's modification time may lag the job's start by clock granularity
CLOCK_SLACK_S = 2.0


def cleanup_backup(config: Config, job: Job) -> dict[str, Any] | None:
    """The restart hook: the finished archive's result, or None once the half-written one is removed."""
    destination = job.params.get("destination")
    if not isinstance(destination, str) or not os.path.isabs(destination):
        return None
    folder = Path(destination)
    final = _finished_archive(folder, job)
    remove_temporary_files(job)
    if final is None:
        return None
    try:
        remember_backup_place(config.backup_places_path, destination)
    except OSError as exc:
        log.warning("cannot update %s: %s", config.backup_places_path, exc)
    log.warning("backup job %s had finished before the restart: %s", job.id, final)
    wallet = Path(job.wallet_path)
    return recovered(
        {
            "command": "wallet-backup",
            "success": True,
            "wallet_path": str(wallet),
            "wallet_name": wallet.name,
            "zip_path": str(final),
            "destination": destination,
            "message": SUCCESS_MESSAGE,
            "job_id": job.id,
            "filename": final.name,
            "zip_size": final.stat().st_size,
        }
    )


def backup_places(config: Config) -> list[Path]:
    """The destinations of BackupPlaces.txt, where a backup's temporary archive may have been left."""
    try:
        text = config.backup_places_path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    return [Path(line.strip()) for line in text.splitlines() if os.path.isabs(line.strip())]


def _finished_archive(folder: Path, job: Job) -> Path | None:
    try:
        tmp = os.lstat(folder / temp_name(job.id))
    except OSError:
        tmp = None
    if tmp is not None:
        if tmp.st_nlink < 2:
            return None
        for path in _archives(folder):
            try:
                if os.path.samestat(tmp, os.lstat(path)):
                    return path
            except OSError:
                continue
        return None
    # (not only a started job: its "running" state may not have reached the store before the crash;
    # the manifest's job id is what decides)
    since = (job.started_at or job.created_at).timestamp() - CLOCK_SLACK_S
    for path in _archives(folder):
        try:
            if os.lstat(path).st_mtime >= since and _manifest_job_id(path) == job.id:
                return path
        except OSError:
            continue
    return None


def _archives(folder: Path) -> Iterator[Path]:
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in sorted(names):
        if name.startswith(ARCHIVE_PREFIX) and name.endswith(".zip"):
            yield folder / name


def _manifest_job_id(path: Path) -> str | None:
    """The job id in an archive's manifest head, reading only its first bytes."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(MANIFEST_NAME) as manifest:
            head = manifest.read(MANIFEST_HEAD_BYTES).decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile, ValueError, EOFError):
        return None
    marker = '"job_id":'
    at = head.find(marker)
    if at < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(head[at + len(marker) :].lstrip())
    except ValueError:
        return None
    return value if isinstance(value, str) else None
