"""The schedule: 5-field cron and @names stepped by cronsim in an IANA zone, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from jobs.plans.schedule import Schedule, ScheduleError, system_zone, zone_named

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone, *parts, fold=0) -> datetime:
    return datetime(*parts, tzinfo=zone, fold=fold)


def test_next_run_is_the_next_matching_local_time_in_utc():
    schedule = Schedule.parse("30 2 * * *")
    now = local(BERLIN, 2026, 6, 10, 12, 0)
    nxt = schedule.next_after(now, BERLIN)
    assert nxt.tzinfo is UTC
    assert nxt == local(BERLIN, 2026, 6, 11, 2, 30).astimezone(UTC)
    # strictly after: at the run time itself, the next day's
    assert schedule.next_after(nxt, BERLIN) == local(BERLIN, 2026, 6, 12, 2, 30).astimezone(UTC)


def test_lists_ranges_steps_and_names():
    schedule = Schedule.parse("*/15 9-17 * jan,jul mon-fri")
    now = local(BERLIN, 2026, 7, 3, 17, 50)  # a Friday, after the last slot
    assert schedule.next_after(now, BERLIN) == local(BERLIN, 2026, 7, 6, 9, 0).astimezone(UTC)


def test_spring_forward_runs_at_the_first_instant_after_the_gap():
    # Berlin, 29 March 2026: 02:00 -> 03:00; 02:30 does not exist that day.
    schedule = Schedule.parse("30 2 * * *")
    nxt = schedule.next_after(local(BERLIN, 2026, 3, 28, 12, 0), BERLIN)
    assert nxt.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 0)
    assert nxt == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    following = schedule.next_after(nxt, BERLIN)
    assert following.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 30, 2, 30)


def test_spring_forward_in_new_york():
    schedule = Schedule.parse("30 2 * * *")
    nxt = schedule.next_after(local(NEW_YORK, 2026, 3, 7, 23, 0), NEW_YORK)
    assert nxt == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT, the first instant after the gap


def test_fall_back_runs_once_the_first_time():
    # Berlin, 25 October 2026: 03:00 -> 02:00; 02:30 happens twice (00:30 and 01:30 UTC).
    schedule = Schedule.parse("30 2 * * *")
    first = schedule.next_after(local(BERLIN, 2026, 10, 24, 12, 0), BERLIN)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second = schedule.next_after(first, BERLIN)
    assert second.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 10, 26, 2, 30)
    # A clock inside the repeated hour, after the first 02:30: not again at the second 02:30.
    inside = local(BERLIN, 2026, 10, 25, 2, 15, fold=1)
    assert schedule.next_after(inside, BERLIN) == second


def test_weekly_is_sunday_midnight():
    schedule = Schedule.parse("@weekly")
    assert schedule.cron == "0 0 * * 0"
    nxt = schedule.next_after(local(BERLIN, 2026, 12, 2, 8, 0), BERLIN)  # a Wednesday
    assert nxt.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 12, 6, 0, 0)
    assert nxt.astimezone(BERLIN).isoweekday() == 7


@pytest.mark.parametrize(
    ("name", "cron"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_named_schedules(name, cron):
    assert Schedule.parse(name).cron == cron


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("61 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("0 0 32 * *", "Bad day-of-month"),
        ("0 0 * 13 *", "Bad month"),
        ("0 0 * * 8", "Bad day-of-week"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("* * * *", "exactly 5 fields, this has 4"),
        ("0 0 0 * * *", "exactly 5 fields, this has 6"),  # cronsim would take it as seconds
        ("", "exactly 5 fields, this has 0"),
        ("@reboot", "unknown name"),
        (30, "must be a string"),
    ],
)
def test_bad_schedules_say_why(text, reason):
    with pytest.raises(ScheduleError, match=reason):
        Schedule.parse(text)


def test_zones():
    assert zone_named("Europe/Berlin") == BERLIN
    with pytest.raises(ValueError, match="unknown time zone"):
        zone_named("Mars/Olympus_Mons")
    assert isinstance(system_zone(), ZoneInfo)


def test_system_zone_follows_tz(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    assert system_zone() == NEW_YORK
