"""Which of a plan's archives to keep: restic's `forget --keep-*` policy as a pure function.

Archives are ordered newest first by (creation time, file name), so equal times still have one order.
`last` keeps the newest N; `daily`, `weekly`, `monthly` and `yearly` each keep the newest archive of
each of the most recent N days / ISO weeks / months / years that have one, the periods taken in the
plan's zone. An archive kept by any rule stays. A policy of all zeros keeps everything. The archive a
run just made is never forgotten, whatever the policy says.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

#: the rules, in the order restic applies them (the order does not change the result)
RULES = ("last", "daily", "weekly", "monthly", "yearly")


class PolicyError(ValueError):
    """A keep policy that is not an object of known names with JSON integers ≥ 0."""


@dataclass(frozen=True, slots=True)
class KeepPolicy:
    """How many of each kind to keep; 0 means that rule keeps nothing of its own."""

    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    @property
    def keeps_everything(self) -> bool:
        return not any((self.last, self.daily, self.weekly, self.monthly, self.yearly))

    def to_json(self) -> dict[str, int]:
        return {rule: getattr(self, rule) for rule in RULES}

    @classmethod
    def from_json(cls, raw: Any) -> KeepPolicy:
        """Parse the API's `keep` object; absent (None) keeps everything. PolicyError says what is wrong."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise PolicyError("must be an object")
        unknown = sorted(set(raw) - set(RULES))
        if unknown:
            raise PolicyError(f"unknown key '{unknown[0]}' (allowed: {', '.join(RULES)})")
        values: dict[str, int] = {}
        for rule, value in raw.items():
            # bool is an int in Python; JSON's true is not a count.
            if isinstance(value, bool) or not isinstance(value, int):
                raise PolicyError(f"'{rule}' must be an integer")
            if value < 0:
                raise PolicyError(f"'{rule}' must be 0 or more")
            values[rule] = value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Archive:
    """One archive as retention sees it: when it was made (aware) and its file name."""

    created_at: datetime
    name: str


def _periods(zone: tzinfo) -> dict[str, Callable[[datetime, int], Hashable]]:
    def local(moment: datetime) -> datetime:
        return moment.astimezone(zone)

    return {
        "last": lambda moment, index: index,  # every archive is its own period
        "daily": lambda moment, index: local(moment).date(),
        "weekly": lambda moment, index: local(moment).isocalendar()[:2],  # ISO year and week
        "monthly": lambda moment, index: (local(moment).year, local(moment).month),
        "yearly": lambda moment, index: local(moment).year,
    }


def newest_first(archives: Iterable[Archive]) -> list[Archive]:
    return sorted(archives, key=lambda archive: (archive.created_at, archive.name), reverse=True)


def apply_policy(
    archives: Iterable[Archive], policy: KeepPolicy, zone: tzinfo, *, protect: str | None = None
) -> tuple[list[Archive], list[Archive]]:
    """(kept, forgotten), each newest first. `protect` names the archive just made: always kept."""
    ordered = newest_first(archives)
    if policy.keeps_everything:
        return ordered, []
    periods = _periods(zone)
    left = {rule: getattr(policy, rule) for rule in RULES}
    last_seen: dict[str, Hashable] = {}
    kept: list[Archive] = []
    forgotten: list[Archive] = []
    for index, archive in enumerate(ordered):
        keep = archive.name == protect
        for rule in RULES:
            if left[rule] <= 0:
                continue
            period = periods[rule](archive.created_at, index)
            # Newest first: the first archive met in a period is that period's newest.
            if rule not in last_seen or last_seen[rule] != period:
                last_seen[rule] = period
                left[rule] -= 1
                keep = True
        (kept if keep else forgotten).append(archive)
    return kept, forgotten
