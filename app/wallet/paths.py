"""Path and name rules shared by every endpoint: canonical forms, "is inside", wallet arguments, control characters, wallet names."""

from __future__ import annotations

import errno
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from app.wallet.errors import ApiError


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

    A relative path that climbs out of Wallets (`../x`) is not a wallet location, so it is unresolvable;
    so is one with a control character, which no registered wallet's path holds.
    """
    if control_character(raw):
        raise Unresolvable(raw)
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
#: NAME_MAX of every common file system (ext4, APFS, NTFS in UTF-16 units, which 255 UTF-8 bytes never exceed).
MAX_NAME_BYTES = 255
# C0 and C1 control characters, DEL, the characters Windows forbids, and both separators.
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f:*?"<>|/\\]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Unicode categories that draw nothing or reorder what follows: format characters (bidirectional
#: controls such as U+202E, zero-width space and joiners, U+FEFF) and the line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp"})


def control_character(text: str) -> str | None:
    """The first C0/C1 control character or DEL in `text`, described ("control character 0x0a"), or None.

    Every path parameter is refused with one (api.md): a line break in a destination would otherwise
    become a line of its own in BackupPlaces.txt or the registry.
    """
    found = _CONTROL.search(text)
    return None if found is None else f"control character 0x{ord(found.group()):02x}"


def trimmed(raw: str) -> str:
    """A path or name parameter without its surrounding spaces; a control character stays, for the
    checks to refuse ("Default\n" must not pass for "Default")."""
    return raw.strip(" ")


def path_parameter_problem(name: str, raw: str) -> str | None:
    """Why the path parameter `name` cannot be taken at all, or None (its other checks come later)."""
    control = control_character(raw)
    return None if control is None else f"Parameter {name} contains a {control}"


def folder_name_problem(name: str) -> str | None:
    """Why `name` cannot be a single folder name on every platform, or None when it can."""
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "'.' and '..' are not names"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        # Checked before any work: the file system would refuse it only after a restore's extraction.
        return f"longer than {MAX_NAME_BYTES} bytes"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    bad = _FORBIDDEN.search(name)
    if bad:
        char = bad.group()
        shown = repr(char) if char.isprintable() else f"control character 0x{ord(char):02x}"
        return f"it contains {shown}"
    for char in name:
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            return f"it contains a bidirectional control or zero-width character (U+{ord(char):04X})"
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


def folded(name: str) -> str:
    """`name` as a look-alike comparison sees it: NFKC, case folded, NFKC again (Unicode's NFKC_Casefold)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def lookalike_problem(name: str, existing: Iterable[str]) -> str | None:
    """Why `name` would pass for one of the `existing` wallet names, or None.

    Only a different spelling is refused here ("Savings" and "ＳＡＶＩＮＧＳ"): a name exactly equal
    to an existing one is the caller's conflict (409), which keeps its own answer.
    """
    key = folded(name)
    for other in existing:
        if other != name and folded(other) == key:
            return f"it can be mistaken for the existing wallet '{other}' (same name after Unicode and case folding)"
    return None


def wallet_name_problem(name: str, siblings: Iterable[str] = ()) -> str | None:
    """Every rule a new wallet name meets (api.md): one folder name on every platform, and no look-alike
    of the wallets already registered in the same folder (`siblings`, the wallet being renamed left out)."""
    return folder_name_problem(name) or lookalike_problem(name, siblings)


def sibling_names(wallet_paths: Iterable[str], parent: Path, *, leave_out: Path | None = None) -> list[str]:
    """Names of the wallets among `wallet_paths` (canonical) whose folder lies directly in `parent`."""
    return [
        Path(p).name for p in wallet_paths if Path(p).parent == parent and (leave_out is None or Path(p) != leave_out)
    ]


#: Errors that say the place may not be written (403), or cannot hold a folder at all (400): the
#: caller's choice of place, not a fault of the server. Anything else (a full disk, an I/O error)
#: stays the caller's 500.
_FORBIDDEN_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_UNUSABLE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EINVAL, errno.ELOOP})


def write_refusal(exc: OSError, what: str, path: Path) -> ApiError | None:
    """The 403/400 answer for a place the server may not write (`/proc`, a read-only mount), or None."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FORBIDDEN_ERRNOS:
        return ApiError(403, f"{what}: {path} is not writable ({reason})")
    if exc.errno in _UNUSABLE_ERRNOS:
        return ApiError(400, f"{what}: {path} cannot hold it ({reason})")
    return None


def check_writable_folder(folder: Path, what: str) -> None:
    """Make and remove an empty probe folder in `folder`; ApiError 403/400 when that fails (blocking).

    Asking `os.access` is not enough: as root it says yes to `/proc`, where nothing can be created.
    """
    probe = folder / f".cloudcoin-probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        os.mkdir(probe, 0o700)
    except OSError as exc:
        refusal = write_refusal(exc, what, folder)
        if refusal is None:
            raise
        raise refusal from None
    os.rmdir(probe)
