"""The status page in a real headless browser: Debian's chromium driven by Selenium through Debian's chromedriver.

Nothing here downloads a browser or a driver: Selenium is pointed at the system's binaries (and told to
stay offline); without them the tests skip, saying why. The server is the real `python -m app`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_coins
from tests.test_e2e import REPO, http, start_server, stop_server

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
CHROMEDRIVER = shutil.which("chromedriver") or next((p for p in ("/usr/bin/chromedriver",) if os.path.exists(p)), None)
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "no chromium and chromium-driver installed (apt-get install chromium chromium-driver)", allow_module_level=True
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra: pip install -e '.[test]'")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

XSS_NAME = "<img src=x onerror=alert(1)>"
BIG_COINS = 40_000  # archives for a second or more: the bar is seen between 0 and 100
HUGE_SPARSE_BYTES = 8 * 1024**3
#: Records every alert() instead of showing it, before any script of the page runs.
NO_ALERTS = "window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m));"
#: Records the progress and status of every job row as the page changes it.
OBSERVE = """
window.__seen = [];
new MutationObserver(() => {
  for (const row of document.querySelectorAll('#jobs tr[data-job-id]')) {
    window.__seen.push([row.dataset.jobId, Number(row.dataset.progress), row.dataset.status]);
  }
}).observe(document.querySelector('#jobs tbody'), {subtree: true, attributes: true, childList: true});
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,1100",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": NO_ALERTS})
    yield driver
    driver.quit()


def make_big_wallet(wallets_dir: Path, name: str, coins: int) -> Path:
    subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "make_wallet.py"),
            str(coins),
            "--dest",
            str(wallets_dir),
            "--name",
            name,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return wallets_dir / name


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("page")
    data_dir = root / "Client_Data"
    wallets_dir = root / "elsewhere"
    big = make_big_wallet(wallets_dir, "Big", BIG_COINS)
    tricky = make_big_wallet(wallets_dir, XSS_NAME, 3)
    huge = make_big_wallet(wallets_dir, "Huge", 2)
    with open(huge / "Receipts" / "huge.log", "wb") as fh:
        fh.truncate(HUGE_SPARSE_BYTES)
    proc, base = start_server(data_dir)
    for wallet in (big, tricky, huge):
        status, body = http("POST", f"{base}/api/wallets/locations", body={"path": str(wallet)})
        assert status == 200, body
    write_coins(data_dir / "Wallets" / "Default" / "Bank", range(1, 4))
    yield {"base": base, "root": root, "big": big, "tricky": tricky, "huge": huge}
    stop_server(proc)


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 30, what: str = "") -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, what)


def wallet_rows(driver: Any) -> dict[str, Any]:
    return {
        row.find_element(By.CSS_SELECTOR, "td.name").text: row
        for row in driver.find_elements(By.CSS_SELECTOR, "#wallets tbody tr")
    }


def no_alert(driver: Any) -> None:
    assert driver.execute_script("return window.__alerts") == []
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


def test_the_page_lists_wallets_and_shows_a_tricky_name_as_text(browser: Any, site: dict[str, Any]) -> None:
    browser.get(site["base"] + "/")
    rows = wait(browser, lambda d: (r := wallet_rows(d)) and len(r) >= 4 and r, what="the wallets")
    assert {"Default", "Big", XSS_NAME, "Huge"} <= set(rows)
    assert "active" in rows["Default"].text and "active" not in rows["Big"].text
    assert rows["Big"].find_elements(By.TAG_NAME, "td")[2].text == str(site["big"])
    wait(
        browser,
        lambda d: wallet_rows(d)["Big"].find_element(By.CSS_SELECTOR, "td.coins").text == f"{BIG_COINS:,}",
        what="the big wallet's balance",
    )
    # The name is text: no <img> made of it anywhere, no script run, and the option shows it as typed.
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    assert rows[XSS_NAME].find_element(By.CSS_SELECTOR, "td.name").get_attribute("innerHTML") == (
        "&lt;img src=x onerror=alert(1)&gt;"
    )
    assert XSS_NAME in [o.text for o in Select(browser.find_element(By.ID, "backup-wallet")).options]
    time.sleep(0.5)  # an onerror would have fired by now
    no_alert(browser)


def test_a_backup_from_the_form_shows_a_moving_bar_that_ends_completed(browser: Any, site: dict[str, Any]) -> None:
    browser.get(site["base"] + "/")
    wait(browser, lambda d: "Big" in wallet_rows(d), what="the wallets")
    browser.execute_script(OBSERVE)
    Select(browser.find_element(By.ID, "backup-wallet")).select_by_value(str(site["big"]))
    destination = site["root"] / "page-backups"
    browser.find_element(By.ID, "backup-destination").send_keys(str(destination))
    browser.find_element(By.ID, "backup-submit").click()

    job_id = wait(
        browser,
        lambda d: (t := d.find_element(By.ID, "backup-message").text).startswith("started job") and t.split()[-1],
        what="the job id",
    )
    completed = f'#jobs tr[data-job-id="{job_id}"][data-status="completed"]'
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, completed), timeout=120, what="the completed job")
    seen = [
        (progress, status) for jid, progress, status in browser.execute_script("return window.__seen") if jid == job_id
    ]
    progresses = [progress for progress, _ in seen]
    assert any(0 < p < 100 for p in progresses), f"the bar never moved between 0 and 100: {sorted(set(progresses))}"
    assert progresses == sorted(progresses), "the bar never goes back"
    assert "running" in {status for _, status in seen}
    assert "width: 100%" in row.find_element(By.CSS_SELECTOR, ".fill").get_attribute("style"), "the bar is full"
    assert row.find_element(By.CSS_SELECTOR, ".status").text == "completed"
    assert "100%" in row.text
    assert row.find_elements(By.CSS_SELECTOR, "button.cancel") == [], "no cancel button once finished"
    assert len([p for p in destination.iterdir() if p.suffix == ".zip"]) == 1
    no_alert(browser)


def test_the_cancel_button_stops_a_running_backup(browser: Any, site: dict[str, Any]) -> None:
    destination = site["root"] / "cancelled"
    status, accepted = http(
        "POST",
        f"{site['base']}/api/wallets/backup",
        body={"wallet_path": str(site["huge"]), "destination": str(destination), "async": True},
    )
    assert status == 202, accepted
    job_id = accepted["job_id"]
    browser.get(site["base"] + "/")
    button = wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f'#jobs tr[data-job-id="{job_id}"] button.cancel'),
        what="the cancel button of the running job",
    )
    button.click()
    cancelled = f'#jobs tr[data-job-id="{job_id}"][data-status="cancelled"]'
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, cancelled), what="the cancelled job")
    assert http("GET", f"{site['base']}/api/jobs/{job_id}")[1]["status"] == "cancelled"
    assert not destination.exists() or list(destination.iterdir()) == []


def test_with_a_token_the_page_asks_once_and_follows_jobs_with_it(browser: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "Client_Data"
    proc, base = start_server(data_dir, env={"CLOUDCOIN_API_TOKEN": "page-token-123"})
    try:
        write_coins(data_dir / "Wallets" / "Default" / "Bank", range(1, 50))
        browser.get(base + "/")
        token_input = wait(
            browser, lambda d: (e := d.find_element(By.ID, "token-input")).is_displayed() and e, what="the token form"
        )
        token_input.send_keys("page-token-123")
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait(browser, lambda d: "Default" in wallet_rows(d), what="the wallets after the token")
        assert not browser.find_element(By.ID, "token-form").is_displayed()
        assert browser.execute_script("return sessionStorage.getItem('cloudcoin-api-token')") == "page-token-123"
        assert "page-token-123" not in browser.current_url

        browser.find_element(By.ID, "backup-destination").send_keys(str(tmp_path / "token-backups"))
        browser.find_element(By.ID, "backup-submit").click()
        wait(
            browser,
            lambda d: d.find_elements(By.CSS_SELECTOR, '#jobs tr[data-status="completed"]'),
            timeout=60,
            what="the job followed over a streaming fetch with the token",
        )
        browser.refresh()  # same tab: the token is kept, the page does not ask again
        wait(browser, lambda d: "Default" in wallet_rows(d), what="the wallets after a reload")
        assert not browser.find_element(By.ID, "token-form").is_displayed()
    finally:
        browser.execute_script("sessionStorage.clear()")
        stop_server(proc)


def test_plans_and_known_backups_are_shown(browser: Any, site: dict[str, Any]) -> None:
    base = site["base"]
    if http("GET", f"{base}/api/backup-plans")[0] == 404:
        pytest.skip("this build has no backup plan endpoints (/api/backup-plans, /api/wallets/backups)")
    usb, cloud = site["root"] / "usb", site["root"] / "unplugged" / "cloud"
    usb.mkdir()
    plan = {"name": "<b>Nightly</b>", "wallet_path": str(site["tricky"]), "destinations": [str(usb), str(cloud)],
            "schedule": "30 2 * * *"}  # fmt: skip
    status, created = http("POST", f"{base}/api/backup-plans", body=plan)
    assert status == 201, created
    status, record = http("POST", f"{base}/api/backup-plans/{created['id']}/run", body={})
    assert status == 200 and record["status"] == "partial", record

    browser.get(base + "/")
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'#plans tr[data-plan-id="{created["id"]}"]'),
               what="the plan")  # fmt: skip
    cells = row.find_elements(By.TAG_NAME, "td")
    assert cells[0].text == "<b>Nightly</b>" and row.find_elements(By.TAG_NAME, "b") == []
    assert cells[2].text == "30 2 * * *" and cells[3].text, "schedule and next run"
    assert cells[4].text.startswith("partial")
    assert f"{usb}: completed" in cells[4].text and f"{cloud}: failed" in cells[4].text

    wait(browser, lambda d: XSS_NAME in wallet_rows(d), what="the wallets")
    wallet_rows(browser)[XSS_NAME].click()  # its known backups
    archive = next(usb.glob("*.zip"))
    wait(browser, lambda d: str(archive) in d.find_element(By.ID, "backups").text, what="the known backup")
    assert browser.find_element(By.ID, "backups-wallet").text == XSS_NAME
    no_alert(browser)
