"""The restore job: a backup archive extracted into a new wallet, moved into place and registered.

A restore is checked when it is asked for (`plan_restore`, with the checks of `plan`), extracted with every entry checked
against the manifest into a temporary folder beside the target (`extraction`, `temp`),
then renamed into place without ever replacing anything (`rename_noreplace`) and registered, both
under the registry lock (`place_and_register`). A refusal, failure or cancel removes the temporary
folder; after a crash `cleanup_restore` does. The verify job (`verify`) shares the archive checks
(`archive_checks`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.wallet.coinfolders import is_wallet_folder, wallet_balance
from app.wallet.coins import units_to_json
from app.wallet.config import Config
from app.wallet.errors import ApiError
from app.wallet.model import Wallet
from app.wallet.paths import control_character
from app.wallet.registry import Registry, RegistryEntry, location_type, read_registry, write_registry
from app.wallet.storage import fsync_dir, rename_noreplace
from jobs.context import JobContext
from jobs.models import Job, JobFailed
from jobs.restore.extraction import extract_archive
from jobs.restore.plan import (
    RestorePlan,
    already_exists,
    check_restore,
    check_target_free,
    check_target_still_free,
    required_zip_path,
)
from jobs.restore.temp import remove_tree, removed_on_failure, temp_name
from jobs.services import Services
from jobs.shape import Params, recovered

log = logging.getLogger(__name__)

RESTORE_COMMAND = "wallet-restore"
RESTORE_MESSAGE = "Wallet restored successfully"


def plan_restore(params: Params, services: Services) -> RestorePlan:
    """/api/wallets/restore: zip_path present, then the checks that need no extraction (blocking)."""
    zip_raw = required_zip_path(params)
    raw_name = params.get("new_name", "")
    control = control_character(raw_name)  # also the ones trimming would hide ("Savings\n")
    if control:
        raise ApiError(400, f"Invalid wallet name: it contains {control}")
    location, new_name = params.get("location", ""), raw_name.strip()
    return check_restore(services.config, services.wallets.read(), zip_raw, location, new_name)


async def run_restore(plan: RestorePlan, ctx: JobContext) -> dict[str, Any]:
    """Extract into a temporary folder, count the balance, move into place and register."""
    config, wallets = ctx.services.config, ctx.services.wallets
    temp = plan.location / temp_name(ctx.job.id)
    key = ctx.services.keyring.key  # the key set now; a logout during the restore does not change this run
    # Checked again: another restore may have taken the name since the request.
    await ctx.run_blocking(check_target_still_free, config, plan)
    counts = await ctx.run_blocking(extract_archive, plan, temp, key=key, cancel=ctx.cancel_event, report=ctx.report)
    async with wallets.registry_lock:
        await ctx.run_blocking(place_and_register, config, plan, temp, ctx.forbid_cancel)
    log.info("restore job %s: %s -> %s (%d files)", ctx.job.id, plan.zip_path, plan.target, counts.files)
    return {
        "command": RESTORE_COMMAND,
        "success": True,
        "message": RESTORE_MESSAGE,
        "wallet_path": str(plan.target),
        "wallet_name": plan.wallet_name,
        "location": str(plan.location),
        "zip_path": str(plan.zip_path),
        "files_restored": counts.files,
        "folders_restored": counts.folders,
        "bytes_restored": counts.bytes,
        "files_decrypted": counts.decrypted,
        "files_left_encrypted": counts.left_encrypted,
        "total_value": units_to_json(counts.units),  # counted from the bytes as they were written
        "total_notes": counts.notes,
        "verified": True,
        "job_id": ctx.job.id,
    }


def place_and_register(config: Config, plan: RestorePlan, temp: Path, forbid_cancel: Callable[[], None]) -> None:
    """Rename the extracted folder into place (never replacing) and register it; under the registry lock."""
    with removed_on_failure(temp):
        registry = read_registry(config.registry_path)
        try:
            check_target_free(plan, registry)
        except ApiError as error:
            raise JobFailed.from_error(error) from None
        forbid_cancel()  # raises JobCancelled if a cancel came first; from here the restore completes
        try:
            rename_noreplace(temp, plan.target)
        except FileExistsError:
            raise JobFailed.from_error(already_exists(plan.wallet_name, plan.location)) from None
        except OSError as exc:
            log.error("restore: cannot rename %s to %s: %s", temp, plan.target, exc)
            raise JobFailed.plain(500, f"Cannot move the restored wallet into place: {exc.strerror}") from None
    _fsync_quietly(plan.location)
    entries = _with_wallet(registry, str(plan.target))
    try:
        write_registry(config.registry_path, entries)
    except Exception:
        # Either both or neither: an unregistered restored folder would be invisible and block the name.
        log.exception("restore: the registry could not be saved; removing the restored %s", plan.target)
        try:
            rename_noreplace(plan.target, temp)
        except OSError:
            log.critical("restore: cannot move %s back to %s", plan.target, temp, exc_info=True)
        else:
            remove_tree(temp)
        raise JobFailed.plain(500, "Failed to save wallet configuration after restore") from None


def _fsync_quietly(folder: Path) -> None:
    try:
        fsync_dir(folder)
    except OSError:
        log.warning("fsync of %s failed", folder, exc_info=True)


def _with_wallet(registry: Registry, wallet_path: str) -> list[RegistryEntry]:
    """The registry's entries with one more wallet at the end."""
    return [*registry.entries, RegistryEntry(wallet_path, location_type(wallet_path))]


def cleanup_restore(config: Config, job: Job) -> dict[str, Any] | None:
    """The restart hook: remove the temporary folder a crash left (failed); a wallet already moved into
    place is registered if it is not yet, and the restore completed (its result marked "recovered").

    The temporary folder being gone while the target is a wallet folder says the rename into place
    happened (the target was free when the job started, and the job's lane is that target). A crash
    between that rename and the registry write leaves a complete wallet that is not registered: it is
    registered now, so that it is neither invisible nor blocking its name.
    """
    location = job.params.get("location")
    if not isinstance(location, str) or not os.path.isabs(location):
        return None
    temp = Path(location) / temp_name(job.id)
    if os.path.lexists(temp):
        remove_tree(temp)
        log.info("restore job %s: removed the unfinished folder %s", job.id, temp)
        return None
    target = Path(job.wallet_path)
    if job.started_at is None or not is_wallet_folder(target):
        return None
    registry = read_registry(config.registry_path)
    if registry.index_of(job.wallet_path) is None:
        write_registry(config.registry_path, _with_wallet(registry, job.wallet_path))
        log.warning("restore job %s: registered %s, restored before the interruption", job.id, job.wallet_path)
    balance = wallet_balance(Wallet(target, 0, False, True))
    files = folders = 0
    for _, dirs, names in os.walk(target):
        files += len(names)
        folders += len(dirs)
    return recovered(
        {
            "command": RESTORE_COMMAND,
            "success": True,
            "message": RESTORE_MESSAGE,
            "wallet_path": str(target),
            "wallet_name": target.name,
            "location": location,
            "zip_path": job.params.get("zip_path"),
            "files_restored": files,
            "folders_restored": folders,
            "total_value": balance["total_value"],
            "total_notes": balance["total_notes"],
            "verified": True,
            "job_id": job.id,
        }
    )


def restore_places(config: Config) -> list[Path]:
    """Where a restore's temporary folder may lie: Wallets/ and the folder of every registered wallet."""
    places = [config.wallets_dir]
    try:
        registry = read_registry(config.registry_path)
    except OSError:
        return places
    places.extend(Path(entry.wallet_path).parent for entry in registry.entries)
    return places
