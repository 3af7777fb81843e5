"""A real `python -m app` for crash tests, optionally with a few lines of Python run first (a "prelude").

Test modules take the `server` fixture from here (`from tests.crashserver import server`).

The prelude patches the server from inside, e.g. to SIGKILL itself at an exact step or to delay the
job store's writes, which is how a test makes a crash land where it wants, on any machine. The
server is then started again without it, as a user would after the crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_e2e import REPO, free_port, http

#: a prelude line that SIGKILLs the server: `KILL` inside a patched function
KILL = "os.kill(os.getpid(), signal.SIGKILL)"

#: the prelude that delays every commit of the job store by DELAY seconds
DELAYED_STORE = """
import time
import jobs.store
_write = jobs.store.JobStore.write_sync
def _slow_write(self, batch):
    time.sleep(DELAY)
    return _write(self, batch)
jobs.store.JobStore.write_sync = _slow_write
"""


def file_size_limit(limit: int) -> str:
    """The prelude of RLIMIT_FSIZE: a write past `limit` bytes fails with EFBIG, as on a full disk
    (Python ignores SIGXFSZ)."""
    return f"import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))"


class CrashServer:
    """One data directory, started and killed as often as a test likes; stopped by the test's fixture."""

    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, prelude: str = "", *, umask: int | None = None) -> None:
        self.starts += 1
        args = ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        code = "\n".join(
            [
                "import os, signal, sys, runpy",
                textwrap.dedent(prelude),
                f"sys.argv = ['app', *{args!r}]",
                "runpy.run_module('app', run_name='__main__', alter_sys=True)",
            ]
        )
        log = open(self.log_dir / f"server-{self.starts}.log", "wb")  # noqa: SIM115 - closed below
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDCOIN_")}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        preexec = None if umask is None else (lambda: os.umask(umask))
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=preexec,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.log()}")
            try:
                if self.request("GET", "/api/health", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.log()}")

    def log(self, start: int | None = None) -> str:
        return (self.log_dir / f"server-{start or self.starts}.log").read_text(errors="replace")

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, Any]:  # fmt: skip
        return http(method, f"http://127.0.0.1:{self.port}{path}", body=body, headers=headers, timeout=timeout)

    def wait_killed(self, timeout: float = 30) -> None:
        """Wait for a server that SIGKILLs itself (its prelude did)."""
        assert self.process is not None
        assert self.process.wait(timeout) == -signal.SIGKILL, self.log()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CrashServer]:
    logs = tmp_path / "logs"
    logs.mkdir()
    running = CrashServer(tmp_path / "Client_Data", logs)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(running.data_dir, ignore_errors=True)  # tens of thousands of files
