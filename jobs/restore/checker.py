"""The one checker restore and verify share: a backup archive's structure, names, manifest and data.

Both jobs drive a `BackupCheck` the same way, so they refuse exactly the same archives:

1. `scan()` streams the central directory (jobs/zip/reader.py): its structure, every name (zip-slip,
   depth, length), every type (no links, no devices), duplicates and file/folder collisions, the
   totals; no data is read. Duplicates are found from 64-bit name hashes kept in flat arrays
   (8 bytes an entry), and confirmed by name in a second pass only when a hash repeats.
2. `read_manifest()` reads the manifest's fields before its entry list (jobs/restore/manifest.py).
3. `entries()` reads the data in file order with one sequential read and compares each entry with
   the manifest's next one (path, type, size, SHA-256), the reader checking the CRC-32. A manifest
   written by this server lists the entries in archive order, so it is streamed alongside; when the
   orders differ (a hand-built archive), the rest of the manifest is indexed by path (up to
   `MAX_INDEX` entries).

Every problem goes to the `on_problem(path, problem, kind)` callback as it is found: restore raises
its refusal from there (the first problem stops it), verify collects them and the check goes on.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator

from jobs.backup.manifest import MANIFEST_NAME
from jobs.models import JobCancelled
from jobs.restore.archive_checks import MAX_COMPONENT, MAX_DEPTH, REPORT_EVERY, entry_name_problem, entry_type_problem
from jobs.restore.manifest import MAX_MANIFEST, ManifestError, ManifestStream
from jobs.zip.reader import ArchiveError, EntryDamaged, Record, ZipReader

#: problem kinds, for the jobs' wording
STRUCTURE, NAME, MANIFEST, LISTING, DAMAGED, DIGEST = "structure", "name", "manifest", "listing", "damaged", "digest"
#: a check stops after this many problems
MAX_PROBLEMS = 1000
#: the most manifest entries indexed by path when the manifest and the archive disagree on the order
MAX_INDEX = 100_000
SHA_DIFFERS = "SHA-256 differs from the manifest"
#: the loops below are pure Python for long stretches; every 128 entries (~0.2 ms) they look for a
#: cancel and, under Python's default switch interval (5 ms), let the GIL go so that the event loop
#: never waits a whole interval per step of a request (P3)
_YIELD_EVERY = 127
#: `check_all`'s progress calls, at one of every two of those points
_STEP_EVERY = REPORT_EVERY - 1
#: the server shortens the switch interval (app/web/server.py) and then hands the GIL over by itself;
#: a sleep(0) there only costs (a system call, and on a busy machine the CPU given away: a quarter of
#: a 20,000-entry verify was spent in it)
_SHORT_SWITCH = 0.001


def _yield_gil() -> None:
    if sys.getswitchinterval() > _SHORT_SWITCH:
        time.sleep(0)


OnProblem = Callable[[str, str, str], None]
#: what `entries()` yields: (name, is a folder, data or chunks or None, DOS date and time, size)
Entry = tuple[str, bool, "bytes | Iterator[bytes] | None", int, int]


class CheckStopped(Exception):
    """Too many problems: the check ends here (raised from `problem`, also inside a big entry's chunks)."""


def _name(record: Record) -> str:
    return record.name.decode("utf-8", "replace") if record.flags & 0x800 else record.name.decode("cp437")


def _manifest_problem(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ManifestError) else f"{MANIFEST_NAME} cannot be read: {exc}"


def _plain(name: str) -> bool:
    """True when JSON writes `name` as it is, between quotes (no escapes)."""
    return name.isascii() and name.isprintable() and '"' not in name and "\\" not in name


def _safe_fast(name: str) -> bool:
    """True for the common names `entry_name_problem` would pass, decided with a few C-level tests."""
    return (
        name != ""
        and name.isascii()
        and len(name) <= MAX_COMPONENT
        and "\\" not in name
        and "\0" not in name
        and "/." not in name
        and "//" not in name
        and name[0] not in "./"
        and name[1:2] != ":"
        and name.count("/") < MAX_DEPTH  # at most MAX_DEPTH parts, a file's name after the last "/" included
    )


class BackupCheck:
    """One check of one archive, used once from one thread: `scan()`, `read_manifest()`, `entries()`."""

    def __init__(self, reader: ZipReader, on_problem: OnProblem, cancel: threading.Event) -> None:
        self.reader = reader
        self._on_problem = on_problem
        self._cancel = cancel
        self.problems = 0
        self.files = self.folders = self.bytes_total = 0
        self.checked = 0  # entries read by `entries()`, the manifest included
        self.position = 0  # where in the archive the data pass is (for progress in bytes)
        self.manifest_record: Record | None = None
        self.manifest: ManifestStream | None = None
        self.folder_paths: set[str] = set()  # every folder an entry lies in or is, without the final "/"
        self._bad: set[str] = set()  # names refused by the scan: their data is not read
        self._buckets: list[array[int]] = []  # 64-bit name hashes, spread over 64 flat arrays
        self._inline = False  # the directory's checks are made in the data pass (`check_all`)
        self._step: Callable[[], None] | None = None  # called every `_STEP_EVERY + 1` entries of the data pass

    @property
    def manifest_found(self) -> bool:
        return self.manifest_record is not None

    def problem(self, path: str, problem: str, kind: str) -> None:
        self.problems += 1
        self._on_problem(path, problem, kind)
        if self.problems >= MAX_PROBLEMS:
            self._on_problem("", "too many problems; the check stopped", STRUCTURE)
            raise CheckStopped

    # -- 1. the central directory ------------------------------------------------------------------

    def scan(self) -> bool:
        """Names, types, duplicates, collisions and totals from the directory; False if it is broken."""
        buckets = self._buckets = [array("q") for _ in range(64)]
        seen = 0
        try:
            try:
                for record in self.reader.records():
                    seen += 1
                    if not seen & _YIELD_EVERY:
                        _yield_gil()
                    name = _name(record)
                    if name == MANIFEST_NAME:
                        if self.manifest_record is not None:
                            self.problem(name, "appears more than once", NAME)
                        self.manifest_record = record
                        continue
                    self._note(name, record[1], record[7], record[5], buckets)
            except ArchiveError as exc:
                self.problem(exc.path, exc.problem, STRUCTURE)
                return False
            self._finish_scan()
        except CheckStopped:
            return False
        finally:
            self._buckets = []
        return True

    def _note(self, name: str, flags: int, attr: int, usize: int, buckets: list[array[int]]) -> None:
        """The directory's checks of one entry but the manifest; a refused name joins `_bad`. The
        totals are counted by `scan()` only (restore's progress): `check_all()` needs none."""
        mode = attr >> 16 & 0o170000
        problem = (None if _safe_fast(name) else entry_name_problem(name)) or (
            None
            if (mode == 0o100000 or mode == 0 or (mode == 0o040000 and name[-1] == "/")) and not flags & 1
            else entry_type_problem(name, attr, flags)
        )
        if problem is not None:
            self._bad.add(name)
            self.problem(name, problem, NAME)
            return
        h = hash(name)
        buckets[h & 63].append(h)
        if name[-1] == "/":
            folder = name[:-1]
            if not self._inline:
                self.folders += 1
        else:
            folder = name.rpartition("/")[0]
            if not self._inline:
                self.files += 1
                self.bytes_total += usize
        folders = self.folder_paths
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]

    def _finish_scan(self) -> None:
        buckets, self._buckets = self._buckets, []  # 8 bytes an entry: not kept past their use
        suspects = self._suspects(buckets)
        del buckets
        if suspects:
            self._name_clashes(suspects)

    def check_all(self, step: Callable[[], None] | None = None) -> None:
        """Verify's one pass: every check of `scan()`, `read_manifest()` and `entries()`, with the
        directory's checks made as the data comes (nothing is written, so nothing must wait for them).
        Takes the two passes when the manifest is not the directory's last record. Nothing is handed
        on (a big entry's chunks are read here, its checks come after the last one); `step()` is
        called every `_STEP_EVERY + 1` entries, `checked` and `position` brought up to date."""
        self._step = step
        try:
            last = self.reader.last_record()
            if last is None or _name(last) != MANIFEST_NAME:
                if self.scan():
                    self.read_manifest()
                    self._drain_all()
                return
            self.manifest_record = last
            self._buckets = [array("q") for _ in range(64)]
            self._inline = True
            self.read_manifest()
            if self._drain_all():
                try:
                    self._finish_scan()
                except CheckStopped:
                    return
        finally:
            # `step` most often refers to this check: a cycle that would keep the name hashes (8
            # bytes an entry) alive until the garbage collector's next full pass.
            self._step = None
            self._buckets = []

    def _drain_all(self) -> bool:
        """Run the data pass for its checks alone; False when it stopped (too many problems)."""
        try:
            for _, is_dir, data, _, _ in self._entries(emit=False):
                if data is not None and not is_dir and type(data) is not bytes:
                    for _ in data:
                        pass
        except CheckStopped:
            return False
        return True

    def _suspects(self, buckets: list[array[int]]) -> set[int]:
        """Hashes seen twice, or of a file named like a folder: confirmed or dismissed by name."""
        folder_hashes = {hash(folder) for folder in self.folder_paths}
        suspects: set[int] = set()
        for bucket in buckets:
            unique = set(bucket)
            suspects |= folder_hashes & unique
            if len(unique) != len(bucket):
                seen: set[int] = set()
                for h in bucket:
                    if h in seen:
                        suspects.add(h)
                    seen.add(h)
        return suspects

    def _name_clashes(self, suspects: set[int]) -> None:
        seen: set[str] = set()
        for record in self.reader.records():
            name = _name(record)
            if name in self._bad or hash(name) not in suspects:
                continue
            if name in seen:
                self._bad.add(name)
                self.problem(name, "appears more than once", NAME)
            elif name[-1] != "/" and name in self.folder_paths:
                self._bad.add(name)
                self.problem(name, "collides with another entry", NAME)
            seen.add(name)

    # -- 2. the manifest's head --------------------------------------------------------------------

    def read_manifest(self) -> bool:
        """Read the manifest's fields before its entries; False (reported) when there is no usable one."""
        record = self.manifest_record
        try:
            try:
                if record is None:
                    raise ManifestError(f"the archive has no {MANIFEST_NAME}")
                if record.usize > MAX_MANIFEST:
                    raise ManifestError(
                        f"{MANIFEST_NAME} is too large ({record.usize:,} bytes; at most {MAX_MANIFEST >> 20} MiB)"
                    )
                stream = ManifestStream(self.reader.read_entry(record))
                stream.head()
            except (ManifestError, ArchiveError, EntryDamaged) as exc:
                self.problem(MANIFEST_NAME, _manifest_problem(exc), MANIFEST)
                return False
        except CheckStopped:
            return False
        self.manifest = stream
        return True

    @property
    def root(self) -> str | None:
        return self.manifest.root if self.manifest is not None else None

    # -- 3. the data -------------------------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        """Every sound entry but the manifest, in file order, checked against the manifest as it comes."""
        try:
            yield from self._entries()
        except CheckStopped:
            return

    def _entries(self, emit: bool = True) -> Iterator[Entry]:
        """The data pass of `entries()` and `check_all()`; with `emit` False (verify: nothing is written)
        the fast branch hands nothing on, so that its entries cost no step of a generator."""
        manifest = self.manifest
        root = manifest.root if manifest is not None else None
        listing = manifest.entries() if manifest is not None else None
        index: dict[str, tuple[str, int | None, str | None]] | None = None
        pending: tuple[str, int | None, str | None] | None = None  # the manifest's next entry, not yet matched
        # The fast branch runs while the manifest is streamed in archive order: no pending entry, no index.
        fast = listing is not None
        bad = self._bad
        stopped = self._cancel.is_set
        step = self._step
        sha256 = hashlib.sha256
        report = self.problem
        inline, note, buckets = self._inline, self._note, self._buckets
        manifest_offset = self.manifest_record.offset if self.manifest_record is not None else -1
        folder_paths = self.folder_paths
        last_folder = None  # the folder of the entry before, known to be in folder_paths
        checked = self.checked
        mbuf = ""  # the manifest's text while lines are matched here ("" when the stream holds it), the position in it
        mpos = 0
        try:
            for name_b, flags, _method, _crc, _csize, usize, offset, attr, dos, data, damage in self.reader.rows():
                checked += 1
                if not checked & _YIELD_EVERY:  # every 128 entries: a cancel, the GIL, the position
                    self.checked = checked
                    if stopped():
                        raise JobCancelled()
                    _yield_gil()
                    self.position = offset
                    if step is not None and not checked & _STEP_EVERY:
                        step()
                try:  # an ASCII name reads the same in UTF-8 and in code page 437
                    name = name_b.decode("ascii")
                except UnicodeDecodeError:
                    name = name_b.decode("utf-8", "replace") if flags & 0x800 else name_b.decode("cp437")
                # This server's own entry, sound, its manifest line next in the manifest's text: every
                # check of the general path below (and of `_note`), in as few operations as they take.
                # Whatever is not plainly so goes on to the general path, untouched.
                # - names: under the root (which the manifest's head passed through entry_name_problem:
                #   no drive, no '.', '..', '/' or empty first part), printable ASCII without '"' or
                #   '\\' (JSON writes it as it is; no NUL), no part that is empty or starts with '.',
                #   and under 128 characters: no part too long, and (each '/' after a character that is
                #   not one) at most 63 '/', so at most 64 parts, as entry_name_problem asks;
                # - types: a regular file, a folder named so, or no mode (the top 4 bits of the
                #   external attributes); data in bytes means the reader found it sound, not encrypted
                #   and not over CHUNK.
                if (
                    fast
                    and type(data) is bytes
                    and len(name) < 128
                    and name.startswith(root)  # type: ignore[arg-type]
                    and name.isascii()
                    and name.isprintable()
                    and '"' not in name
                    and "\\" not in name
                    and "/." not in name
                    and "//" not in name
                    and name not in bad
                ):
                    kind = attr >> 28
                    if name[-1] == "/":
                        if kind == 4 or kind == 0:
                            line = f',\n{{"path":"{name}","type":"dir"}}'
                            if not mbuf:
                                mbuf, mpos = manifest.window()  # type: ignore[union-attr]
                            if mbuf.startswith(line, mpos):
                                mpos += len(line)
                                if inline:  # `_note`'s bookkeeping of a name it passes
                                    h = hash(name)
                                    buckets[h & 63].append(h)
                                    folder = name[:-1]
                                    if folder != last_folder:
                                        last_folder = folder
                                        while folder and folder not in folder_paths:
                                            folder_paths.add(folder)
                                            folder = folder.rpartition("/")[0]
                                if emit:
                                    yield name, True, None, dos, 0
                                continue
                    elif kind == 8 or kind == 0:
                        line = (
                            f',\n{{"path":"{name}","type":"file","size":{usize},"sha256":"{sha256(data).hexdigest()}"}}'
                        )
                        if not mbuf:
                            mbuf, mpos = manifest.window()  # type: ignore[union-attr]
                        if mbuf.startswith(line, mpos):
                            mpos += len(line)
                            if inline:
                                h = hash(name)
                                buckets[h & 63].append(h)
                                folder = name.rpartition("/")[0]
                                if folder != last_folder:
                                    last_folder = folder
                                    while folder and folder not in folder_paths:
                                        folder_paths.add(folder)
                                        folder = folder.rpartition("/")[0]
                            if emit:
                                yield name, False, data, dos, usize
                            continue
                if mbuf:  # the general path reads the manifest itself (and reads on where the text in hand ends)
                    manifest.seek(mpos)  # type: ignore[union-attr]
                    mbuf = ""
                if inline:
                    if name != MANIFEST_NAME:
                        note(name, flags, attr, usize, buckets)
                    elif offset != manifest_offset:
                        self._bad.add(name)
                        report(name, "appears more than once", NAME)
                        continue
                if name == MANIFEST_NAME:
                    if damage is not None:
                        report(name, damage, DAMAGED)
                    elif data is not None and not isinstance(data, bytes):
                        self._drain(name, data)
                    continue
                if root is not None and not name.startswith(root) and name not in bad:
                    report(name, f"lies outside the wallet folder {root}", LISTING)
                    continue
                listed = None
                if listing is not None:
                    # This server's manifests list the entries in archive order, in a text the entry
                    # itself gives: compared as text, parsed only where it differs.
                    try:
                        if pending is None and index is None and damage is None and name not in bad:
                            if name[-1] == "/":
                                if _plain(name) and manifest.take(f'{{"path":"{name}","type":"dir"}}'):  # type: ignore[union-attr]
                                    yield name, True, None, dos, 0
                                    continue
                            elif type(data) is bytes:
                                hexdigest = sha256(data).hexdigest()
                                if _plain(name) and manifest.take(  # type: ignore[union-attr]
                                    f'{{"path":"{name}","type":"file","size":{usize},"sha256":"{hexdigest}"}}'
                                ):
                                    yield name, False, data, dos, usize
                                    continue
                        if index is None:
                            if pending is None:
                                pending = next(listing, None)
                            if pending is not None and pending[0] == name:
                                listed, pending = pending, None
                            elif pending is not None and name not in bad:
                                index = self._index(pending, listing)
                                pending = None
                        if index is not None:
                            listed = index.pop(name, None)
                    except (ManifestError, ArchiveError, EntryDamaged) as exc:
                        report(MANIFEST_NAME, _manifest_problem(exc), MANIFEST)
                        listing = index = pending = None
                    fast = pending is None and index is None and listing is not None
                if name in bad:
                    continue
                if listing is not None:
                    if listed is None:
                        report(name, "is not listed in the manifest", LISTING)
                        continue
                    size = listed[1]
                    if size is None:
                        if name[-1] != "/":
                            report(name, "is a file but the manifest lists a folder", LISTING)
                            continue
                    elif name[-1] == "/":
                        report(name, "is a folder but the manifest lists a file", LISTING)
                        continue
                    elif usize != size:
                        report(name, f"has {usize} bytes, the manifest says {size}", LISTING)
                        continue
                if damage is not None:
                    report(name, damage, DAMAGED)
                    continue
                if name[-1] == "/":
                    yield name, True, None, dos, 0
                    continue
                digest = listed[2] if listed is not None else None
                if type(data) is bytes:
                    if digest is not None and sha256(data).hexdigest() != digest:
                        report(name, SHA_DIFFERS, DIGEST)
                        continue
                    yield name, False, data, dos, usize
                else:
                    yield name, False, self._hashed(name, data, digest), dos, usize  # type: ignore[arg-type]
        except ArchiveError as exc:
            report(exc.path, exc.problem, STRUCTURE)
            return
        finally:
            self.checked = checked
            if mbuf:
                manifest.seek(mpos)  # type: ignore[union-attr]
        if listing is not None:
            try:
                if pending is not None:
                    report(pending[0], "is listed in the manifest but missing from the archive", LISTING)
                rest = iter(index) if index is not None else (listed[0] for listed in listing)
                for path in rest:
                    report(path, "is listed in the manifest but missing from the archive", LISTING)
            except (ManifestError, ArchiveError, EntryDamaged) as exc:
                report(MANIFEST_NAME, _manifest_problem(exc), MANIFEST)

    def _index(
        self, first: tuple[str, int | None, str | None], listing: Iterator[tuple[str, int | None, str | None]]
    ) -> dict[str, tuple[str, int | None, str | None]]:
        index = {first[0]: first}
        for listed in listing:
            if listed[0] in index:
                raise ManifestError(f"manifest lists {listed[0]!r} twice")
            index[listed[0]] = listed
            if len(index) > MAX_INDEX:
                raise ManifestError(
                    f"manifest lists its entries in another order than the archive (over {MAX_INDEX:,} apart)"
                )
        return index

    def _drain(self, name: str, chunks: Iterator[bytes]) -> None:
        try:
            for _ in chunks:
                pass
        except EntryDamaged as exc:
            self.problem(name, str(exc), DAMAGED)

    def _hashed(self, name: str, chunks: Iterator[bytes], digest: str | None) -> Iterator[bytes]:
        """A big entry's chunks, its SHA-256 compared with the manifest after the last one."""
        hasher = hashlib.sha256()
        try:
            for chunk in chunks:
                hasher.update(chunk)
                yield chunk
        except EntryDamaged as exc:
            self.problem(name, str(exc), DAMAGED)
            return
        if digest is not None and hasher.hexdigest() != digest:
            self.problem(name, SHA_DIFFERS, DIGEST)
