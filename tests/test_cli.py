"""The `cloudcoin-wallet` client as a user runs it: the console script in a subprocess against the real server.

Every command is run for success, for a server error (printed on one line, exit 1), and against a
server that is not there (exit 3); --json output is parsed; the progress bar is drawn under a
pseudo-terminal and Ctrl-C is answered there.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_coins
from tests.test_e2e import free_port, http, server_env, start_server, stop_server
from tests.test_layering import ROOT, import_graph

SCRIPT = Path(sysconfig.get_path("scripts")) / "cloudcoin-wallet"
#: A sparse file (no disk used) that takes far longer to deflate than any test waits: the backup is
#: surely still running when Ctrl-C or a cancel arrives; every test that starts one cancels it.
HUGE_SPARSE_BYTES = 8 * 1024**3
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def command() -> list[str]:
    """The console script of [project.scripts] when installed (make test installs it), else the module."""
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "app.cli"]


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.exists(), f"pip install -e . should have made {SCRIPT}"


@pytest.fixture(scope="module", autouse=True)
def ctrl_c_reaches_the_client() -> Iterator[None]:
    """A test run started in the background by a script (`make test &`) ignores SIGINT, and the
    clients it starts would inherit that and never see the Ctrl-C these tests send. Python's own
    handler here makes them start with the default disposition, as from a person's shell."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real server for the module; each test makes its own wallets and folders."""
    root = tmp_path_factory.mktemp("cli")
    proc, base = start_server(root / "Client_Data")
    yield {"base": base, "root": root, "data_dir": root / "Client_Data"}
    stop_server(proc)


def cli(
    *args: str,
    server: str | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    extra = {"CLOUDCOIN_SERVER": server} if server else {}
    return subprocess.run(
        [*command(), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        env=server_env({**extra, **(env or {})}),
        cwd=cwd,
    )


def make_wallet(live: dict[str, Any], name: str, coins: int = 5) -> Path:
    status, body = http("POST", f"{live['base']}/api/wallets/create", body={"wallet_path": name})
    assert status == 200, body
    wallet = Path(body["wallet_path"])
    if coins:
        write_coins(wallet / "Bank", range(1000, 1000 + coins))
    return wallet


def make_huge_wallet(live: dict[str, Any], name: str) -> Path:
    wallet = make_wallet(live, name, coins=3)
    with open(wallet / "Receipts" / "huge.log", "wb") as fh:
        fh.truncate(HUGE_SPARSE_BYTES)
    return wallet


def one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and text in lines[-1], result.stderr
    assert not [line for line in lines if line.startswith("Traceback")], result.stderr


def wait_status(base: str, job_id: str, wanted: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, job = http("GET", f"{base}/api/jobs/{job_id}")
        if job["status"] in wanted:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


# -- the program itself -----------------------------------------------------------------------------


def test_the_client_is_a_pure_http_client_that_nothing_imports() -> None:
    """It reaches the server only over HTTP: of the project it imports the version and, for `serve`, the server."""
    graph = import_graph(ROOT)
    for name, targets in graph.items():
        inside = name == "app.cli" or name.startswith("app.cli.")
        project = {t for t in targets if t.split(".")[0] in ("app", "jobs")}
        if inside:
            own = {t for t in project if t.startswith("app.cli")}
            assert project <= {"app", "app.__version__", "app.__main__"} | own, name
        else:
            assert not [t for t in project if t == "app.cli" or t.startswith("app.cli.")], f"{name} imports the client"


def test_version_and_help() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"cloudcoin-wallet \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout
    server = subprocess.run(
        [sys.executable, "-m", "app", "--version"], capture_output=True, text=True, env=server_env()
    )
    assert server.returncode == 0 and server.stdout == result.stdout.replace(
        "cloudcoin-wallet", "CloudCoin Wallet Server"
    )
    helptext = cli("--help").stdout
    for name in (
        "serve",
        "wallets",
        "balance",
        "backup",
        "verify",
        "restore",
        "rename",
        "backups",
        "plans",
        "jobs",
        "job",
        "cancel",
        "login",
        "logout",
    ):
        assert re.search(rf"^\s+{name}\s", helptext, re.M), name


@pytest.mark.parametrize(
    "args",
    [
        ("bogus",),
        ("backup",),
        ("wallets", "--nope"),
        ("rename", "OnlyOne"),
        ("job",),
        ("verify",),
        ("jobs", "--limit", "0"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = cli(*args, server="http://127.0.0.1:9")
    assert result.returncode == 2, (result.stdout, result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ("wallets",),
        ("balance",),
        ("backup", "--to", "/tmp/x"),
        ("verify", "/tmp/x.zip"),
        ("restore", "/tmp/x.zip"),
        ("rename", "A", "B"),
        ("backups",),
        ("plans",),
        ("plans", "run", "p_1"),
        ("plans", "rm", "p_1"),
        ("jobs",),
        ("job", "abc"),
        ("job", "abc", "--follow"),
        ("cancel", "abc"),
        ("logout",),
    ],
)
def test_unreachable_server_exits_3_saying_how_to_start_it(args: tuple[str, ...]) -> None:
    result = cli(*args, server=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 3, (result.stdout, result.stderr)
    one_line_error(result, "Cannot reach the server")
    assert "cloudcoin-wallet serve" in result.stderr
    assert result.stdout == ""


def test_server_option_beats_the_environment(live: dict[str, Any]) -> None:
    result = cli("--server", live["base"], "wallets", server=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 0, result.stderr


def test_serve_runs_the_server(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*command(), "serve", "--port", str(port), "--data-dir", str(tmp_path / "CD")],
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                status, body = http("GET", f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.1)
        assert status == 200 and body["status"] == "ok"
        assert (tmp_path / "CD" / "Wallets" / "Default").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


# -- wallets, balance, rename -----------------------------------------------------------------------


def test_wallets_lists_name_path_active_coins_and_value(live: dict[str, Any]) -> None:
    make_wallet(live, "Listed", coins=7)
    result = cli("wallets", server=live["base"])
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "Listed" in line)
    assert str(live["data_dir"] / "Wallets" / "Listed") in row and " 7 " in f"{row} "
    default_row = next(line for line in result.stdout.splitlines() if "Default" in line)
    assert default_row.lstrip().startswith("*")

    body = json.loads(cli("--json", "wallets", server=live["base"]).stdout)
    listed = next(w for w in body["wallets"] if w["wallet_name"] == "Listed")
    assert listed["total_notes"] == 7 and listed["total_value"] == 7


def test_balance(live: dict[str, Any]) -> None:
    make_wallet(live, "Counted", coins=4)
    result = cli("balance", "Counted", server=live["base"])
    assert result.returncode == 0, result.stderr
    assert re.search(r"Bank\s+\S\s+4\s+\S\s+4", result.stdout), result.stdout
    body = json.loads(cli("--json", "balance", "Counted", server=live["base"]).stdout)
    assert body["command"] == "wallet-balance" and body["total_notes"] == 4

    missing = cli("balance", "NoSuchWallet", server=live["base"])
    assert missing.returncode == 1
    one_line_error(missing, "Wallet not found")
    assert "(HTTP 404)" in missing.stderr
    as_json = cli("--json", "balance", "NoSuchWallet", server=live["base"])
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["code"] == 404


def test_names_with_terminal_markup_are_printed_as_typed(live: dict[str, Any]) -> None:
    name = "[bold red]Odd [link=x]name"
    make_wallet(live, name, coins=1)
    listed = cli("wallets", server=live["base"])
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout
    shown = cli("balance", name, server=live["base"])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(name)


def test_rename(live: dict[str, Any]) -> None:
    make_wallet(live, "Before", coins=1)
    result = cli("rename", "Before", "After", server=live["base"])
    assert result.returncode == 0, result.stderr
    assert (live["data_dir"] / "Wallets" / "After").is_dir()
    refused = cli("rename", "After", "a/b", server=live["base"])
    assert refused.returncode == 1
    one_line_error(refused, "Invalid wallet name")
    body = json.loads(cli("--json", "rename", "After", "Later", server=live["base"]).stdout)
    assert body["success"] is True and body["command"] == "wallet-rename"


# -- backup, verify, restore ------------------------------------------------------------------------


def test_backup_without_a_terminal_prints_phases_on_stderr_and_the_result_on_stdout(live: dict[str, Any]) -> None:
    make_wallet(live, "Plain", coins=20)
    destination = live["root"] / "plain-backups"
    result = cli("backup", "Plain", "--to", str(destination), server=live["base"])
    assert result.returncode == 0, result.stderr
    assert "Wallet backup created successfully" in result.stdout
    zip_path = re.search(r"zip_path: (.+)", result.stdout).group(1)
    assert zipfile.ZipFile(zip_path).testzip() is None
    assert not ANSI.search(result.stderr), "no terminal codes when stderr is not a terminal"
    phases = result.stderr.splitlines()
    assert phases and phases[-1].endswith("completed (100%)"), result.stderr
    assert len(phases) == len(set(phases)), "one line per phase, not per progress event"


def test_backup_relative_destination_is_made_absolute_and_json_is_the_result(live: dict[str, Any]) -> None:
    make_wallet(live, "Relative", coins=2)
    (live["root"] / "here").mkdir()
    result = cli("--json", "backup", "Relative", "--to", "rel-backups", server=live["base"], cwd=live["root"] / "here")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["destination"] == str(live["root"] / "here" / "rel-backups")
    assert Path(body["zip_path"]).is_file() and body["files_added"] == 2
    assert result.stderr == "", "--json prints nothing else"


def test_backup_errors_before_and_inside_the_job(live: dict[str, Any]) -> None:
    make_wallet(live, "Failing", coins=1)
    refused = cli("backup", "Failing", "--to", str(live["root"] / "no" / "such" / "dir"), server=live["base"])
    assert refused.returncode == 1
    one_line_error(refused, "Destination directory does not exist (HTTP 400)")

    a_file = live["root"] / "a-file"
    a_file.write_text("not a folder")
    failed = cli("backup", "Failing", "--to", str(a_file), server=live["base"])  # fails inside the job
    assert failed.returncode == 1
    one_line_error(failed, "Cannot create backup directory (HTTP 500)")
    as_json = cli("--json", "backup", "Failing", "--to", str(a_file), server=live["base"])
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error_code"] == 101


def test_detach_then_job_follow_and_job(live: dict[str, Any]) -> None:
    make_wallet(live, "Detached", coins=3)
    result = cli("backup", "Detached", "--to", str(live["root"] / "detached"), "--detach", server=live["base"])
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)

    followed = cli("--json", "job", job_id, "--follow", server=live["base"])
    assert followed.returncode == 0, followed.stderr
    events = [json.loads(line) for line in followed.stdout.splitlines()]
    assert events and all(e["id"] == job_id for e in events)
    assert events[-1]["status"] == "completed" and events[-1]["progress"] == 100

    shown = cli("job", job_id, server=live["base"])
    assert shown.returncode == 0 and f"job {job_id}: completed" in shown.stdout
    assert json.loads(cli("--json", "job", job_id, server=live["base"]).stdout)["result"]["files_added"] == 3
    unknown = cli("job", "0" * 32, server=live["base"])
    assert unknown.returncode == 1
    one_line_error(unknown, "(HTTP 404)")
    detached_json = json.loads(
        cli(
            "--json", "backup", "Detached", "--to", str(live["root"] / "detached"), "--detach", server=live["base"]
        ).stdout
    )
    assert detached_json["status_url"] == f"/api/jobs/{detached_json['job_id']}"


def test_verify_and_restore(live: dict[str, Any]) -> None:
    make_wallet(live, "Kept", coins=6)
    backup = json.loads(cli("--json", "backup", "Kept", "--to", str(live["root"] / "kept"), server=live["base"]).stdout)
    zip_path = backup["zip_path"]

    ok = cli("verify", zip_path, server=live["base"])
    assert ok.returncode == 0, ok.stderr
    assert "ok: True" in ok.stdout
    damaged = live["root"] / "damaged.zip"
    data = bytearray(Path(zip_path).read_bytes())
    data[200:260] = bytes(60)  # inside the first entries' data
    damaged.write_bytes(bytes(data))
    bad = cli("--json", "verify", str(damaged), server=live["base"])
    assert bad.returncode == 1, "a verify with ok: false exits 1"
    assert json.loads(bad.stdout)["ok"] is False
    missing = cli("verify", str(live["root"] / "missing.zip"), server=live["base"])
    assert missing.returncode == 1
    one_line_error(missing, "(HTTP 404)")

    location = live["root"] / "restored"
    location.mkdir()
    restored = cli("--json", "restore", zip_path, "--to", str(location), "--name", "Again", server=live["base"])
    assert restored.returncode == 0, restored.stderr
    body = json.loads(restored.stdout)
    assert body["wallet_path"] == str(location / "Again") and body["total_notes"] == 6
    again = cli("restore", zip_path, "--to", str(location), "--name", "Again", server=live["base"])
    assert again.returncode == 1
    one_line_error(again, "(HTTP 409)")


# -- jobs, cancel -----------------------------------------------------------------------------------


def test_jobs_table_json_and_watch(live: dict[str, Any]) -> None:
    make_wallet(live, "Watched", coins=1)
    submitted = cli("backup", "Watched", "--to", str(live["root"] / "watched"), "--detach", server=live["base"])
    job_id = submitted.stdout.strip()
    wait_status(live["base"], job_id, {"completed"})
    table = cli("jobs", server=live["base"])
    assert table.returncode == 0 and job_id in table.stdout
    body = json.loads(cli("--json", "jobs", "--limit", "1000", server=live["base"]).stdout)
    assert job_id in [job["id"] for job in body["jobs"]]

    watch = subprocess.Popen(
        [*command(), "--json", "jobs", "--watch"],
        stdout=subprocess.PIPE,
        text=True,
        env=server_env({"CLOUDCOIN_SERVER": live["base"]}),
    )
    first = watch.stdout.readline()
    watch.send_signal(signal.SIGINT)
    assert watch.wait(timeout=10) == 0, "Ctrl-C is --watch's normal end"
    watch.stdout.close()
    assert "jobs" in json.loads(first)
    refused = cli("jobs", "--limit", "5000", server=live["base"])
    assert refused.returncode == 2


def test_cancel(live: dict[str, Any]) -> None:
    make_huge_wallet(live, "Huge")
    job_id = cli("backup", "Huge", "--to", str(live["root"] / "huge"), "--detach", server=live["base"]).stdout.strip()
    wait_status(live["base"], job_id, {"running"})
    result = cli("cancel", job_id, server=live["base"])
    assert result.returncode == 0, result.stderr
    assert job_id in result.stdout
    assert wait_status(live["base"], job_id, {"completed", "failed", "cancelled"})["status"] == "cancelled"
    again = cli("cancel", job_id, server=live["base"])
    assert again.returncode == 1
    one_line_error(again, "Job cannot be cancelled: it is cancelled (HTTP 409)")
    followed = cli("job", job_id, "--follow", server=live["base"])
    assert followed.returncode == 1, "following a cancelled job exits 1"
    one_line_error(followed, "was cancelled")


def test_ctrl_c_without_a_terminal_leaves_the_job_running_and_exits_130(live: dict[str, Any]) -> None:
    if not (live["data_dir"] / "Wallets" / "Huge").exists():
        make_huge_wallet(live, "Huge")
    proc = subprocess.Popen(
        [*command(), "backup", "Huge", "--to", str(live["root"] / "huge")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env({"CLOUDCOIN_SERVER": live["base"]}),
    )
    job_id = wait_for_running_job(live["base"], "Huge")
    time.sleep(0.5)  # the client is following the stream
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert out.strip() == job_id
    assert f"cloudcoin-wallet job {job_id} --follow" in err
    assert http("GET", f"{live['base']}/api/jobs/{job_id}")[1]["status"] == "running"
    http("POST", f"{live['base']}/api/jobs/{job_id}/cancel")
    wait_status(live["base"], job_id, {"cancelled"})


def wait_for_running_job(base: str, wallet_name: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        _, body = http("GET", f"{base}/api/jobs?status=running")
        for job in body["jobs"]:
            if job["wallet_path"].endswith(f"/{wallet_name}"):
                return job["id"]
        assert time.monotonic() < deadline, "the backup never started"
        time.sleep(0.05)


# -- the terminal: progress bar and Ctrl-C ----------------------------------------------------------


class Terminal:
    """The client on a pseudo-terminal (stdin, stdout and stderr), as a person's shell runs it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        env = {**env, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.output = ""

    def read_until(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, ANSI.sub("", self.output)):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{pattern!r} never shown:\n{self.output[-3000:]}"
            if not self._read(remaining):
                break
        return ANSI.sub("", self.output)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], min(timeout, 0.5))
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return False
            if not chunk:
                return False
            self.output += chunk.decode("utf-8", "replace")
        return True

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None or self._read(0.05):
            assert time.monotonic() < deadline, self.output[-3000:]
            if self.proc.poll() is not None and not self._read(0.05):
                break
        os.close(self.master)
        return self.proc.wait(timeout=5)


def test_progress_bar_on_a_terminal_reaches_100_and_ends_with_the_result(live: dict[str, Any]) -> None:
    make_wallet(live, "Barred", coins=3000)
    terminal = Terminal(
        [*command(), "backup", "Barred", "--to", str(live["root"] / "barred")],
        server_env({"CLOUDCOIN_SERVER": live["base"]}),
    )
    assert terminal.finish(timeout=120) == 0, terminal.output[-3000:]
    screen = ANSI.sub("", terminal.output)
    assert "━" in screen, "a bar was drawn"
    assert re.search(r"completed\s+━+\s+100%\s+3,0\d\d/3,0\d\d files", screen), screen[-2000:]
    last_bar = screen.rindex("100%")
    result = screen.index("Wallet backup created successfully", last_bar)
    assert "files_added: 3000" in screen[result:]
    percentages = [int(p) for p in re.findall(r"(\d+)%", screen)]
    assert percentages == sorted(percentages), "the bar never goes back"


def test_ctrl_c_on_a_terminal_asks_and_cancels(live: dict[str, Any]) -> None:
    make_huge_wallet(live, "HugeAsked")
    terminal = Terminal(
        [*command(), "backup", "HugeAsked", "--to", str(live["root"] / "asked")],
        server_env({"CLOUDCOIN_SERVER": live["base"]}),
    )
    terminal.read_until(r"━")
    job_id = wait_for_running_job(live["base"], "HugeAsked")
    os.killpg(terminal.proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
    terminal.read_until(rf"Cancel job {job_id}\?")
    terminal.type("y\n")
    assert terminal.finish() == 1
    assert re.search(rf"job {job_id} was cancelled", ANSI.sub("", terminal.output))
    assert http("GET", f"{live['base']}/api/jobs/{job_id}")[1]["status"] == "cancelled"
    assert not any((live["root"] / "asked").iterdir()), "a cancelled backup leaves nothing"


def test_ctrl_c_on_a_terminal_can_leave_the_job_running(live: dict[str, Any]) -> None:
    make_huge_wallet(live, "HugeLeft")
    terminal = Terminal(
        [*command(), "backup", "HugeLeft", "--to", str(live["root"] / "left")],
        server_env({"CLOUDCOIN_SERVER": live["base"]}),
    )
    terminal.read_until(r"━")
    job_id = wait_for_running_job(live["base"], "HugeLeft")
    os.killpg(terminal.proc.pid, signal.SIGINT)
    terminal.read_until(r"Cancel job")
    terminal.type("n\n")
    assert terminal.finish() == 130
    assert f"Job {job_id} left running" in ANSI.sub("", terminal.output)
    assert http("GET", f"{live['base']}/api/jobs/{job_id}")[1]["status"] == "running"
    http("POST", f"{live['base']}/api/jobs/{job_id}/cancel")
    wait_status(live["base"], job_id, {"cancelled"})


# -- the login key and the token --------------------------------------------------------------------


def test_login_reads_the_password_from_stdin_and_logout(live: dict[str, Any]) -> None:
    result = cli("login", input="correct horse\n", server=live["base"])
    assert result.returncode == 0, result.stderr
    assert "correct horse" not in result.stdout + result.stderr
    assert http("GET", f"{live['base']}/api/system/encryption-status")[1]["key_set"] is True
    assert cli("login", input="\n", server=live["base"]).returncode == 2
    out = cli("--json", "logout", server=live["base"])
    assert out.returncode == 0 and json.loads(out.stdout)["key_set"] is False


def test_wrong_password_is_a_failure_not_a_token_refusal(tmp_path: Path) -> None:
    """Coins encrypted under one password (a backup made while logged in, restored) refuse another: exit 1."""
    proc, base = start_server(tmp_path / "Client_Data")
    try:
        live = {"base": base, "root": tmp_path}
        make_wallet(live, "Secret", coins=2)
        assert cli("login", input="correct horse\n", server=base).returncode == 0
        made = cli("--json", "backup", "Secret", "--to", str(tmp_path / "b"), server=base)
        zip_path = json.loads(made.stdout)["zip_path"]
        assert cli("logout", server=base).returncode == 0
        assert cli("restore", zip_path, "--name", "SecretCopy", server=base).returncode == 0  # stays encrypted
        wrong = cli("login", input="wrong horse\n", server=base)
        assert wrong.returncode == 1
        one_line_error(wrong, "Incorrect password (HTTP 401)")
        assert cli("login", input="correct horse\n", server=base).returncode == 0
    finally:
        stop_server(proc)


def test_login_on_a_terminal_does_not_echo_the_password(live: dict[str, Any]) -> None:
    terminal = Terminal([*command(), "login"], server_env({"CLOUDCOIN_SERVER": live["base"]}))
    terminal.read_until("Password:")
    terminal.type("secret words\n")
    assert terminal.finish() == 0
    assert "secret words" not in terminal.output
    assert "Logged in" in terminal.output
    assert cli("logout", server=live["base"]).returncode == 0


def test_token_from_option_or_environment_and_exit_4_without_it(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path / "Client_Data", env={"CLOUDCOIN_API_TOKEN": "s3cret-token"})
    try:
        refused = cli("wallets", server=base)
        assert refused.returncode == 4
        one_line_error(refused, "(HTTP 401)")
        assert cli("--token", "wrong", "wallets", server=base).returncode == 4
        assert cli("--token", "s3cret-token", "wallets", server=base).returncode == 0
        assert cli("wallets", server=base, env={"CLOUDCOIN_API_TOKEN": "s3cret-token"}).returncode == 0
    finally:
        stop_server(proc)
