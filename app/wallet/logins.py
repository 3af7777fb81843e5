"""Login attempts: one key derivation at a time, and failed logins limited to a few a minute."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

#: api.md: five failed logins a minute, then 429 with Retry-After.
MAX_FAILURES = 5
WINDOW_S = 60.0


class LoginGate:
    """Shared by every login request of a server.

    `derivation` is held around scrypt: a derivation takes ~0.1 s of CPU and 32 MiB, so twenty
    logins at once would take every request thread and the memory with them; queued here they
    wait on the event loop instead and the other endpoints keep their threads. The failures are
    counted for the whole server, not per client: every client of a loopback server is local.
    """

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.derivation = asyncio.Lock()
        self._max_failures = max_failures
        self._window_s = window_s
        self._clock = clock
        self._failures: deque[float] = deque()

    def retry_after(self) -> int | None:
        """Whole seconds until another attempt is allowed, or None while attempts are allowed."""
        now = self._clock()
        while self._failures and self._failures[0] <= now - self._window_s:
            self._failures.popleft()
        if len(self._failures) < self._max_failures:
            return None
        return max(1, math.ceil(self._failures[0] + self._window_s - now))

    def failed(self) -> None:
        self._failures.append(self._clock())

    def succeeded(self) -> None:
        """The right password: the failures before it no longer count against the user."""
        self._failures.clear()
