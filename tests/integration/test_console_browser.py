"""The operator console in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``), against ``teledispatch api``, a worker and the simulator: it lists the
jobs, shows a job as the database has it and a route's members, retries its failures and
cancels another job.

``TELEDISPATCH_SCREENSHOT=docs/console.png`` saves a screenshot of the console showing the
job (for the README); without it nothing is written into the tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from teledispatch.api.auth import API_KEYS_ENV, hash_key
from teledispatch.producer.lookup import job_status, lookup
from teledispatch.producer.submit import enqueue_stream
from tests.integration.test_failover import add_route
from tests.integration.test_retry import set_faults
from tests.support import Stack

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
KEY = "console-key-8b2c"
#: Generous: a shared 2-core machine; every wait polls the page and ends on the outcome.
WAIT_S = 60
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1400,1000",
)


def _browser_missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: apt-get install --no-install-recommends {package}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[dev]')"
    return None


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        pytest.skip(f"no headless browser: {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(WAIT_S)
    try:
        yield browser
    finally:
        browser.quit()


def _until(browser: Any, what: str, check: Callable[[Any], Any]) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page redraws its tables every few seconds: an element read mid-redraw is stale,
    # and the next poll reads the new one.
    wait = WebDriverWait(
        browser, WAIT_S, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(check, message=what)


def _text(browser: Any, css: str) -> str:
    """The element's text, read in one script call (no element handle to go stale)."""
    found = browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css
    )
    return "" if found is None else str(found)


def _rows(browser: Any, css: str) -> list[list[str]]:
    """A table body's cells as text, in one script call."""
    rows: list[list[str]] = browser.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
        ".map(r => [...r.cells].map(c => c.innerText));",
        css,
    )
    return rows


def _counts_shown(browser: Any) -> dict[str, int]:
    return {cells[0]: int(cells[1]) for cells in _rows(browser, "#job-counts")}


def _click(browser: Any, css: str, what: str) -> None:
    from selenium.webdriver.common.by import By

    def click(b: Any) -> bool:
        found = b.find_elements(By.CSS_SELECTOR, css)
        if not found:
            return False
        found[0].click()
        return True

    _until(browser, what, click)


def _open(browser: Any, job_id: str) -> None:
    _click(browser, f'#jobs tr[data-job-id="{job_id}"]', f"job {job_id} listed")
    _until(browser, f"job {job_id} shown", lambda b: _text(b, "#job-id") == job_id)


@pytest.mark.timeout(420)
def test_the_console_shows_retries_and_cancels_jobs(
    make_stack: Callable[..., Stack], driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    stack = make_stack(["--seed", "3"])
    add_route(stack)
    set_faults(stack, item_fail_rate=0.5)
    phones = [f"+861390002{i:04d}" for i in range(12)]
    failing = enqueue_stream(
        "nxcloud", [{"phone": p} for p in phones], defaults={"content": "console"}, cfg=stack.cfg
    ).job_id
    waiting = enqueue_stream(
        "nxcloud",
        [{"phone": "+8613900030001"}, {"phone": "+8613900030002"}],
        defaults={"content": "later"},
        not_before=_far_future(),
        cfg=stack.cfg,
    ).job_id
    stack.worker(concurrency=2, beat=True, name="cw")
    stack.wait_done([failing])
    before = job_status(failing, cfg=stack.cfg).counts
    assert before.get("failed") and before.get("sent"), before  # the seed fails some, not all
    set_faults(stack, item_fail_rate=0.0)
    _, base = stack.api(extra_env={API_KEYS_ENV: hash_key(KEY)})

    driver.get(base + "/console")
    driver.find_element(By.ID, "key").send_keys(KEY)
    driver.find_element(By.ID, "use-key").click()
    _open(driver, failing)
    st = job_status(failing, cfg=stack.cfg)
    assert _text(driver, "#job-total") == str(st.total)
    _until(driver, "the job's counts", lambda b: _counts_shown(b) == st.counts)
    failures = driver.find_elements(By.CSS_SELECTOR, "#failures tbody tr")
    assert (
        sum(int(r.find_elements(By.TAG_NAME, "td")[2].text) for r in failures) == before["failed"]
    )
    _until(
        driver,
        "the account",
        lambda b: "closed" in _text(b, '#accounts tr[data-account="nxcloud"]'),
    )
    route = '#routes tr[data-route="sms"]'
    _until(driver, "the route", lambda b: "uspeedo" in _text(b, route))
    members = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' .member')]"
        ".map(m => [m.dataset.account, m.classList.contains('first-choice')]);",
        route,
    )
    assert members == [["nxcloud", True], ["uspeedo", False]]
    assert "closed" in _text(driver, route) and _text(driver, route).startswith("sms")
    shot = os.environ.get("TELEDISPATCH_SCREENSHOT")
    if shot:
        driver.save_screenshot(shot)

    driver.find_element(By.ID, "btn-retry").click()
    _until(driver, "the retry's answer", lambda b: "retried" in _text(b, "#action-result"))
    assert _text(driver, "#action-result").startswith(f"retried {before['failed']}")
    stack.wait_done([failing])
    after = job_status(failing, cfg=stack.cfg)
    assert after.counts == {"failed": before["failed"], "sent": st.total}
    _until(driver, "the retried job refreshed", lambda b: _counts_shown(b) == after.counts)
    assert _text(driver, "#job-total") == str(after.total)

    _open(driver, waiting)
    driver.find_element(By.ID, "btn-cancel").click()
    _until(driver, "the cancel's answer", lambda b: "cancelled 2" in _text(b, "#action-result"))
    assert job_status(waiting, cfg=stack.cfg).counts == {"cancelled": 2}
    _until(driver, "the cancelled job refreshed", lambda b: _text(b, "#job-state") == "cancelled")

    driver.find_element(By.ID, "search-q").send_keys(phones[0])
    driver.find_element(By.ID, "search-go").click()
    expected = lookup(phone=phones[0], cfg=stack.cfg)
    _until(
        driver,
        "the recipient's messages",
        lambda b: (
            len(b.find_elements(By.CSS_SELECTOR, "#search-results tbody tr")) == len(expected)
        ),
    )
    assert expected[0].status in _text(driver, "#search-results tbody tr")


def _far_future() -> Any:
    from datetime import UTC, datetime

    return datetime(2099, 1, 1, tzinfo=UTC)
