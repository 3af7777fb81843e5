"""Retention: restic's forget --keep-* semantics over (creation time, file name) in the plan's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobs.plans.retention import Archive, KeepPolicy, PolicyError, apply_policy

BERLIN = ZoneInfo("Europe/Berlin")


def at(day: date | str, hour: int = 12, minute: int = 0, zone=UTC) -> datetime:
    if isinstance(day, str):
        day = date.fromisoformat(day)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def archives(*moments: datetime) -> list[Archive]:
    return [Archive(moment, f"a-{moment.isoformat()}.zip") for moment in moments]


def kept_days(kept: list[Archive], zone=UTC) -> list[str]:
    return [archive.created_at.astimezone(zone).date().isoformat() for archive in kept]


def oracle(items: list[Archive], policy: KeepPolicy, zone) -> set[str]:
    """The policy computed another way: group by period, newest of each group, the N newest groups."""
    ordered = sorted(items, key=lambda a: (a.created_at, a.name), reverse=True)
    keep = {a.name for a in ordered[: policy.last]}
    keys = {
        "daily": lambda d: d.date(),
        "weekly": lambda d: d.isocalendar()[:2],
        "monthly": lambda d: (d.year, d.month),
        "yearly": lambda d: d.year,
    }
    for rule, key in keys.items():
        newest: dict[object, Archive] = {}
        for archive in ordered:
            newest.setdefault(key(archive.created_at.astimezone(zone)), archive)
        groups = sorted(newest.values(), key=lambda a: (a.created_at, a.name), reverse=True)
        keep |= {a.name for a in groups[: getattr(policy, rule)]}
    return keep


def test_all_zero_or_absent_keeps_everything():
    items = archives(*(at(date(2026, 1, 1) + timedelta(days=n)) for n in range(10)))
    kept, forgotten = apply_policy(items, KeepPolicy(), UTC)
    assert forgotten == [] and len(kept) == 10
    assert KeepPolicy.from_json(None) == KeepPolicy()
    assert KeepPolicy.from_json({}).keeps_everything


def test_keep_last_keeps_the_newest_n():
    items = archives(*(at(date(2026, 1, 1) + timedelta(days=n)) for n in range(5)))
    kept, forgotten = apply_policy(items, KeepPolicy(last=3), UTC)
    assert kept_days(kept) == ["2026-01-05", "2026-01-04", "2026-01-03"]
    assert kept_days(forgotten) == ["2026-01-02", "2026-01-01"]


def test_keep_daily_keeps_the_newest_of_each_day_with_several_per_day():
    items = archives(*(at(date(2026, 3, 1) + timedelta(days=d), hour=h) for d in range(5) for h in (1, 9, 17)))
    kept, _ = apply_policy(items, KeepPolicy(daily=3), UTC)
    assert [(a.created_at.day, a.created_at.hour) for a in kept] == [(5, 17), (4, 17), (3, 17)]


def test_keep_daily_counts_days_that_have_an_archive_not_calendar_days():
    # Gaps: nothing between the 2nd and the 5th, nor between the 5th and the 10th.
    items = archives(*(at(f"2026-04-{d:02d}") for d in (1, 2, 5, 10, 11)))
    kept, forgotten = apply_policy(items, KeepPolicy(daily=3), UTC)
    assert kept_days(kept) == ["2026-04-11", "2026-04-10", "2026-04-05"]
    assert kept_days(forgotten) == ["2026-04-02", "2026-04-01"]


def test_restic_documented_hundred_years_of_daily_backups():
    # restic's docs: daily backups for 100 years and
    # `forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75` keep the most recent
    # 7 dailies, then 4 more last-days-of-the-week (the 7 dailies already hold one), 11 or 12
    # last-days-of-the-month and 75 last-days-of-the-year.
    start = date(1930, 1, 1)
    items = archives(*(at(start + timedelta(days=n), hour=3) for n in range(365 * 100 + 24)))
    policy = KeepPolicy(daily=7, weekly=5, monthly=12, yearly=75)
    kept, forgotten = apply_policy(items, policy, UTC)
    assert {a.name for a in kept} == oracle(items, policy, UTC)
    newest = items[-1].created_at.date()
    assert kept_days(kept)[:7] == [(newest - timedelta(days=n)).isoformat() for n in range(7)]
    older = [a.created_at.date() for a in kept[7:]]
    weekly = [d for d in older if d.isoweekday() == 7 and newest - d < timedelta(weeks=6)]
    assert len(weekly) == 4
    # every one kept beyond the dailies and weeklies ends its month (the newest month's is a daily)
    rest = [d for d in older if d not in weekly]
    assert all((d + timedelta(days=1)).day == 1 for d in rest)
    yearly = [d for d in rest if d.month == 12 and d.day == 31]
    assert len(yearly) >= 74 and len(kept) == len(set(a.name for a in kept))
    assert len(kept) + len(forgotten) == len(items)
    assert 7 + 4 + 11 + 74 <= len(kept) <= 7 + 5 + 12 + 75


def test_restic_combined_last_daily_weekly_matches_the_rule_by_rule_reading():
    start = date(2026, 1, 1)
    items = archives(*(at(start + timedelta(days=n), hour=h) for n in range(60) for h in (6, 18) if n % 3))
    policy = KeepPolicy(last=3, daily=4, weekly=3)
    kept, _ = apply_policy(items, policy, UTC)
    assert {a.name for a in kept} == oracle(items, policy, UTC)
    # last=3 holds the morning and evening of the newest day too
    assert kept[0].created_at.hour == 18 and kept[1].created_at.hour == 6


def test_weekly_uses_iso_weeks_across_the_year_boundary():
    # 2026-12-31 (Thu) and 2027-01-02 (Sat) are both in ISO week 2026-W53.
    items = archives(at("2026-12-21"), at("2026-12-24"), at("2026-12-31"), at("2027-01-02"))
    kept, forgotten = apply_policy(items, KeepPolicy(weekly=2), UTC)
    assert kept_days(kept) == ["2027-01-02", "2026-12-24"]
    assert kept_days(forgotten) == ["2026-12-31", "2026-12-21"]


def test_yearly_and_monthly_across_the_year_boundary():
    items = archives(at("2026-11-30"), at("2026-12-15"), at("2026-12-31"), at("2027-01-02"), at("2027-01-20"))
    kept, _ = apply_policy(items, KeepPolicy(yearly=2), UTC)
    assert kept_days(kept) == ["2027-01-20", "2026-12-31"]
    kept, _ = apply_policy(items, KeepPolicy(monthly=2), UTC)
    assert kept_days(kept) == ["2027-01-20", "2026-12-31"]


def test_periods_are_taken_in_the_plans_zone():
    # 22:30 UTC on 1 June is 00:30 on the 2nd in Berlin (summer time): one day in UTC, two in Berlin.
    items = archives(at("2026-06-01", 10), at("2026-06-01", 22, 30))
    assert len(apply_policy(items, KeepPolicy(daily=5), UTC)[0]) == 1
    assert len(apply_policy(items, KeepPolicy(daily=5), BERLIN)[0]) == 2


def test_equal_times_are_ordered_by_file_name_descending():
    moment = at("2026-05-05")
    items = [
        Archive(moment, "x_2026-05-05.zip"),
        Archive(moment, "x_2026-05-05_3.zip"),
        Archive(moment, "x_2026-05-05_2.zip"),
    ]
    kept, forgotten = apply_policy(items, KeepPolicy(last=1), UTC)
    assert [a.name for a in kept] == ["x_2026-05-05_3.zip"]
    assert [a.name for a in forgotten] == ["x_2026-05-05_2.zip", "x_2026-05-05.zip"]


def test_the_archive_just_made_is_never_forgotten():
    # A clock set back: the new archive looks older than the others.
    items = archives(at("2026-05-01"), at("2026-05-02"), at("2026-05-03"))
    just_made = Archive(at("2026-04-01"), "new.zip")
    kept, forgotten = apply_policy([*items, just_made], KeepPolicy(last=1), UTC, protect="new.zip")
    assert "new.zip" in {a.name for a in kept}
    assert "new.zip" not in {a.name for a in forgotten}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"last": True}, "'last' must be an integer"),
        ({"daily": "7"}, "'daily' must be an integer"),
        ({"weekly": -1}, "'weekly' must be 0 or more"),
        ({"monthly": 1.5}, "'monthly' must be an integer"),
        ({"hourly": 1}, "unknown key 'hourly'"),
        ([1, 2], "must be an object"),
    ],
)
def test_bad_policies_are_refused_with_a_reason(raw, reason):
    with pytest.raises(PolicyError, match=reason):
        KeepPolicy.from_json(raw)


def test_a_good_policy_round_trips():
    policy = KeepPolicy.from_json({"last": 3, "daily": 7, "weekly": 4, "monthly": 12, "yearly": 0})
    assert policy.to_json() == {"last": 3, "daily": 7, "weekly": 4, "monthly": 12, "yearly": 0}
