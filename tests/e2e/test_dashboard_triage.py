"""The dashboard as an operator's first day needs it, in a real browser (Debian's Chromium
through Playwright) against a live `godel serve` and redis-server: the page's colour follows
every problem (dead letters growing: amber; the stream lost: grey, figures stale), a new tab
draws the last hour from the server, an event is found by id, one dead letter is replayed
and another deleted, nothing overflows from 360 to 1920 px, and the console stays clean
(no error, no CSP violation)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_dashboard import WAIT_MS, screenshot, sign_in, start_godel
from tests.servers import GodelServer, RedisServer
from tests.support.godel_server import StartProcess
from tests.support.settings import TOKEN

pytestmark = pytest.mark.e2e

WIDTHS = (360, 390, 768, 1920)
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def godel(run_process: StartProcess, fresh_redis: RedisServer, tmp_path: Path) -> GodelServer:
    return start_godel(run_process, fresh_redis, tmp_path, history_interval_s=0.5)


class Console:
    """Console errors and CSP violations of every page of a context. Network errors are
    expected (and forgiven) only while the test has the API stopped."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.api_down = False

    def watch(self, page: Any) -> Any:
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        return page

    def _message(self, msg: Any) -> None:
        text = str(msg.text)
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"CSP: {text}")
        elif msg.type == "error" and not (self.api_down and "net::ERR_" in text):
            self.problems.append(f"console error: {text}")


def event(godel: GodelServer, event_id: str) -> dict[str, Any]:
    r = httpx.get(f"{godel.url}/api/v1/events/{event_id}", headers=godel.auth, timeout=5)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_an_operators_first_day_on_the_dashboard(
    godel: GodelServer, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    console = Console()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = console.watch(context.new_page())
    sign_in(page, godel.url, TOKEN)
    body = page.locator("body")
    expect(body).to_have_attribute("data-overall", "ok", timeout=WAIT_MS)
    expect(page.locator("#workers-table")).to_contain_text("alive", timeout=WAIT_MS)
    expect(page.locator("#workers")).to_have_text("1")
    for i in range(20):
        godel.post({"type": "agent.status", "agent_id": f"e2e-{i % 3}"})
    godel.post({"type": "nobody.handles.this"})
    expect(page.locator("#unhandled")).to_contain_text("nobody.handles.this", timeout=WAIT_MS)

    # Dead letters growing: amber, saying so, with the runbook's section.
    for event_id in ("doomed-a", "doomed-b"):
        godel.post({"type": "test.fail", "id": event_id, "payload": {"n": 7}})
    godel.wait(lambda h: h["events"].get("dead") == 2, "two dead letters")
    expect(body).to_have_attribute("data-overall", "warn", timeout=WAIT_MS)
    attention = page.locator("#attention")
    expect(attention).to_contain_text("Dead letters growing", timeout=WAIT_MS)
    href = attention.locator("a").first.get_attribute("href")
    assert href is not None and href.endswith("/REDIS_OUTAGE.md#dead-letters"), href
    expect(page.locator("#banner")).to_have_class("banner warn")

    # Find an event by id.
    page.fill("#search-id", "doomed-a")
    page.click("#search-form button[type=submit]")
    found = page.locator("#search-result")
    expect(found).to_contain_text("doomed-a", timeout=WAIT_MS)
    expect(found).to_contain_text("dead")
    expect(found).to_contain_text("RuntimeError: boom 7")
    expect(found).to_contain_text("last tried via redis")

    # One dead letter replayed, another deleted; the rest never moves.
    letters = page.locator("#letters")
    expect(letters).to_contain_text("doomed-b", timeout=WAIT_MS)
    result = page.locator("#dead-result")
    letters.locator("button[data-action=replay-one][data-id=doomed-a]").click()
    expect(result).to_have_text("Replayed dead letter doomed-a (pushed to Redis)", timeout=WAIT_MS)
    page.once("dialog", lambda dialog: dialog.accept())
    letters.locator("button[data-action=purge-one][data-id=doomed-b]").click()
    expect(result).to_have_text("Deleted dead letter doomed-b", timeout=WAIT_MS)
    assert event(godel, "doomed-b")["status"] == "purged"
    godel.wait(lambda h: h["events"].get("dead") == 1, "doomed-a to die again (it always fails)")
    assert event(godel, "doomed-a")["attempts"] == 1  # replayed with fresh attempts
    expect(letters).not_to_contain_text("doomed-b", timeout=WAIT_MS)
    expect(letters).to_contain_text("doomed-a")
    expect(page.locator("#letters-range")).to_have_text("1\u20131 of 1")

    # A new tab draws the last samples from the server at once, not from its own stream.
    time.sleep(2.0)  # a few more samples (every 0.5 s)
    opened = time.time()
    second = console.watch(context.new_page())
    second.goto(godel.url + "/")
    chart = second.locator("#chart-throughput")
    expect(chart).to_have_attribute("data-samples", re.compile(r"^([89]|\d\d+)$"), timeout=WAIT_MS)
    assert float(chart.get_attribute("data-from") or "inf") < opened - 3
    expect(chart.locator("polyline").first).to_be_attached()
    screenshot(second, tmp_path, "dashboard-1280.png")

    for width in WIDTHS:
        second.set_viewport_size({"width": width, "height": 900})
        second.wait_for_timeout(150)  # the charts redraw at the new size
        assert second.evaluate(OVERFLOW) <= 0, f"horizontal overflow at {width} px"
        if width == 390:
            screenshot(second, tmp_path, "dashboard-390.png")
    second.close()

    # The stream lost: grey, figures greyed, "disconnected — numbers are stale"; back: live.
    console.api_down = True
    godel.process.terminate()
    expect(body).to_have_attribute("data-overall", "stale", timeout=WAIT_MS)
    expect(page.locator("#banner-stale")).to_be_visible()
    expect(page.locator("#banner-stale")).to_contain_text("Disconnected — numbers are stale")
    expect(page.locator("#stream-state")).to_contain_text("disconnected")
    screenshot(page, tmp_path, "dashboard-stale.png")
    launch = godel.launch
    assert launch is not None
    godel.process.start(launch.args, launch.env, cwd=launch.cwd, inherit_env=False)
    godel.process.wait_http(f"{godel.url}/health/ready", timeout_s=60)
    expect(page.locator("#stream-state")).to_have_text("live", timeout=15_000)
    console.api_down = False
    expect(page.locator("#banner-stale")).to_be_hidden()
    expect(body).not_to_have_attribute("data-overall", "stale")
    assert console.problems == [], console.problems
    context.close()
