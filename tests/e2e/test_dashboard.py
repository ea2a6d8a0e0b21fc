"""The dashboard in a real browser (Playwright driving Debian's Chromium) against a live
`godel serve` and a real redis-server: sign-in with a session cookie, the banner follows
Redis, operator actions work for an admin login and are refused to a read login."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.servers import GodelServer, RedisServer, start_serve
from tests.support.godel_server import REPO_ROOT, StartProcess
from tests.support.settings import TOKEN, fast_settings

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO_ROOT / "test-artifacts"
BANNER_TEXT = "Redis Connection Error"
READ_KEY = "e2e-reader-secret-0123456789abcdef"  # a read-only login (`viewer`)
# The banner must move within 3 s; the waits allow 5 s so a loaded 2-core machine does not
# fail the test, while the push stream (not a poll or reload) is what moves it.
WAIT_MS = 5000


def start_godel(
    run_process: StartProcess, redis: RedisServer, tmp_path: Path, **settings: Any
) -> GodelServer:
    """`godel serve` on a SQLite ledger in `tmp_path` and `redis`, where a `test.fail`
    event is dead at once (tests.plugins.flaky always fails it; one attempt); `settings` on
    top."""
    base = fast_settings(
        f"sqlite:///{tmp_path}/g.db",
        redis.url,
        handlers="tests.plugins.flaky",
        retry_max_attempts=1,
        **settings,
    )
    return start_serve(run_process, tmp_path / "serve", base)


@pytest.fixture
def godel(run_process: StartProcess, fresh_redis: RedisServer, tmp_path: Path) -> GodelServer:
    return start_godel(run_process, fresh_redis, tmp_path, api_keys=f"viewer:read:{READ_KEY}")


def screenshot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)


def test_banner_follows_redis_and_operator_actions_work(
    godel: GodelServer, fresh_redis: RedisServer, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, godel.url, TOKEN)
    expect(page.locator("#who")).to_have_text("admin")
    banner = page.get_by_text(BANNER_TEXT, exact=True)
    expect(page.locator("#banner-up")).to_be_visible()
    expect(banner).to_be_hidden()
    expect(page.locator("#stream-state")).to_have_text("live", timeout=WAIT_MS)
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

    for i in range(20):
        godel.post({"type": "agent.status", "agent_id": f"e2e-{i % 3}"})
    expect(page.locator("#agents")).to_contain_text("e2e-2", timeout=WAIT_MS)
    expect(page.locator("#feed")).to_contain_text("agent.status", timeout=WAIT_MS)

    fresh_redis.kill9()
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#link-reason")).to_have_text("connection")
    expect(page.locator("#banner-up")).to_be_hidden()
    # Red, with what to do next to it: the runbook's section and the recovery button.
    expect(page.locator("body")).to_have_attribute("data-overall", "down")
    expect(page.locator("#down-todo")).to_contain_text("What to do")
    runbook = page.locator("#runbook-link").get_attribute("href") or ""
    assert runbook.endswith("/docs/runbooks/REDIS_OUTAGE.md#initial-assessment"), runbook
    expect(page.locator("#banner-recover")).to_be_enabled()
    accepted = godel.post({"type": "agent.status", "agent_id": "x"})
    assert accepted["mode"] == "fallback"
    screenshot(page, tmp_path, "dashboard-redis-down.png")

    fresh_redis.restart(keep_data=False)
    expect(banner).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator("#banner-up")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"

    result = page.locator("#action-result")
    page.click("#btn-recover")
    expect(result).to_contain_text("Recovery: link connected", timeout=WAIT_MS)
    page.click("#btn-warm")
    expect(result).to_contain_text("Cache warmed: 4 agents", timeout=WAIT_MS)

    dead_id = godel.post({"type": "test.fail", "payload": {"n": 7}})["id"]
    godel.wait(lambda h: h["events"].get("dead") == 1, "a dead letter")
    rows = page.locator("#dead-admin")
    expect(rows).to_contain_text("test.fail", timeout=WAIT_MS)
    rows.locator("button[data-action=inspect][data-type='test.fail']").click()
    expect(page.locator("#letters-title")).to_contain_text("test.fail")
    letters = page.locator("#letters")
    expect(letters).to_contain_text(dead_id, timeout=WAIT_MS)
    letters.locator(f"button[data-action=details][data-id='{dead_id}']").click()
    detail = page.locator("#dead-detail")
    expect(detail).to_contain_text(dead_id, timeout=WAIT_MS)
    expect(detail).to_contain_text("boom 7")
    page.once("dialog", lambda dialog: dialog.accept())
    rows.locator("button[data-action=replay][data-type='test.fail']").click()
    dead_result = page.locator("#dead-result")
    expect(dead_result).to_contain_text("Replayed 1 dead letters of test.fail", timeout=WAIT_MS)
    page.locator("#dead-detail").evaluate("node => node.scrollIntoView()")
    screenshot(page, tmp_path, "dashboard.png")
    assert not errors, errors


def sign_in(page: Any, url: str, key: str) -> None:
    """Open the dashboard without a session: the sign-in page, then the dashboard."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page).to_have_url(f"{url}/login")
    page.fill("#key", key)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(f"{url}/", timeout=WAIT_MS)
    expect(page.locator("#stream-state")).to_have_text("live", timeout=WAIT_MS)


def test_sign_in_cookie_scopes_and_sign_out(godel: GodelServer, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(godel.url + "/login")
    page.fill("#key", "not-a-key")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("HTTP 401")
    expect(page).to_have_url(f"{godel.url}/login")

    sign_in(page, godel.url, READ_KEY)
    expect(page.locator("#who")).to_have_text("viewer")
    (cookie,) = context.cookies()
    assert cookie["name"] == "godel_session" and cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert READ_KEY not in cookie["value"] and not cookie["secure"]  # plain http here
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
    # A read login sees the page and the stream, but not the operator's buttons.
    expect(page.locator("#btn-recover")).to_be_disabled()
    expect(page.locator("#admin-note")).to_contain_text("admin login")
    status = page.evaluate(
        """async () => (await fetch("/admin/cache/warm", {method: "POST",
             headers: {"X-Requested-With": "e2e"}})).status"""
    )
    assert status == 403
    for i in range(3):
        godel.post({"type": "agent.status", "agent_id": f"r-{i}"})
    expect(page.locator("#agents")).to_contain_text("r-2", timeout=WAIT_MS)

    page.click("#logout")
    expect(page).to_have_url(f"{godel.url}/login", timeout=WAIT_MS)
    assert context.cookies() == []
    page.goto(godel.url)
    expect(page).to_have_url(f"{godel.url}/login")
    assert not errors, errors
    context.close()
