"""What restore and verify accept in a backup archive: entry names and types, and what both jobs share.

- **names** (`entry_name_problem`): no entry may land outside the folder it is extracted into
  (zip-slip: absolute names, ``..``/``.``/empty components, backslashes, drive letters, NUL), nor be
  nested deeper than any wallet or carry a name longer than file systems take;
- **types** (`entry_type_problem`): no link or other special file (the unix mode in the external
  attributes), no ZIP encryption.

The manifest is read by jobs/restore/manifest.py, the whole archive checked by jobs/restore/checker.py.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable

_DRIVE = re.compile(r"[A-Za-z]:")
#: deeper than any wallet; a 1,000-level entry is refused by name, never by running out of stack or PATH_MAX
MAX_DEPTH = 64
#: the longest file name Linux, macOS and Windows file systems take, in bytes
MAX_COMPONENT = 255
FLAG_ENCRYPTED = 0x1
#: files between two progress reports (the runner throttles publishing; this bounds the calls)
REPORT_EVERY = 256

Report = Callable[..., None]


def entry_name_problem(name: str) -> str | None:
    """Why extracting an entry called `name` could write outside the folder it goes into, or None."""
    if not name:
        return "has an empty name"
    if "\0" in name:
        return "contains a NUL character"
    if "\\" in name:
        return "contains a backslash (a Windows path separator)"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    parts = name.removesuffix("/").split("/")
    for part in parts:
        if part == "..":
            return "climbs out of its folder with '..'"
        if part in ("", "."):
            return "has an empty or '.' path component"
        if len(part) > MAX_COMPONENT // 4 and len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT:
            return f"has a name longer than {MAX_COMPONENT} bytes"
    if len(parts) > MAX_DEPTH:
        return f"is nested more than {MAX_DEPTH} folders deep"
    return None


def entry_type_problem(name: str, attr: int, flags: int) -> str | None:
    """Why an entry is no plain file or folder (links and devices are never extracted), or None.

    `attr` is the entry's external attributes (the unix mode in the high 16 bits), `flags` its
    general-purpose flags."""
    kind = stat.S_IFMT(attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a special file (device, FIFO or socket)"
    if kind == stat.S_IFDIR and not name.endswith("/"):
        return "is marked as a folder but its name does not end with '/'"
    if flags & FLAG_ENCRYPTED:
        return "is encrypted with ZIP encryption, which is not supported"
    return None
