"""The rename job: plan and check, journal, rename the folder without replacing, rewrite the registry, roll back.

A rename changes two things that must agree, the wallet's folder name and its registry row. The job
keeps them in step:

1. holding ``WalletService.registry_lock``, it checks again what the endpoint checked (the state may
   have changed while the job was queued);
2. writes a journal entry ``Client_Data/jobs/rename-journal/<job id>.json`` (old path, new path),
   atomically, before it touches the folder;
3. forbids cancelling (from here on a cancel answers 409 and the job completes);
4. renames the folder inside its parent, refusing an existing target (``rename_noreplace``) and fsyncs
   the parent;
5. rewrites the registry atomically, the row's path changed in place (so the active wallet, the first
   row, stays active); if that fails, renames the folder back and fails with the seed's 500 and
   ``"rolled_back": true``;
6. removes the journal entry.

A crash between 2 and 6 leaves the entry behind; ``settle_journal`` (run at start, before the job
runner) makes folder and registry agree again: completed when the folder was already moved, rolled
back otherwise. No wallet is ever unregistered. The job itself is then settled by ``cleanup_rename``
from what the registry says: renamed (completed, its result marked "recovered") or not (failed).

A rename names one folder: a queued rename does not follow its wallet when another rename moves it
(the kind's ``follows_wallet`` is off), so when it runs the path it named is gone and it fails with
the seed's 404, showing the path as the client wrote it (ten renames of ``Small`` rename it once).

Check order (the seed's, with api.md's name rules placed where they are safe)::

    missing wallet_path -> missing new_name -> 404 path -> empty name -> same name
      -> invalid name -> 409 conflict

The name rules come before the conflict check so that the conflict check only ever looks at a
single name inside the wallet's own parent folder: ``../x`` or ``a/b`` never probes for folders
elsewhere, and a name refused by the rules is reported for that reason, not for a coincidental
conflict.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.wallet.config import Config
from app.wallet.errors import ApiError, missing_parameter
from app.wallet.paths import (
    Unresolvable,
    control_character,
    sibling_names,
    trimmed,
    wallet_argument,
    wallet_name_problem,
)
from app.wallet.registry import Registry, RegistryEntry, read_registry, write_registry
from app.wallet.storage import atomic_write_bytes, fsync_dir, occupied, rename_noreplace
from jobs.context import JobContext, JobView
from jobs.models import Job, JobFailed, format_time, utcnow
from jobs.services import Services
from jobs.shape import Params, recovered

log = logging.getLogger(__name__)

COMMAND = "wallet-rename"
SUCCESS_MESSAGE = "Wallet renamed successfully"
FS_FAILED = "Failed to rename wallet directory on filesystem"
CONFIG_FAILED = "Failed to save wallet configuration after rename"
JOURNAL_FOLDER = "rename-journal"
#: `settle_journal` leaves `<job id>.completed` here for a rename it completed; `cleanup_rename` reads it
SETTLED_FOLDER = "rename-settled"
COMPLETED_SUFFIX = ".completed"


# -- the checks (blocking: they read the registry and look at the disk) --------------------------------


@dataclass(frozen=True, slots=True)
class RenamePlan:
    """A rename that passed every check: the registered wallet's canonical path and where it goes."""

    old_path: Path
    new_path: Path
    #: wallet_path as the client wrote it, for the 404 when the wallet is no longer there
    given: str = ""

    @property
    def lane(self) -> str:
        return str(self.old_path)

    def params(self) -> dict[str, str]:
        return {
            "wallet_path": str(self.old_path),
            "new_name": self.new_path.name,
            "wallet_path_given": self.given or str(self.old_path),
        }

    @classmethod
    def from_job(cls, job: JobView) -> RenamePlan:
        # The path the rename named (it does not follow the wallet). The run checks everything again.
        old = Path(job.wallet_path)
        given = str(job.params.get("wallet_path_given") or old)
        return cls(old, old.parent / str(job.params["new_name"]), given)


def not_found(shown: str) -> ApiError:
    return ApiError(404, f"Wallet path does not exist: {shown}")


def plan_rename(params: Params, services: Services) -> RenamePlan:
    """/api/wallets/rename: wallet_path and new_name present, then `check_rename` (blocking)."""
    raw = params.get("wallet_path", "")
    if not raw.strip():
        raise missing_parameter("wallet_path")
    raw = trimmed(raw)
    if "new_name" not in params:
        raise missing_parameter("new_name")
    return check_rename(services.config, services.wallets.read(), raw, params["new_name"])


def plan_rename_legacy(params: Params, services: Services) -> RenamePlan:
    """The deprecated /api/wallets/active/rename: the wallet by registry row `index`, the name in `to`."""
    raw_index = params.get("index", "").strip()
    if not raw_index:
        raise missing_parameter("index")
    if "to" not in params:
        raise missing_parameter("to")
    try:
        index = int(raw_index)
    except ValueError:
        raise ApiError(400, "Parameter index must be an integer") from None
    return plan_rename_at_index(services.config, services.wallets.read(), index, params["to"])


def check_rename(config: Config, registry: Registry, raw_path: str, new_name: str) -> RenamePlan:
    """Check a rename of the wallet `raw_path` names to `new_name`, in the seed's order; ApiError if refused.

    The 404 shows the path as the client gave it. A path that exists but is not registered, or a
    registered wallet whose folder is gone, is that 404.
    """
    try:
        path = wallet_argument(raw_path, config.wallets_dir)
    except Unresolvable:
        raise not_found(raw_path) from None
    index = registry.index_of(str(path))
    if index is None or not path.is_dir():
        raise not_found(raw_path)
    return _plan_at(registry, path, index, new_name, raw_path)


def plan_rename_at_index(config: Config, registry: Registry, index: int, new_name: str) -> RenamePlan:
    """The legacy form: the wallet is the registry's row `index` (0-based). Out of range is 404."""
    if not 0 <= index < len(registry.entries):
        raise ApiError(404, f"No wallet at index {index}: {len(registry.entries)} wallet(s) are registered")
    raw = registry.entries[index].wallet_path
    return check_rename(config, registry, raw, new_name)


def _plan_at(registry: Registry, path: Path, index: int, new_name: str, given: str) -> RenamePlan:
    name = new_name.strip()
    if not name:
        raise ApiError(400, "New wallet name cannot be empty")
    if name == path.name:
        raise ApiError(400, f"Wallet already has the name: {name}")
    # The control characters that trimming would hide ("Savings\n") are refused too.
    control = control_character(new_name)
    siblings = sibling_names((entry.wallet_path for entry in registry.entries), path.parent, leave_out=path)
    problem = f"it contains {control}" if control else wallet_name_problem(name, siblings)
    if problem:
        raise ApiError(400, f"Invalid wallet name: {problem}")
    target = path.parent / name
    if occupied(path, target) or registry.index_of(str(target)) is not None:
        raise ApiError(409, f"A wallet with the name '{name}' already exists in that location")
    return RenamePlan(path, target, given)


# -- the journal ----------------------------------------------------------------------------------------


def journal_dir(config: Config) -> Path:
    return config.jobs_dir / JOURNAL_FOLDER


def settled_dir(config: Config) -> Path:
    return config.jobs_dir / SETTLED_FOLDER


def write_journal(config: Config, job_id: str, old_path: Path, new_path: Path) -> Path:
    """The entry names both paths and the wallet folder's identity (device and inode), so that the
    settling can tell the real wallet from a folder that appeared at the old path meanwhile (the start
    recreates a missing Default wallet before the journal is settled)."""
    folder = journal_dir(config)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    entry = folder / f"{job_id}.json"
    wallet = os.lstat(old_path)
    record = {
        "job_id": job_id,
        "old_path": str(old_path),
        "new_path": str(new_path),
        "folder": {"dev": wallet.st_dev, "ino": wallet.st_ino},
        "created_at": format_time(utcnow()),
    }
    atomic_write_bytes(entry, json.dumps(record, indent=1).encode("utf-8"))
    return entry


def clear_journal(entry: Path) -> None:
    """Remove a settled entry. If this fails the entry stays and the next start settles it again (harmless)."""
    try:
        entry.unlink(missing_ok=True)
        fsync_dir(entry.parent)
    except OSError:
        log.warning("rename journal entry %s could not be removed; the next start settles it", entry, exc_info=True)


# -- the job --------------------------------------------------------------------------------------------


async def run_rename(plan: RenamePlan, ctx: JobContext) -> dict[str, Any]:
    """The rename under the registry lock; it cannot be cancelled once its folder move has begun."""
    config, wallets = ctx.services.config, ctx.services.wallets
    async with wallets.registry_lock:
        body = await ctx.run_blocking(
            rename_wallet, config, ctx, str(plan.old_path), plan.new_path.name, shown=plan.given
        )
        # Queued jobs on the old path (a backup submitted after this rename) now follow the wallet.
        ctx.move_wallet(body["old_path"], body["new_path"])
        # So do backup plans: the next run archives the wallet under its new name.
        await ctx.services.wallet_moved(body["old_path"], body["new_path"])
    return body


def rename_wallet(
    config: Config, ctx: JobContext, wallet_path: str, new_name: str, *, shown: str = ""
) -> dict[str, Any]:
    """The whole rename, blocking, under the registry lock; returns the success body or raises JobFailed.

    `shown` is the wallet path as the client wrote it: the 404 of a wallet no longer there names it."""
    try:
        plan = check_rename(config, read_registry(config.registry_path), wallet_path, new_name)
    except ApiError as error:
        if error.status == 404 and shown:
            error = not_found(shown)
        raise JobFailed.from_error(error) from None
    old, new = plan.old_path, plan.new_path
    try:
        entry = write_journal(config, ctx.job.id, old, new)
    except OSError:
        log.exception("rename %s -> %s: the journal entry could not be written; nothing was moved", old, new)
        raise JobFailed.plain(500, FS_FAILED) from None
    try:
        ctx.forbid_cancel()
    except BaseException:
        clear_journal(entry)  # cancelled before the move: nothing to settle
        raise
    ctx.report(message=f"Renaming {old.name} to {new.name}")
    try:
        rename_noreplace(old, new)
    except FileExistsError:
        clear_journal(entry)
        raise JobFailed.plain(409, f"A wallet with the name '{new.name}' already exists in that location") from None
    except OSError:
        log.exception("rename %s -> %s failed on the file system", old, new)
        clear_journal(entry)
        raise JobFailed.plain(500, FS_FAILED) from None
    _fsync_quietly(old.parent)
    try:
        _point_registry(config, old, new)
    except Exception:
        log.exception("rename %s -> %s: the registry could not be saved; renaming the folder back", old, new)
        rolled_back = _rename_back(new, old)
        if rolled_back:
            clear_journal(entry)
        # else the entry stays: the folder has the new name, the next start completes the rename.
        raise JobFailed.plain(500, CONFIG_FAILED, rolled_back=rolled_back) from None
    clear_journal(entry)
    log.info("renamed wallet %s -> %s (job %s)", old, new, ctx.job.id)
    return success_body(old, new, ctx.job.id)


def success_body(old: Path, new: Path, job_id: str) -> dict[str, Any]:
    return {
        "success": True,
        "message": SUCCESS_MESSAGE,
        "old_path": str(old),
        "new_path": str(new),
        "old_name": old.name,
        "new_name": new.name,
        "command": COMMAND,
        "job_id": job_id,
    }


def _point_registry(config: Config, old: Path, new: Path) -> None:
    """The registry row of `old` now names `new`, in place (its position, hence "active", is kept)."""
    registry = read_registry(config.registry_path)
    entries = list(registry.entries)
    index = registry.index_of(str(old))
    if index is None:  # cannot happen under the lock; never drop the wallet if it does
        entries.append(RegistryEntry(str(new)))
    else:
        entries[index] = RegistryEntry(str(new), entries[index].type)
    write_registry(config.registry_path, entries)


def _rename_back(new: Path, old: Path) -> bool:
    try:
        rename_noreplace(new, old)
    except OSError:
        log.critical(
            "could not rename %s back to %s; the journal entry stays for the next start", new, old, exc_info=True
        )
        return False
    _fsync_quietly(old.parent)
    return True


def _fsync_quietly(folder: Path) -> None:
    try:
        fsync_dir(folder)
    except OSError:
        log.warning("fsync of %s failed", folder, exc_info=True)


# -- recovery at start ----------------------------------------------------------------------------------


def cleanup_rename(config: Config, job: Job) -> dict[str, Any] | None:
    """The restart hook, after `settle_journal` made folder and registry agree.

    The rename happened when the journal completed it (its marker; the old path may be registered
    again: the start recreates a renamed Default), or, after a crash that came once the journal entry
    was cleared, when the job had started and the registry names the new folder and no longer the
    old one: completed, "recovered". Else nothing changed (a rolled-back or never-started rename, or
    a queued duplicate of a rename that ran) and the job fails."""
    old = Path(job.wallet_path)
    new_name = job.params.get("new_name")
    if not isinstance(new_name, str) or not new_name:
        return None
    new = old.parent / new_name
    marker = settled_dir(config) / f"{job.id}{COMPLETED_SUFFIX}"
    completed_by_journal = marker.exists()
    if completed_by_journal:
        clear_journal(marker)
    registry = read_registry(config.registry_path)
    if registry.index_of(str(new)) is None or not new.is_dir():
        return None
    if not completed_by_journal and (job.started_at is None or registry.index_of(str(old)) is not None):
        return None
    log.warning("rename job %s had renamed %s to %s before the restart", job.id, old, new)
    return recovered(success_body(old, new, job.id))


def settle_journal(config: Config, moved: list[tuple[str, str]] | None = None) -> list[str]:
    """Settle every journal entry a crash left behind so that folder and registry agree (blocking).

    Completed when the folder was already moved (the wallet folder the entry identifies by device and
    inode is at the new path; for an entry without identity, the new path exists and the old one does
    not): the registry names the new path. Otherwise rolled back: the registry names the old path. The folder
    itself never needs moving (a moved folder is always completed), and no registry row is ever
    removed unless it is replaced. Returns one line per entry, for the log. An entry that cannot be
    settled (unreadable registry, a write failing) stays for the next start. Each rename settled as
    completed is added to `moved` as (old path, new path), for whatever follows wallets (backup plans).
    """
    folder = journal_dir(config)
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    lines: list[str] = []
    for name in names:
        entry = folder / name
        if name.startswith(".") and name.endswith(".tmp"):
            # A journal write that never finished: its rename never began.
            entry.unlink(missing_ok=True)
            lines.append(f"removed an unfinished rename journal entry {name}")
            continue
        if not name.endswith(".json"):
            continue
        try:
            record = json.loads(entry.read_bytes())
            old, new = Path(record["old_path"]), Path(record["new_path"])
            identity = record.get("folder")
            folder_id = None if identity is None else (int(identity["dev"]), int(identity["ino"]))
        except (OSError, ValueError, KeyError, TypeError):
            aside = entry.with_name(name + ".bad")
            os.replace(entry, aside)
            lines.append(f"rename journal entry {name} is unreadable; kept as {aside.name}, nothing changed")
            continue
        try:
            line, completed = _settle(config, old, new, folder_id)
            if completed:
                # For the job's own settling (cleanup_rename), which runs later in this start.
                job_id = str(record.get("job_id") or name.removesuffix(".json"))
                settled = settled_dir(config)
                settled.mkdir(mode=0o700, exist_ok=True)
                atomic_write_bytes(settled / f"{job_id}{COMPLETED_SUFFIX}", b"")
                if moved is not None:
                    moved.append((str(old), str(new)))
            lines.append(line)
        except Exception as exc:
            log.exception("rename journal entry %s could not be settled", entry)
            lines.append(f"rename {old} -> {new} could not be settled ({exc}); it is retried at the next start")
            continue
        clear_journal(entry)
    return lines


def _settle(config: Config, old: Path, new: Path, folder_id: tuple[int, int] | None) -> tuple[str, bool]:
    """The log line, and whether the rename is settled as completed."""
    old_there, new_there = os.path.lexists(old), os.path.lexists(new)
    if not old_there and not new_there:
        # Nothing to make agree: the registry is left as it is, so the wallet is not unregistered.
        return f"rename {old} -> {new}: neither folder exists; the registry was left unchanged", False
    if _is_folder(new, folder_id):
        moved = True  # even if a new folder appeared at the old path since
    elif _is_folder(old, folder_id):
        moved = False
    else:  # no identity recorded, or it matches neither: decide by what exists
        moved = new_there and not old_there
    keep, drop = (new, old) if moved else (old, new)
    registry = read_registry(config.registry_path)
    entries = list(registry.entries)
    at_keep, at_drop = registry.index_of(str(keep)), registry.index_of(str(drop))
    if at_drop is not None and at_keep is None:
        entries[at_drop] = RegistryEntry(str(keep), entries[at_drop].type)
    elif at_drop is not None:
        del entries[at_drop]  # both rows present: the one that names the real folder stays
    elif at_keep is None:
        entries.append(RegistryEntry(str(keep)))  # never leave the wallet unregistered
    changed = entries != list(registry.entries)
    if changed:
        write_registry(config.registry_path, entries)
    verb = "completed" if moved else "rolled back"
    line = f"rename {old} -> {new} {verb}: the registry names {keep}" + ("" if changed else " (it already did)")
    return line, moved


def _is_folder(path: Path, folder_id: tuple[int, int] | None) -> bool:
    if folder_id is None:
        return False
    try:
        there = os.lstat(path)
    except OSError:
        return False
    return (there.st_dev, there.st_ino) == folder_id
