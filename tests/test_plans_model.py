"""The plan model: field checks of plans.md, and the plan store's files."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.wallet.errors import ApiError
from jobs.plans.models import MAX_RUNS, Plan, RunStatus, Trigger, new_plan_id, run_record
from jobs.plans.retention import KeepPolicy
from jobs.plans.store import PlanStore
from jobs.plans.validation import check_fields

INSIDE = "Backup destination cannot be inside Client_Data — choose a folder outside the program's data directory"


@pytest.fixture
def places(tmp_path):
    data_dir = tmp_path / "Client_Data"
    data_dir.mkdir()
    (tmp_path / "usb").mkdir()
    return data_dir, tmp_path


def body(tmp_path, **changes):
    base = {
        "name": "Nightly",
        "wallet_path": "Default",
        "destinations": [str(tmp_path / "usb"), str(tmp_path / "not-plugged-in")],
        "schedule": "30 2 * * *",
        "keep": {"last": 3, "daily": 7},
    }
    base.update(changes)
    return base


def test_a_good_body_is_normalised(places):
    data_dir, tmp = places
    checked = check_fields(body(tmp, verify=True, encrypted_only=True, enabled=False), creating=True, data_dir=data_dir)
    assert checked["destinations"] == (str(tmp / "usb"), str(tmp / "not-plugged-in"))  # missing is allowed
    assert checked["schedule"].cron == "30 2 * * *"
    assert checked["keep"] == KeepPolicy(last=3, daily=7)
    assert checked["encrypted_only"] is True and checked["enabled"] is False


def test_destinations_are_canonicalised(places):
    data_dir, tmp = places
    os.symlink(tmp / "usb", tmp / "link")
    checked = check_fields(body(tmp, destinations=[str(tmp / "link")]), creating=True, data_dir=data_dir)
    assert checked["destinations"] == (str(tmp / "usb"),)


BAD = [
    ({"name": "x" * 201}, "Invalid name: at most 200 characters", "name"),
    ({"name": 5}, "Invalid name: must be a string", "name"),
    ({"name": "a\nb"}, "Invalid name: contains a control character", "name"),
    ({"destinations": []}, "Invalid destinations: 1 to 8 destinations, not 0", "destinations"),
    ({"destinations": "/tmp"}, "Invalid destinations: must be a list of absolute paths", "destinations"),
    ({"destinations": [1]}, "Invalid destinations: must be a list of absolute paths", "destinations"),
    ({"destinations": ["relative/path"]}, "Destination must be an absolute path", "destinations"),
    ({"schedule": "61 * * * *"}, "Invalid schedule '61 * * * *': Bad minute", "schedule"),
    ({"schedule": "0 0 0 * * *"}, "Invalid schedule '0 0 0 * * *': a cron expression has exactly 5 fields", "schedule"),
    ({"schedule": 5}, "Invalid schedule '5': must be a string", "schedule"),
    ({"keep": {"last": -1}}, "Invalid keep: 'last' must be 0 or more", "keep"),
    ({"keep": {"daily": True}}, "Invalid keep: 'daily' must be an integer", "keep"),
    ({"keep": {"weekly": "7"}}, "Invalid keep: 'weekly' must be an integer", "keep"),
    ({"keep": {"hourly": 2}}, "Invalid keep: unknown key 'hourly'", "keep"),
    ({"keep": 3}, "Invalid keep: must be an object", "keep"),
    ({"verify": False}, "Invalid verify: false is not supported", "verify"),
    ({"verify": "yes"}, "Invalid verify: must be true", "verify"),
    ({"encrypted_only": 1}, "Invalid encrypted_only: must be true or false", "encrypted_only"),
    ({"enabled": "true"}, "Invalid enabled: must be true or false", "enabled"),
    ({"id": "p_mine"}, "Unknown field: id", "id"),
    ({"colour": "red"}, "Unknown field: colour", "colour"),
    ({"wallet_path": ""}, "Invalid wallet_path: must be a non-empty string", "wallet_path"),
]


@pytest.mark.parametrize(("change", "message", "field"), BAD)
def test_every_bad_field_is_a_400_naming_it(places, change, message, field):
    data_dir, tmp = places
    with pytest.raises(ApiError) as caught:
        check_fields(body(tmp, **change), creating=True, data_dir=data_dir)
    assert caught.value.status == 400
    assert caught.value.body["success"] is False and caught.value.body["code"] == 400
    assert caught.value.message.startswith(message)
    assert caught.value.body["field"] == field


def test_nine_destinations_are_too_many(places):
    data_dir, tmp = places
    nine = [str(tmp / f"d{n}") for n in range(9)]
    with pytest.raises(ApiError, match="1 to 8 destinations, not 9"):
        check_fields(body(tmp, destinations=nine), creating=True, data_dir=data_dir)
    eight = check_fields(body(tmp, destinations=nine[:8]), creating=True, data_dir=data_dir)
    assert len(eight["destinations"]) == 8


def test_a_destination_inside_client_data_has_the_seeds_message(places):
    data_dir, tmp = places
    os.symlink(data_dir, tmp / "sneaky")
    for raw in (str(data_dir / "Backups"), str(tmp / "usb" / ".." / "Client_Data"), str(tmp / "sneaky" / "x")):
        with pytest.raises(ApiError) as caught:
            check_fields(body(tmp, destinations=[str(tmp / "usb"), raw]), creating=True, data_dir=data_dir)
        assert caught.value.body == {
            "success": False,
            "error": INSIDE,
            "code": 400,
            "field": "destinations",
            "destination": raw,
        }


def test_two_destinations_naming_one_folder_are_refused(places):
    data_dir, tmp = places
    os.symlink(tmp / "usb", tmp / "alias")
    with pytest.raises(ApiError, match="are the same folder"):
        check_fields(body(tmp, destinations=[str(tmp / "usb"), str(tmp / "alias")]), creating=True, data_dir=data_dir)
    with pytest.raises(ApiError, match="are the same folder"):
        check_fields(
            body(tmp, destinations=[str(tmp / "usb"), str(tmp / "usb") + "/"]), creating=True, data_dir=data_dir
        )


def test_create_needs_destinations_and_schedule(places):
    data_dir, tmp = places
    for field in ("destinations", "schedule"):
        whole = body(tmp)
        del whole[field]
        with pytest.raises(ApiError, match=f"Missing required parameter: {field}"):
            check_fields(whole, creating=True, data_dir=data_dir)


def test_a_change_cannot_move_the_plan_to_another_wallet_and_must_change_something(places):
    data_dir, tmp = places
    with pytest.raises(ApiError, match="Invalid wallet_path: a plan's wallet cannot be changed"):
        check_fields({"wallet_path": "Other"}, creating=False, data_dir=data_dir)
    with pytest.raises(ApiError, match="Nothing to change"):
        check_fields({}, creating=False, data_dir=data_dir)
    assert check_fields({"enabled": False}, creating=False, data_dir=data_dir) == {"enabled": False}
    with pytest.raises(ApiError, match="must be a JSON object"):
        check_fields([1], creating=False, data_dir=data_dir)


def make_plan(**changes) -> Plan:
    base = dict(
        id=new_plan_id(), name="Nightly", wallet_path="/w/Default", destinations=("/media/usb",),
        schedule="30 2 * * *", keep=KeepPolicy(last=2), encrypted_only=False, enabled=True,
        created_at=datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC),
        next_run_at=datetime(2026, 12, 1, 1, 30, tzinfo=UTC),
    )  # fmt: skip
    base.update(changes)
    return Plan(**base)


def test_plan_json_shows_times_in_the_zone_and_no_next_run_when_disabled():
    plan = make_plan()
    shown = plan.to_json(ZoneInfo("Europe/Berlin"), None)
    assert shown["next_run_at"] == "2026-12-01T02:30:00+01:00"
    assert shown["verify"] is True and shown["last_run"] is None
    assert plan.replace(enabled=False).to_json(ZoneInfo("UTC"), None)["next_run_at"] is None


def test_the_store_round_trips_plans_and_caps_runs(tmp_path):
    store = PlanStore(tmp_path / "backup-plans")
    plan = make_plan()
    runs = [
        run_record(run_id=f"r{n}", job_id=None, trigger=Trigger.SCHEDULE, scheduled_for=None, status=RunStatus.SKIPPED)
        for n in range(MAX_RUNS + 5)
    ]
    store.save(plan, runs)
    [(loaded, loaded_runs)] = PlanStore(tmp_path / "backup-plans").load()
    assert loaded == plan
    assert len(loaded_runs) == MAX_RUNS and loaded_runs[0]["run_id"] == "r0"
    # atomic write: nothing but the plan file is left in the folder
    assert sorted(os.listdir(tmp_path / "backup-plans")) == [f"{plan.id}.json"]
    assert (tmp_path / "backup-plans" / f"{plan.id}.json").stat().st_mode & 0o777 == 0o600
    store.delete(plan.id)
    assert store.load() == []


def test_a_damaged_plan_file_is_ignored_not_fatal(tmp_path):
    store = PlanStore(tmp_path)
    good = make_plan()
    store.save(good, [])
    (tmp_path / "p_0000000000000000.json").write_text("{not json")
    (tmp_path / "p_1111111111111111.json").write_text(json.dumps({"format": "other"}))
    assert [plan.id for plan, _ in store.load()] == [good.id]


def test_side_files(tmp_path):
    store = PlanStore(tmp_path)
    assert store.read_side("wallet-history.json") == {}
    store.write_side("wallet-history.json", {"/w/New": ["/w/Old"]})
    assert store.read_side("wallet-history.json") == {"/w/New": ["/w/Old"]}
    (tmp_path / "verified.json").write_text("[")
    assert store.read_side("verified.json") == {}
