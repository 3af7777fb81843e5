"""The checks a restore or verify request passes before its job is queued: the backup file, the location, the target.

All blocking (stats, the registry, the archive's first entry); they raise ApiError, which the
endpoint answers. The restore job checks the target again (`check_target_still_free`), failing with
the same 409, since another restore may have taken the name meanwhile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.wallet.config import Config
from app.wallet.errors import ApiError, missing_parameter
from app.wallet.paths import (
    Unresolvable,
    canonical,
    check_writable_folder,
    is_inside,
    lookalike_problem,
    sibling_names,
    wallet_name_problem,
)
from app.wallet.registry import Registry, path_problem, read_registry
from jobs.backup.manifest import MANIFEST_NAME
from jobs.context import JobView
from jobs.models import JobFailed
from jobs.restore.archive_checks import entry_name_problem
from jobs.shape import Params
from jobs.zip.reader import ArchiveError, ZipReader, decode_name

#: problems listed in a restore refusal; the first ones say enough
MAX_REFUSAL_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """A restore that passed the checks needing no extraction: what to read and where it goes."""

    zip_path: Path
    location: Path
    wallet_name: str

    @property
    def target(self) -> Path:
        return self.location / self.wallet_name

    @property
    def lane(self) -> str:
        # A restore is a job on the wallet it creates (jobs.md): its lane is the target folder.
        return str(self.target)

    def params(self) -> dict[str, str]:
        return {"zip_path": str(self.zip_path), "location": str(self.location), "wallet_name": self.wallet_name}

    @classmethod
    def from_job(cls, job: JobView) -> RestorePlan:
        params = job.params
        return cls(Path(params["zip_path"]), Path(params["location"]), str(params["wallet_name"]))


def already_exists(name: str, location: Path) -> ApiError:
    return ApiError(409, f"A wallet named '{name}' already exists in {location}")


def refusal(problems: list[tuple[str, str]]) -> ApiError:
    """The 400 of a restore that refuses an archive: the first problem in words, the first few listed."""
    path, problem = problems[0]
    listed = [{"path": p, "problem": q} for p, q in problems[:MAX_REFUSAL_PROBLEMS]]
    return ApiError(400, f"Refusing to restore: archive entry '{path}' {problem}", extra={"problems": listed})


def required_zip_path(params: Params) -> str:
    """The `zip_path` parameter, which restore and verify both require."""
    zip_raw = params.get("zip_path", "")
    if not zip_raw.strip():
        raise missing_parameter("zip_path")
    return zip_raw


def resolve_zip_path(raw: str) -> Path:
    """`zip_path` as a canonical path to an existing file; ApiError 400/404 otherwise (blocking: stat)."""
    path = _canonical_param("zip_path", raw)
    if not path.is_file():
        raise ApiError(404, f"Backup file not found: {raw}")
    return path


def check_restore(config: Config, registry: Registry, zip_raw: str, location_raw: str, new_name: str) -> RestorePlan:
    """Check a restore request (blocking: stats, the registry, the archive's first entry); ApiError if refused."""
    if new_name:
        # Before anything is read: a name the file system cannot hold fails here, not after an extraction.
        problem = wallet_name_problem(new_name)
        if problem:
            raise ApiError(400, f"Invalid wallet name: {problem}")
    zip_path = resolve_zip_path(zip_raw)
    location = _resolve_location(config, location_raw)
    for entry in registry.entries:
        if is_inside(location, Path(entry.wallet_path)):
            raise ApiError(400, f"A wallet cannot be restored inside another wallet: {entry.wallet_path}")
    siblings = sibling_names((entry.wallet_path for entry in registry.entries), location)
    if new_name:
        problem = lookalike_problem(new_name, siblings)
        if problem:
            raise ApiError(400, f"Invalid wallet name: {problem}")
    root_name = archive_root_name(zip_path)
    if not new_name:
        problem = wallet_name_problem(root_name, siblings)
        if problem:
            raise ApiError(400, f"Invalid wallet name in the archive ({problem}); give new_name")
    check_writable_folder(location, "Cannot restore into the location")
    plan = RestorePlan(zip_path, location, new_name or root_name)
    problem = path_problem(str(plan.target))
    if problem:
        raise ApiError(400, f"Invalid wallet path: {problem}")
    check_target_free(plan, registry)
    return plan


def _resolve_location(config: Config, raw: str) -> Path:
    wallets_dir = canonical(config.wallets_dir)
    if not raw:
        return wallets_dir
    location = _canonical_param("location", raw)
    if not location.exists():
        raise ApiError(400, f"Location does not exist: {raw}")
    if not location.is_dir():
        raise ApiError(400, f"Location is not a folder: {raw}")
    if is_inside(location, canonical(config.data_dir)) and not is_inside(location, wallets_dir):
        raise ApiError(400, "A wallet cannot live inside Client_Data outside its Wallets folder")
    return location


def _canonical_param(name: str, raw: str) -> Path:
    """The path parameter `name` made canonical; ApiError 400 when it is relative or cannot be resolved."""
    if not os.path.isabs(raw):
        raise ApiError(400, f"{name} must be an absolute path")
    try:
        return canonical(raw)
    except Unresolvable:
        raise ApiError(400, f"{name} could not be resolved: {raw}") from None


def archive_root_name(zip_path: Path) -> str:
    """The top folder of the first entry that is not the manifest: the wallet's name in the archive.

    Cheap (the central directory's first window); the job checks every entry. ApiError 400 when the
    file is no ZIP or that entry could not be a wallet folder.
    """
    try:
        with ZipReader(zip_path) as reader:
            for record in reader.records():
                name = decode_name(record)
                if name == MANIFEST_NAME:
                    continue
                problem = entry_name_problem(name)
                if problem:
                    raise refusal([(name, problem)])
                if "/" not in name:
                    raise refusal([(name, "lies outside the wallet folder")])
                return name.split("/", 1)[0]
    except ArchiveError as exc:
        raise ApiError(400, f"Not a valid ZIP archive: {exc.problem}") from None
    except OSError as exc:
        raise ApiError(400, f"The backup file cannot be read: {exc.strerror}") from None
    raise ApiError(400, "The archive holds no wallet folder")


def check_target_free(plan: RestorePlan, registry: Registry) -> None:
    """409 when anything is at the target, or a wallet is registered there (an unplugged stick's)."""
    if os.path.lexists(plan.target) or registry.index_of(str(plan.target)) is not None:
        raise already_exists(plan.wallet_name, plan.location)


def check_target_still_free(config: Config, plan: RestorePlan) -> None:
    """The same check in the job, which fails it with the same 409."""
    try:
        check_target_free(plan, read_registry(config.registry_path))
    except ApiError as error:
        raise JobFailed.from_error(error) from None
