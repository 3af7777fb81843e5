"""The archive's output file: unbuffered writes that keep a running SHA-256, and its fsync in the background."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any


class HashingFile:
    """The archive's output: unbuffered writes to `fd` (opened for reading too), SHA-256 as they go out.

    The ZipWriter writes front to back, except that it seeks back to patch the header of an entry
    it streamed (the manifest, files over 1 MiB) and cuts off an entry whose source failed. Such a
    write makes the running hash stale from that offset on; `hexdigest()` then resumes from the
    last saved hash state before it (one is saved every 4 MiB, a copy of ~200 bytes) and reads only
    the rest of the file back. A wallet's archive is hashed almost entirely while it is written.
    """

    __slots__ = ("_fd", "_pos", "_hashed", "_digest", "_saved", "_stale_from", "write_error")

    _SAVE_EVERY = 4 << 20

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0
        self._hashed = 0
        self._digest: Any = hashlib.sha256()
        self._saved: list[tuple[int, Any]] = [(0, self._digest.copy())]
        self._stale_from: int | None = None
        #: the first write that failed (disk full, I/O error): the archive is lost, not one file
        self.write_error: OSError | None = None

    def __repr__(self) -> str:
        return f"<HashingFile pos={self._pos} hashed={self._hashed} stale_from={self._stale_from}>"

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of `data` (short writes are retried here) and return its length."""
        pos = self._pos
        size = len(data)
        try:
            n = os.write(self._fd, data)
            if n < size:
                with memoryview(data) as view:
                    while n < size:
                        n += os.write(self._fd, view[n:])
        except OSError as exc:
            self.write_error = exc
            # What did reach the file is unknown: rehash it all from the last saved state.
            self._stale(pos)
            self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
            raise
        if pos == self._hashed:
            if pos - self._saved[-1][0] >= self._SAVE_EVERY:
                self._saved.append((pos, self._digest.copy()))
            self._digest.update(data)
            self._hashed = pos + n
        else:
            self._stale(pos)
        self._pos = pos + n
        return n

    def _stale(self, offset: int) -> None:
        if self._stale_from is None or offset < self._stale_from:
            self._stale_from = offset

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = os.lseek(self._fd, offset, whence)
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        os.ftruncate(self._fd, size)
        if size < self._hashed:
            self._stale(size)
        return size

    def flush(self) -> None:
        pass

    def hexdigest(self) -> str:
        """The SHA-256 of the whole file as it is now."""
        end = os.fstat(self._fd).st_size
        if self._stale_from is None and self._hashed == end:
            return self._digest.hexdigest()
        stale_from = min(self._stale_from if self._stale_from is not None else end, self._hashed)
        offset, saved = max((item for item in self._saved if item[0] <= stale_from), key=lambda item: item[0])
        digest = saved.copy()
        while offset < end and (chunk := os.pread(self._fd, min(1 << 20, end - offset), offset)):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()


class BackgroundSync:
    """`os.fsync(fd)` in a thread of its own, started now; `wait()` joins it and raises its error.

    The backup reads its archive back while the disk takes it: the fsync waits on the device with
    the GIL released, the read-back is CPU work, so the two overlap (≈ 70 ms of a 100,000-coin
    backup). The caller must `wait()` before it closes `fd`, whatever happened meanwhile.
    """

    __slots__ = ("_thread", "_error")

    def __init__(self, fd: int) -> None:
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(fd,), name="backup-fsync", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<BackgroundSync alive={self._thread.is_alive()} error={self._error!r}>"

    def _run(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error
