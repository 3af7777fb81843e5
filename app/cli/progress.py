"""How a followed job shows on stderr: a live bar on a terminal, one line per phase otherwise, nothing with --json."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn


class Display(Protocol):
    def update(self, job: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def make_display(*, quiet: bool) -> Display:
    if quiet:
        return Silent()
    if sys.stderr.isatty():
        return Bar()
    return PhaseLines()


def phase_of(job: dict[str, Any]) -> str:
    """The job's `phase` (jobs.md); a server without it shows the status, or the message's first word."""
    if job.get("status") != "running":
        return str(job.get("status") or "")
    if job.get("phase"):
        return str(job["phase"])
    words = str(job.get("message") or "").split()
    return words[0].lower() if words else "running"


class Silent:
    def update(self, job: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class PhaseLines:
    """Not a terminal: one line on stderr whenever the phase changes (a log, not an animation)."""

    def __init__(self) -> None:
        self._phase = ""

    def update(self, job: dict[str, Any]) -> None:
        phase = phase_of(job)
        if phase != self._phase:
            self._phase = phase
            print(
                f"{job.get('kind', 'job')} {job.get('id', '')}: {phase} ({job.get('progress', 0)}%)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        pass


class Bar:
    """A terminal: phase, bar, percentage, files, bytes, rate and time left, redrawn on stderr."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[files]}"),
            TextColumn("{task.fields[bytes]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            console=Console(stderr=True),
            refresh_per_second=10,
        )
        self._task: TaskID | None = None
        self._rate = RateEstimate()
        self._progress.start()

    def update(self, job: dict[str, Any]) -> None:
        fields = self._rate.fields(job)
        if self._task is None:
            self._task = self._progress.add_task(phase_of(job), total=100, **fields)
        self._progress.update(self._task, completed=job.get("progress", 0), description=phase_of(job), **fields)

    def close(self) -> None:
        self._progress.refresh()
        self._progress.stop()


class RateEstimate:
    """Rate and time left: the server's `rate`/`eta_seconds` when it sends them, else measured here."""

    def __init__(self) -> None:
        self._first: tuple[float, int, int] | None = None  # (time, bytes_done, progress)

    def fields(self, job: dict[str, Any]) -> dict[str, Any]:
        done, total = job.get("done") or 0, job.get("total") or 0
        bytes_done, bytes_total = job.get("bytes_done") or 0, job.get("bytes_total") or 0
        now, progress = time.monotonic(), int(job.get("progress") or 0)
        if self._first is None and job.get("status") == "running":
            self._first = (now, bytes_done, progress)
        rate, eta = job.get("rate"), job.get("eta_seconds")
        if self._first is not None and now - self._first[0] > 0.2:
            elapsed = now - self._first[0]
            if rate is None and bytes_done > self._first[1]:
                rate = (bytes_done - self._first[1]) / elapsed
            if eta is None and progress > self._first[2]:
                eta = elapsed * (100 - progress) / (progress - self._first[2])
        if job.get("status") in ("completed", "failed", "cancelled"):
            eta = None  # nothing left: the bar says how it ended
        return {
            "files": f"{done:,}/{total:,} files" if total else "",
            "bytes": f"{decimal(bytes_done)}/{decimal(bytes_total)}" if bytes_total else _bytes(bytes_done),
            "rate": f"{decimal(int(rate))}/s" if rate else "",
            "eta": f"{format_seconds(eta)} left" if eta is not None else "",
        }


def _bytes(count: int) -> str:
    return decimal(count) if count else ""


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"
