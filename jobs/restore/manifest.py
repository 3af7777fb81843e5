"""Reading a backup manifest as a stream: the fields before its entry list, then the entries one by one.

A manifest grows with the wallet (≈ 40 MB for 300,000 coins) and an archive may carry a hostile one,
so nothing reads it whole: the inflated text is decoded in 256 KiB steps into a window that only
ever holds the value being parsed, every value is parsed by its own short `raw_decode` call (the GIL
is released between them, so the event loop keeps answering), and no value may exceed 1 MiB.
The fields after the entry list are checked for well-formed JSON and otherwise skipped.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any

from jobs.backup.manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION
from jobs.restore.archive_checks import entry_name_problem

#: the manifest of a 300,000-coin wallet is ≈ 40 MB; anything beyond this is not one of ours
MAX_MANIFEST = 64 << 20
#: the longest single value (a field, one entry) the parser holds
MAX_VALUE = 1 << 20
_STEP = 1 << 18
_WS = re.compile(r"[ \t\n\r]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# One entry as jobs/backup/archive.py writes it (compact, keys in this order); JSON's optional spaces allowed.
_ITEM = (
    r'[ \t\n\r]*\{"path": ?"([^"\\]+)", ?"type": ?"(file|dir)"'
    r'(?:, ?"size": ?(0|[1-9][0-9]*), ?"sha256": ?"([0-9a-f]{64})")?\}'
)
_FIRST_ITEM = re.compile(_ITEM)
_NEXT_ITEM = re.compile(r"[ \t\n\r]*," + _ITEM)
_decode = json.JSONDecoder().raw_decode


class ManifestError(ValueError):
    """The manifest is missing, unreadable or not one this server writes."""


class ManifestStream:
    """One pass over a manifest's text, given as byte chunks (`head()` first, then `entries()`)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._text = codecs.getincrementaldecoder("utf-8")("strict")
        self._buf = ""
        self._pos = 0
        self._eof = False
        self.root = ""
        self.key_check: str | None = None
        self._first = True

    def _more(self) -> bool:
        """Append the next piece of text to the window (dropping what was parsed); False at the end."""
        if self._eof:
            return False
        try:
            raw = next(self._chunks, None)
            text = self._text.decode(raw or b"", final=raw is None)
        except UnicodeDecodeError:
            raise ManifestError(f"{MANIFEST_NAME} is not valid JSON") from None
        self._eof = raw is None
        self._buf = self._buf[self._pos :] + text
        self._pos = 0
        return True

    def _skip(self) -> str:
        """Skip whitespace; the next character, or "" at the end of the text."""
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._more():
                return ""

    def _expect(self, chars: str) -> str:
        char = self._skip()
        if not char or char not in chars:
            raise ManifestError(f"{MANIFEST_NAME} is not valid JSON")
        self._pos += 1
        return char

    def _value(self) -> Any:
        """The JSON value at the window's position; more text is read while it is incomplete."""
        self._skip()
        while True:
            try:
                value, end = _decode(self._buf, self._pos)
            except (ValueError, RecursionError):
                if len(self._buf) - self._pos > MAX_VALUE:
                    raise ManifestError(
                        f"{MANIFEST_NAME} is not valid JSON, or holds a value over {MAX_VALUE:,} characters"
                    ) from None
                if not self._more():
                    raise ManifestError(f"{MANIFEST_NAME} is not valid JSON") from None
                continue
            # A number or literal may go on in the text not yet read ("12" of "123"): read on to be sure.
            if end == len(self._buf) and not self._eof and not isinstance(value, (dict, list, str)):
                self._more()
                continue
            self._pos = end
            return value

    def head(self) -> None:
        """Read and check the fields before "entries" (format, version, root, key_check)."""
        self._expect("{")
        fields: dict[str, Any] = {}
        while True:
            if self._skip() == "}" and not fields:
                break
            key = self._value()
            if not isinstance(key, str):
                raise ManifestError(f"{MANIFEST_NAME} is not valid JSON")
            self._expect(":")
            if key == "entries":
                if self._skip() != "[":
                    _check_head(fields)
                    raise ManifestError("manifest entries are not a list")
                self._pos += 1
                self.root, self.key_check = _check_head(fields)
                self._first = True
                return
            fields[key] = self._value()
            if self._expect(",}") == "}":
                break
        _check_head(fields)
        raise ManifestError("manifest entries are not a list")

    def take(self, item: str) -> bool:
        """Consume the next entry if its text is exactly `item` (this server's compact form, after the
        first entry); False, consuming nothing, otherwise. A restore compares its entries this way,
        with no parsing, and parses only where the texts differ."""
        if len(self._buf) - self._pos < len(item) + 2 and not self._eof:
            self._more()
        if self._first or not self._buf.startswith(",\n", self._pos) or not self._buf.startswith(item, self._pos + 2):
            return False
        self._pos += 2 + len(item)
        return True

    def window(self) -> tuple[str, int]:
        """(text in hand, position) for a caller that compares this server's lines itself (`take`'s
        fast path, with the ",\\n" before each line included); the text is "" before the first entry,
        which has no comma. Hand the position back with `seek` before any other call."""
        return ("" if self._first else self._buf), self._pos

    def seek(self, pos: int) -> None:
        """Take back the position of a `window()` after lines were matched in it."""
        self._pos = pos

    def entries(self) -> Iterator[tuple[str, int, str] | tuple[str, None, None]]:
        """(path, size, sha256) of each listed file, (path, None, None) of each folder; then the rest is checked."""
        root = self.root
        first = True
        fast = (_FIRST_ITEM.match, _NEXT_ITEM.match)
        while True:
            # This server's own lines, one regular expression each; anything else the general way.
            found = fast[not first](self._buf, self._pos)
            if found is not None:
                path, kind, size, digest = found.groups()
                if path.startswith(root) and (kind == "dir") == (path[-1] == "/") == (size is None):
                    self._pos = found.end()
                    first = self._first = False
                    yield (path, None, None) if size is None else (path, int(size), digest)
                    continue
            if first:
                if self._skip() == "]":
                    self._pos += 1
                    break
            elif self._expect(",]") == "]":
                break
            item = self._value()
            first = self._first = False
            yield _entry(item, root)
        # The fields after the list: well-formed JSON, nothing more is asked of them.
        while self._expect(",}") == ",":
            if not isinstance(self._value(), str):
                raise ManifestError(f"{MANIFEST_NAME} is not valid JSON")
            self._expect(":")
            self._value()
        if self._skip():
            raise ManifestError(f"{MANIFEST_NAME} is not valid JSON")


def _check_head(fields: dict[str, Any]) -> tuple[str, str | None]:
    """(root, key_check) of a manifest head this server can restore; ManifestError otherwise."""
    if fields.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{MANIFEST_NAME} is not a CloudCoin wallet backup manifest")
    version = fields.get("format_version")
    if type(version) is not int or version != MANIFEST_VERSION:
        raise ManifestError(f"manifest format_version {version!r} is not supported (only {MANIFEST_VERSION})")
    root = fields.get("root")
    if (
        not isinstance(root, str)
        or not root.endswith("/")
        or root.count("/") != 1
        or entry_name_problem(root) is not None
    ):
        raise ManifestError(f"manifest root {root!r} is not a single folder name")
    key_check = fields.get("key_check")
    if key_check is not None and not isinstance(key_check, str):
        raise ManifestError("manifest key_check is not a string")
    return root, key_check


def _entry(item: Any, root: str) -> tuple[str, int, str] | tuple[str, None, None]:
    path = item.get("path") if type(item) is dict else None
    if not isinstance(path, str) or not path.startswith(root):
        raise ManifestError(f"manifest lists an entry outside its root {root}: {path!r}")
    kind = item["type"] if "type" in item else None
    if kind == "file" and path[-1] != "/":
        size, digest = item.get("size"), item.get("sha256")
        if type(size) is not int or size < 0 or type(digest) is not str or not _SHA256.fullmatch(digest):
            raise ManifestError(f"manifest entry {path!r} has no valid size and sha256")
        return path, size, digest
    if kind == "dir" and path[-1] == "/":
        return path, None, None
    raise ManifestError(f"manifest entry {path!r} has type {kind!r}")
