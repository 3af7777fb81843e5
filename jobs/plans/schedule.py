"""When a plan runs: its cron expression, checked and stepped by cronsim, in the server's IANA zone.

A schedule is a standard 5-field cron expression or one of the five `@` names. The field count is
checked here, before the library sees it (cronsim would also take a 6-field form with seconds).
Daylight saving is what cronsim does for Debian's cron: a time that does not exist (spring forward)
runs at the first instant after the gap; a time that happens twice (fall back) runs once, the first
time. Every instant leaves this module in UTC, so comparisons never depend on a `fold`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

#: the `@` names and the 5-field expressions they stand for
NAMED = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}
#: what each field accepts, added to cronsim's terse "Bad minute"
_RANGES = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31",
    "month": "1-12 or jan-dec",
    "day-of-week": "0-7 or sun-sat",
}
#: steps to get strictly past a moment: one, or two inside the repeated hour of a fall-back day
_MAX_STEPS = 4


class ScheduleError(ValueError):
    """The schedule cannot be used; the message says why (the library's reason where it has one)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule: `text` as the client gave it, `cron` the 5-field form the library steps."""

    text: str
    cron: str

    @classmethod
    def parse(cls, text: object) -> Schedule:
        if not isinstance(text, str):
            raise ScheduleError("must be a string")
        stripped = text.strip()
        cron = NAMED.get(stripped.lower())
        if cron is None:
            if stripped.startswith("@"):
                raise ScheduleError(f"unknown name (use one of {', '.join(NAMED)})")
            fields = stripped.split()
            if len(fields) != 5:
                raise ScheduleError(f"a cron expression has exactly 5 fields, this has {len(fields)}")
            cron = " ".join(fields)
        try:
            next(CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC)))
        except CronSimError as exc:
            raise ScheduleError(_reason(exc)) from None
        except StopIteration:
            raise ScheduleError("it never matches a date") from None
        return cls(text=stripped, cron=cron)

    def next_after(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The first run strictly after `moment` (aware), in UTC."""
        moment = moment.astimezone(UTC)
        steps = CronSim(self.cron, moment.astimezone(zone))
        for _ in range(_MAX_STEPS):
            candidate = next(steps).astimezone(UTC)
            # Inside the repeated hour of a fall-back day the library counts wall time: a time it
            # returns may be the first occurrence, already past; the next one is the right run.
            if candidate > moment:
                return candidate
        raise ScheduleError(f"no run after {moment.isoformat()}")


def _reason(exc: CronSimError) -> str:
    reason = str(exc) or "not a cron expression"
    for name, allowed in _RANGES.items():
        if reason == f"Bad {name}":
            return f"{reason} (allowed: {allowed}, lists, ranges and steps)"
    return reason


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError when this machine does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def system_zone() -> ZoneInfo:
    """The system's zone as an IANA zone (not a fixed offset): TZ, /etc/timezone, /etc/localtime; else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for candidate in candidates:
        if candidate and not candidate.startswith("/"):
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")
