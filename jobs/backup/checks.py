"""Where a backup may go and what it is called: destination checks, the seed's error bodies, names.

The endpoint runs `resolve_destination` and `check_destination_place` before it queues the job; the
job runs them again when it starts (a symlink may have been swapped since the request), then
`make_destination`, and at the end `claim_final_name`. Each refusal is an `ApiError` carrying the
seed's exact body; the job turns it into a `JobFailed` with `JobFailed.from_error`.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from app.wallet.errors import FlagError, StatusError
from app.wallet.paths import Unresolvable, canonical, is_inside
from app.wallet.storage import fsync_dir
from jobs.models import JobFailed

log = logging.getLogger(__name__)

TEMP_PREFIX = ".cloudcoin-backup-"
TEMP_SUFFIX = ".tmp"

# -- the seed's error bodies ------------------------------------------------------------------

MISSING_DESTINATION = StatusError(400, "Missing required parameter: destination", error_code=1)
NOT_ABSOLUTE = FlagError(400, "Destination must be an absolute path")
UNRESOLVABLE = FlagError(400, "Destination path could not be resolved")
INSIDE_CLIENT_DATA = FlagError(
    400,
    "Backup destination cannot be inside Client_Data — choose a folder outside the program's data directory",
)
INSIDE_WALLET = FlagError(400, "Backup destination cannot be inside the wallet being backed up")
NO_PARENT = FlagError(400, "Destination directory does not exist")
CANNOT_CREATE = StatusError(500, "Cannot create backup directory", error_code=101)
ZIP_FAILED = StatusError(500, "Failed to create backup zip file", error_code=101)
SUCCESS_MESSAGE = "Wallet backup created successfully"


def wallet_not_found(raw: str) -> FlagError:
    return FlagError(404, f"Wallet not found: {raw}")


# -- checks shared by the endpoint and the job -----------------------------------------------


def resolve_destination(raw: str, *, data_dir: Path) -> Path:
    """The canonical destination, in api.md's order of checks; FlagError for each refusal."""
    if not os.path.isabs(raw):
        raise NOT_ABSOLUTE
    try:
        destination = canonical(raw)
    except Unresolvable:
        raise UNRESOLVABLE from None
    if is_inside(destination, data_dir):
        raise INSIDE_CLIENT_DATA
    return destination


def check_destination_place(destination: Path, wallet: Path) -> None:
    """The checks that need the wallet or the disk (blocking): not inside the wallet, parent exists."""
    if is_inside(destination, wallet):
        # The archive would end up inside what it archives (spec silent; refused like Client_Data).
        raise INSIDE_WALLET
    if not os.path.isdir(destination) and not os.path.isdir(destination.parent):
        raise NO_PARENT


def make_destination(destination: Path) -> bool:
    """Create the last component (0700) when missing; its parent must exist (api.md). True if created."""
    try:
        os.mkdir(destination, 0o700)
    except FileExistsError:
        if not os.path.isdir(destination):
            raise JobFailed.from_error(CANNOT_CREATE) from None
        return False
    except FileNotFoundError:
        raise JobFailed.from_error(NO_PARENT) from None
    except OSError as exc:
        log.error("cannot create backup directory %s: %s", destination, exc)
        raise JobFailed.from_error(CANNOT_CREATE) from None
    try:
        os.chmod(destination, 0o700)  # exactly 0700, whatever the umask
        fsync_dir(destination.parent)
    except OSError as exc:
        log.warning("backup directory %s: %s", destination, exc)
    return True


# -- names ------------------------------------------------------------------------------------


def temp_name(job_id: str) -> str:
    """The archive's name while it is written; the job id lets the restart cleanup find it."""
    return f"{TEMP_PREFIX}{job_id}{TEMP_SUFFIX}"


def archive_name(wallet_name: str, date: str, n: int) -> str:
    suffix = "" if n == 1 else f"_{n}"
    return f"CloudCoin-Wallet-Backup_{wallet_name}_{date}{suffix}.zip"


def claim_final_name(tmp: Path, destination: Path, wallet_name: str, date: str) -> Path:
    """Give the finished archive the first free name; an existing file is never replaced.

    `os.link` fails with EEXIST instead of overwriting, so the claim is atomic even against a second
    backup finishing the same second. Where the file system has no hard links (FAT on a USB stick),
    an O_EXCL placeholder is claimed first and then replaced by the archive.
    """
    for n in range(1, 10_000):
        final = destination / archive_name(wallet_name, date, n)
        try:
            os.link(tmp, final, follow_symlinks=False)
            return final
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
        try:
            placeholder = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        os.close(placeholder)
        os.replace(tmp, final)
        return final
    raise OSError(errno.EEXIST, "no free backup file name left", str(destination))
