"""What restore and verify check in a backup archive: safe entry names and types, the manifest, entries against it.

- **names** (`entry_name_problem`, `entry_type_problem`): no entry may land outside the folder it is
  extracted into (zip-slip: absolute names, ``..``/``.``/empty components, backslashes, drive
  letters, NUL) nor be a link or another special file (the unix mode in the external attributes);
- **the manifest** (``backup-manifest.json``, jobs.backup.manifest): present, format "cloudcoin-wallet-backup"
  version 1, and listing exactly the archive's entries below its root ``<wallet>/``: same type, same
  size (`entry_problems`), same SHA-256 (checked by each job as it reads the data).

Also what both jobs share when they read an archive: the read window, the errors of a damaged entry,
the progress cadence and the failure answer.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jobs.backup.manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION

#: read-and-write window for big entries; entries up to this size are read whole (coin files are < 1 KB)
READ_CHUNK = 1 << 20
#: files between two progress reports (the runner throttles publishing; this bounds the calls)
REPORT_EVERY = 256
#: what zipfile raises for a damaged entry (bad CRC, bad deflate data, a short file)
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)
#: the manifest of a 300,000-coin wallet is ~42 MB; anything far beyond is not a manifest of ours
_MAX_MANIFEST = 512 << 20
_DRIVE = re.compile(r"[A-Za-z]:")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FLAG_ENCRYPTED = 0x1

Report = Callable[..., None]


# -- entry names (zip-slip) ----------------------------------------------------------------------------


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
    for part in name.removesuffix("/").split("/"):
        if part == "..":
            return "climbs out of its folder with '..'"
        if part in ("", "."):
            return "has an empty or '.' path component"
    return None


def entry_type_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an entry is no plain file or folder (links and devices are never extracted), or None."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a special file (device, FIFO or socket)"
    if kind == stat.S_IFDIR and not info.orig_filename.endswith("/"):
        return "is marked as a folder but its name does not end with '/'"
    if info.flag_bits & _FLAG_ENCRYPTED:
        return "is encrypted with ZIP encryption, which is not supported"
    return None


# -- the manifest --------------------------------------------------------------------------------------


class ManifestError(ValueError):
    """The manifest is missing, unreadable or not one this server writes."""


@dataclass(frozen=True, slots=True)
class Manifest:
    root: str  # "<wallet name>/"
    key_check: str | None
    #: every listed path: (size, sha256) for a file, None for a folder
    entries: dict[str, tuple[int, str] | None] = field(repr=False)

    @property
    def wallet_name(self) -> str:
        return self.root[:-1]


def read_manifest(archive: zipfile.ZipFile) -> Manifest:
    try:
        info = archive.getinfo(MANIFEST_NAME)
    except KeyError:
        raise ManifestError(f"the archive has no {MANIFEST_NAME}") from None
    if info.file_size > _MAX_MANIFEST:
        raise ManifestError(f"{MANIFEST_NAME} is too large ({info.file_size:,} bytes)")
    try:
        with archive.open(info) as fh:
            raw = fh.read(_MAX_MANIFEST + 1)
    except READ_ERRORS as exc:
        raise ManifestError(f"{MANIFEST_NAME} cannot be read: {exc}") from None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise ManifestError(f"{MANIFEST_NAME} is not valid JSON") from None
    return parse_manifest(document)


def parse_manifest(document: Any) -> Manifest:
    """The parts of a manifest (jobs.backup.manifest's docstring) that restore and verify rely on."""
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{MANIFEST_NAME} is not a CloudCoin wallet backup manifest")
    version = document.get("format_version")
    if type(version) is not int or version != MANIFEST_VERSION:
        raise ManifestError(f"manifest format_version {version!r} is not supported (only {MANIFEST_VERSION})")
    root = document.get("root")
    if (
        not isinstance(root, str)
        or not root.endswith("/")
        or root.count("/") != 1
        or entry_name_problem(root) is not None
    ):
        raise ManifestError(f"manifest root {root!r} is not a single folder name")
    key_check = document.get("key_check")
    if key_check is not None and not isinstance(key_check, str):
        raise ManifestError("manifest key_check is not a string")
    listed = document.get("entries")
    if not isinstance(listed, list):
        raise ManifestError("manifest entries are not a list")
    entries: dict[str, tuple[int, str] | None] = {}
    for item in listed:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or not (path == root or path.startswith(root)):
            raise ManifestError(f"manifest lists an entry outside its root {root}: {path!r}")
        if path in entries:
            raise ManifestError(f"manifest lists {path!r} twice")
        kind = item.get("type")
        if kind == "dir" and path.endswith("/"):
            entries[path] = None
        elif kind == "file" and not path.endswith("/"):
            size, digest = item.get("size"), item.get("sha256")
            if type(size) is not int or size < 0 or not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise ManifestError(f"manifest entry {path!r} has no valid size and sha256")
            entries[path] = (size, digest)
        else:
            raise ManifestError(f"manifest entry {path!r} has type {kind!r}")
    return Manifest(root=root, key_check=key_check, entries=entries)


# -- the entries against the manifest ------------------------------------------------------------------


def entry_problems(
    infos: list[zipfile.ZipInfo], manifest: Manifest | None, *, root: str | None
) -> Iterator[tuple[str, str]]:
    """(path, problem) for every entry that is unsafe, outside `root`, a duplicate, or disagrees with
    the manifest, then for every listed path the archive lacks. Sizes only: hashes need the data."""
    seen: set[str] = set()
    manifests = 0
    for info in infos:
        name = info.orig_filename
        if name == MANIFEST_NAME:
            manifests += 1
            if manifests > 1:
                yield name, "appears more than once"
            continue
        problem = entry_name_problem(name) or entry_type_problem(info)
        if problem is None and root is not None and not name.startswith(root):
            problem = f"lies outside the wallet folder {root}"
        if problem is None and name in seen:
            problem = "appears more than once"
        if problem is not None:
            yield name, problem
            continue
        seen.add(name)
        if manifest is None:
            continue
        if name not in manifest.entries:
            yield name, "is not listed in the manifest"
            continue
        listed = manifest.entries[name]
        if listed is None:
            if not info.is_dir():
                yield name, "is a file but the manifest lists a folder"
        elif info.is_dir():
            yield name, "is a folder but the manifest lists a file"
        elif info.file_size != listed[0]:
            yield name, f"has {info.file_size} bytes, the manifest says {listed[0]}"
    if manifest is not None:
        for path in manifest.entries:
            if path not in seen:
                yield path, "is listed in the manifest but missing from the archive"


def first_problems(problems: Iterator[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """At most `limit` problems, without producing the rest."""
    found: list[tuple[str, str]] = []
    for problem in problems:
        found.append(problem)
        if len(found) >= limit:
            break
    return found
