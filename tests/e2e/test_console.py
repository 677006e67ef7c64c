"""The web console in a real browser (headless Chromium from Debian's packages, driven by
Selenium through chromedriver) against the real pipeline and API processes: a photo dropped
into a camera folder appears on the live timeline without a reload, its event page shows the
annotated image and the detections, and a dead letter is requeued with the API key and
refused without it. Screenshots go to `.cache/screenshots/console/` (CONSOLE_SCREENSHOTS)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import drop, new_camera_id, wait_for
from vigil.devservices.procs import REPO_ROOT, free_port

API_KEY = "console-test-key"
PIPELINE_ENV = {
    "FILE_STABLE_S": "0.3",
    "WATCH_INTERVAL_S": "0.25",
    "RETRY_BASE_DELAY_S": "0.2",
    "RETRY_MAX_DELAY_S": "1",
    "BATCH_WINDOW_S": "20",
    "BATCH_IDLE_S": "3",
    "BATCH_CHECK_INTERVAL_S": "0.5",
    "API_KEY_HASHES": hashlib.sha256(API_KEY.encode()).hexdigest(),
}
SCREENSHOTS = Path(
    os.environ.get("CONSOLE_SCREENSHOTS", REPO_ROOT / ".cache" / "screenshots" / "console")
)


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("console-cameras")


@pytest.fixture(scope="module")
def console(stack, camera_root) -> Iterator[dict]:
    """The worker, the projector, the job runner and the API as processes; the console's
    address."""
    port = free_port()
    env = {"CAMERA_ROOT": str(camera_root), "API_PORT": str(port), **PIPELINE_ENV}
    processes = {
        role: stack.start_app(role, name=f"console-{role}", **env)
        for role in ("worker", "projector", "runner", "api")
    }
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout=60, what="the API serving the console")
    handles = {"url": url, "env": env, "stack": stack, **processes}
    yield handles
    for role in ("api", "runner", "projector", "worker"):  # the worker: the one running now
        handles[role].stop()
        stack.apps.remove(handles[role])


@pytest.fixture(scope="module")
def chromium():
    from vigil.devservices.browser import ensure_chromium

    return ensure_chromium()


@pytest.fixture
def browser(chromium):
    """A fresh headless browser (its own session storage: no API key yet)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(chromium.binary)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(str(chromium.driver)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(browser, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert browser.save_screenshot(str(path)), f"no screenshot {path}"
    return path


def found(browser, selector: str):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def texts_of(browser, selector: str) -> list[str]:
    """The text of every element `selector` finds, read in one step in the page: the live
    lists replace their elements as updates arrive, so an element found in one call may be
    gone by the next."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)", selector
    )


def text_of(browser, selector: str) -> str:
    return next(iter(texts_of(browser, selector)), "")


def click(browser, selector: str) -> None:
    """Click the element `selector` finds now (a live list may have replaced the one seen)."""
    browser.execute_script("document.querySelector(arguments[0]).click()", selector)


def test_an_image_appears_live_and_its_event_shows_the_annotated_picture(
    console, browser, camera_root, samples
):
    browser.get(f"{console['url']}/")
    wait_for(lambda: text_of(browser, "#live-status") == "live", timeout=30, what="the feed")
    # Set on this page: still there later means the event arrived without a reload.
    browser.execute_script("window.vigilLoadedOnce = true")
    camera_id = new_camera_id("console")
    drop(camera_root, camera_id, "bus.jpg", samples["bus.jpg"].read_bytes())

    def card() -> str | None:
        """The event's id, once its card is on the timeline."""
        return browser.execute_script(
            "const card = [...document.querySelectorAll('#events li')]"
            ".find(li => li.innerText.includes(arguments[0]));"
            "return card ? card.dataset.item : null",
            camera_id,
        )

    event_id = wait_for(card, timeout=180, what="the event on the live timeline")
    assert browser.execute_script("return window.vigilLoadedOnce === true")
    assert found(browser, "#events li img"), "the batch's thumbnail"
    assert not found(browser, "#events li.empty"), "'no events yet' beside an event"
    screenshot(browser, "timeline")

    click(browser, f'#events li[data-item="{event_id}"] a')
    wait_for(lambda: found(browser, "#detections tbody tr"), timeout=30, what="the detections")

    def loaded_images():
        widths = browser.execute_script(
            "return [...document.querySelectorAll('img.annotated')]"
            ".map(i => i.complete ? i.naturalWidth : 0)"
        )
        return widths if widths and all(w > 0 for w in widths) else None

    widths = wait_for(loaded_images, timeout=30, what="the annotated images to load")
    assert all(width > 0 for width in widths)
    labels = set(texts_of(browser, "#detections tbody tr td:first-child"))
    assert "bus" in labels or "person" in labels, labels
    assert camera_id in text_of(browser, "h1")
    page = text_of(browser, "main")
    assert "undefined" not in page and "NaN" not in page, page
    screenshot(browser, "event")

    # A phone-sized screen: nothing wider than it.
    browser.set_window_size(390, 844)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    )
    screenshot(browser, "event-phone")


def test_a_dead_letter_is_requeued_with_the_key_and_refused_without(
    console, browser, camera_root, engine
):
    camera_id = new_camera_id("console-dlq")
    drop(camera_root, camera_id, "notes.jpg", b"this is a text file, not a photo\n")
    api = console["url"]

    def letter_counted():
        stats = httpx.get(f"{api}/api/dlq/stats", timeout=5, trust_env=False).json()
        return stats["detection_queue_count"] or None

    wait_for(letter_counted, timeout=60, what="the dead letter")
    # The requeued letter would fail again and come back: no worker reads it meanwhile.
    console["worker"].stop()
    try:
        browser.get(f"{api}/#/dlq")
        count = '[data-count="dlq:detection_queue"]'
        wait_for(lambda: text_of(browser, count), timeout=30, what="the queue's count")
        before = int(text_of(browser, count))
        requeue = '[data-queue="dlq:detection_queue"] button.requeue'

        found(browser, requeue)[0].click()
        wait_for(lambda: found(browser, "#key-dialog[open]"), timeout=10, what="the key dialog")
        found(browser, "#key-skip")[0].click()
        wait_for(lambda: found(browser, "#notice.error"), timeout=15, what="the refusal")
        refusal = text_of(browser, "#notice")
        assert "401" in refusal and "API key" in refusal, refusal
        assert int(text_of(browser, count)) == before

        found(browser, "#key-button")[0].click()
        wait_for(lambda: found(browser, "#key-dialog[open]"), timeout=10, what="the key dialog")
        found(browser, "#key-input")[0].send_keys(API_KEY)
        found(browser, "#key-save")[0].click()
        found(browser, requeue)[0].click()
        wait_for(lambda: found(browser, "#notice.ok"), timeout=15, what="the requeue")
        assert "requeued" in text_of(browser, "#notice").lower()
        wait_for(
            lambda: text_of(browser, count) == str(before - 1),
            timeout=15,
            what=f"the count to drop from {before}",
        )
        screenshot(browser, "dead-letters")
    finally:
        restarted = console["stack"].start_app("worker", name="console-worker", **console["env"])
        console["stack"].apps.remove(console["worker"])
        console["worker"] = restarted


def test_a_job_asked_for_elsewhere_runs_to_completion_on_the_jobs_page(console, browser):
    browser.get(f"{console['url']}/#/jobs")
    wait_for(lambda: "live" in text_of(browser, "h1"), timeout=30, what="the jobs feed")
    browser.execute_script("window.vigilLoadedOnce = true")
    asked = httpx.post(
        f"{console['url']}/api/events/export",
        json={"camera_id": new_camera_id("nothing"), "format": "jsonl"},
        headers={"X-API-Key": API_KEY},
        timeout=30,
    )
    assert asked.status_code == 202, asked.text
    job_id = asked.json()["job_id"]
    row = f'#jobs tr[data-item="{job_id}"]'

    def completed() -> str | None:
        cells = texts_of(browser, f"{row} td")
        return cells if cells and cells[1] == "completed" else None

    cells = wait_for(completed, timeout=60, what="the export completed on the page")
    assert cells[0] == "export" and cells[2].endswith("100 %"), cells
    assert browser.execute_script("return window.vigilLoadedOnce === true")
    assert not found(browser, f"{row} button"), "no cancel or abort on a finished job"


@pytest.mark.parametrize(
    ("page", "heading", "content"),
    [
        ("cameras", "Cameras with an open batch", "main"),
        ("breakers", "Circuit breakers", "table"),
        ("jobs", "Jobs", "#jobs"),
        ("dlq", "Dead letters", ".cards"),
    ],
)
def test_every_page_loads_from_the_api(console, browser, page, heading, content):
    browser.get(f"{console['url']}/#/{page}")
    wait_for(lambda: heading in text_of(browser, "h1"), timeout=30, what=f"the {page} page")
    assert found(browser, content)
    assert not found(browser, "#notice.error"), text_of(browser, "#notice")
    assert "undefined" not in text_of(browser, "main")
    [current] = found(browser, "nav a.current")
    assert current.get_attribute("data-view") == page
    screenshot(browser, page)
