"""`cloudcoin-wallet plans …` and `backups` against the real server's backup plan endpoints.

They need /api/backup-plans and /api/wallets/backups; on a build without them the module skips, saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_coins
from tests.test_cli import cli, one_line_error
from tests.test_e2e import http, start_server, stop_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("cli-plans")
    proc, base = start_server(root / "Client_Data")
    try:
        if http("GET", f"{base}/api/backup-plans")[0] == 404:
            pytest.skip("this build has no backup plan endpoints (/api/backup-plans, /api/wallets/backups)")
        write_coins(root / "Client_Data" / "Wallets" / "Default" / "Bank", range(1, 6))
        yield {"base": base, "root": root}
    finally:
        stop_server(proc)


def make_plan(live: dict[str, Any], *destinations: Path, name: str) -> str:
    args = [arg for d in destinations for arg in ("--to", str(d))]
    result = cli("--json", "plans", "add", "Default", *args, "--schedule", "30 2 * * *", "--name", name,
                 "--keep-last", "3", server=live["base"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["keep"]["last"] == 3 and plan["destinations"] == [str(d) for d in destinations]
    return str(plan["id"])


def test_plans_add_list_run_and_remove(live: dict[str, Any]) -> None:
    first, second = live["root"] / "usb", live["root"] / "cloud"
    first.mkdir()
    second.mkdir()
    plan_id = make_plan(live, first, second, name="Nightly")

    table = cli("plans", server=live["base"])
    assert table.returncode == 0
    row = next(line for line in table.stdout.splitlines() if plan_id in line)
    assert "Nightly" in row and "30 2 * * *" in row and "never" in row
    listed = json.loads(cli("--json", "plans", server=live["base"]).stdout)
    assert plan_id in [plan["id"] for plan in listed["plans"]]

    ran = cli("plans", "run", plan_id, server=live["base"])
    assert ran.returncode == 0, ran.stderr
    assert "plan-run completed" in ran.stdout
    assert len(list(first.glob("*.zip"))) == 1 and len(list(second.glob("*.zip"))) == 1
    after = cli("plans", server=live["base"]).stdout
    assert f"{first}: completed" in after

    assert cli("plans", "rm", plan_id, server=live["base"]).returncode == 0
    again = cli("plans", "rm", plan_id, server=live["base"])
    assert again.returncode == 1
    one_line_error(again, "(HTTP 404)")
    assert list(first.glob("*.zip")), "removing a plan never removes its archives"


def test_a_partial_run_exits_1_and_json_is_the_run_record(live: dict[str, Any]) -> None:
    present, unplugged = live["root"] / "present", live["root"] / "unplugged" / "Backups"
    present.mkdir()
    plan_id = make_plan(live, present, unplugged, name="Half")
    result = cli("--json", "plans", "run", plan_id, server=live["base"])
    assert result.returncode == 1, "a partial run is not a success"
    record = json.loads(result.stdout)
    assert record["status"] == "partial"
    assert [d["status"] for d in record["destinations"]] == ["completed", "failed"]
    detached = cli("plans", "run", plan_id, "--detach", server=live["base"])
    assert detached.returncode == 0 and len(detached.stdout.strip()) == 32


def test_refusals_are_one_line_with_exit_1(live: dict[str, Any]) -> None:
    bad = cli("plans", "add", "Default", "--to", str(live["root"]), "--schedule", "61 * * * *", server=live["base"])
    assert bad.returncode == 1
    one_line_error(bad, "Invalid schedule")
    unknown = cli("plans", "run", "p_nope", server=live["base"])
    assert unknown.returncode == 1
    one_line_error(unknown, "(HTTP 404)")
    assert cli("plans", "add", "Default", "--schedule", "@daily", server=live["base"]).returncode == 2


def test_backups_lists_the_archives_the_server_knows(live: dict[str, Any]) -> None:
    destination = live["root"] / "one-off"
    made = json.loads(cli("--json", "backup", "--to", str(destination), server=live["base"]).stdout)
    table = cli("backups", server=live["base"])
    assert table.returncode == 0, table.stderr
    assert made["zip_path"] in table.stdout
    body = json.loads(cli("--json", "backups", "Default", server=live["base"]).stdout)
    assert made["zip_path"] in [b["zip_path"] for b in body["backups"]]
    assert body["count"] == len(body["backups"])
    missing = cli("backups", "NoSuchWallet", server=live["base"])
    assert missing.returncode == 1
    one_line_error(missing, "(HTTP 404)")
