"""Path rules shared by every endpoint: canonical forms, "is inside" checks, wallet arguments, folder names."""

from __future__ import annotations

import os
import re
from pathlib import Path


class Unresolvable(ValueError):
    """The path cannot be canonicalised (a broken or looping symlink, a malformed path)."""


def canonical(path: str | os.PathLike[str]) -> Path:
    """The absolute path with every symlink resolved; the tail may not exist yet (it is then kept as given)."""
    raw = os.fspath(path)
    if not raw or "\0" in raw:
        raise Unresolvable(raw)
    try:
        if os.path.islink(raw) and not os.path.exists(raw):
            raise Unresolvable(raw)  # a broken link: where it points is not what the caller named
        return Path(os.path.realpath(os.path.abspath(raw), strict=False))
    except (OSError, ValueError) as exc:
        raise Unresolvable(raw) from exc


def is_inside(path: Path, root: Path) -> bool:
    """True when canonical `path` is `root` or below it (both already canonical)."""
    return path == root or root in path.parents


def wallet_argument(raw: str, wallets_dir: Path) -> Path:
    """A wallet_path parameter as a canonical path: absolute as given, relative inside Client_Data/Wallets.

    A relative path that climbs out of Wallets (`../x`) is not a wallet location, so it is unresolvable.
    """
    if os.path.isabs(raw):
        return canonical(raw)
    root = canonical(wallets_dir)
    resolved = canonical(root / raw)
    if not is_inside(Path(os.path.normpath(root / raw)), root):
        raise Unresolvable(raw)
    return resolved


#: Windows device names that no folder may be called, on any platform a wallet may travel to.
#: Windows also treats the superscript digits ¹ ² ³ as digits in COM and LPT names.
RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{device}{digit}" for device in ("COM", "LPT") for digit in "123456789\u00b9\u00b2\u00b3"]
)
MAX_NAME_CHARS = 64
# C0 and C1 control characters, DEL, the characters Windows forbids, and both separators.
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f:*?"<>|/\\]')


def folder_name_problem(name: str) -> str | None:
    """Why `name` cannot be a single folder name on every platform, or None when it can."""
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "'.' and '..' are not names"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    bad = _FORBIDDEN.search(name)
    if bad:
        char = bad.group()
        shown = repr(char) if char.isprintable() else f"control character 0x{ord(char):02x}"
        return f"it contains {shown}"
    if name.startswith("."):
        return "it starts with '.'"
    if name.startswith("$"):
        return "it starts with '$'"
    if name.endswith((" ", ".")):
        return "it ends with a space or a dot"
    # Windows ignores an extension and trailing spaces before it: "con.txt" and "COM1 .log" are devices.
    stem = name.split(".")[0].rstrip(" ").upper()
    if stem in RESERVED_NAMES:
        return f"{stem} is a reserved device name"
    if len(name) > MAX_NAME_CHARS:
        return f"it is longer than {MAX_NAME_CHARS} characters"
    return None
