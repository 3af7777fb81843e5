"""The login key: derived at /api/system/login, held in memory only, never written or logged."""

from __future__ import annotations

import threading

from app.wallet.crypto import key_check


class KeyRing:
    """Holds at most one coin-file key. Read from worker threads, so changes are made under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: bytes | None = None

    @property
    def key(self) -> bytes | None:
        with self._lock:
            return self._key

    @property
    def key_check(self) -> bytes | None:
        key = self.key
        return None if key is None else key_check(key)

    def set(self, key: bytes) -> None:
        with self._lock:
            self._key = key

    def clear(self) -> None:
        with self._lock:
            self._key = None

    def __repr__(self) -> str:  # never the key itself
        return f"<KeyRing key_set={self.key is not None}>"
