"""The start-up sweep: the server's own temporary names (``.cloudcoin-*.tmp``) that no running job owns.

Every temporary file or folder the jobs write is named ``.cloudcoin-<kind>-<job id>.tmp`` (the
backup's half-written archive, the restore's extraction folder). A crash can leave one behind that
the job store does not know about (its record was not yet written); a plaintext restore folder must
not stay on disk because of that. So at start every such name directly inside the given places is
removed, whatever the store says, except those of a job that is running. Each removal is logged.
The places come from the job kinds' table (`jobs.kinds.temporary_places`), so a new kind adds its own.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from collections.abc import Collection, Iterable
from pathlib import Path

from app.wallet.storage import fsync_dir

log = logging.getLogger(__name__)

#: a temporary name of this server: `.cloudcoin-<what>-<job id>.tmp`
TEMP_NAME = re.compile(r"^\.cloudcoin-[a-z]+-(?P<job>[0-9A-Za-z_-]+)\.tmp$")


def sweep_temporary(places: Iterable[Path], running: Collection[str] = ()) -> list[Path]:
    """Remove the temporary names in `places` whose job id is not in `running`; returns what went (blocking)."""
    removed: list[Path] = []
    seen: set[Path] = set()
    for place in places:
        if place in seen:
            continue
        seen.add(place)
        try:
            names = os.listdir(place)
        except OSError:
            continue  # gone, unplugged or unreadable: nothing of ours can be removed there
        touched = False
        for name in names:
            match = TEMP_NAME.match(name)
            if match is None or match.group("job") in running:
                continue
            path = place / name
            if _remove(path):
                log.warning("removed %s, a temporary name no running job owns", path)
                removed.append(path)
                touched = True
        if touched:
            try:
                fsync_dir(place)
            except OSError:
                pass
    return removed


def _remove(path: Path) -> bool:
    try:
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)  # never follows a link inside
        else:
            os.unlink(path)  # a file, or a link (never its target)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("cannot remove the temporary %s: %s", path, exc)
        return False
    return True
