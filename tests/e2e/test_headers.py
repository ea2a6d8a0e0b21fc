"""The pages work under the Content Security Policy, in a real browser: the dashboard and
the API docs (Swagger UI served from the package) render, and the browser reports no CSP
violation and loads nothing from another origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import GodelServer, RedisServer, start_serve
from tests.support.godel_server import StartProcess
from tests.support.settings import TOKEN, fast_settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def godel(run_process: StartProcess, redis_server: RedisServer, tmp_path: Path) -> GodelServer:
    redis_server.reset()
    settings = fast_settings(f"sqlite:///{tmp_path}/g.db", redis_server.url)
    return start_serve(run_process, tmp_path / "serve", settings)


@pytest.fixture
def page(godel: GodelServer, browser: Any) -> Iterator[Any]:
    """A page of the shared Chromium (tests/e2e/conftest.py) sending the admin token."""
    context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        yield context.new_page()
    finally:
        context.close()


def watch(page: Any, origin: str) -> list[str]:
    """Console messages about the CSP, and requests to anywhere but Godel."""
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text
            else None
        ),
    )
    page.on(
        "request",
        lambda req: (
            problems.append(f"request to {req.url}")
            if not req.url.startswith((origin, "data:"))
            else None
        ),
    )
    return problems


def test_the_api_docs_render_under_the_csp(godel: GodelServer, page: Any) -> None:
    from playwright.sync_api import expect

    problems = watch(page, godel.url)
    page.goto(f"{godel.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Godel", timeout=10_000)
    expect(page.locator("#operations-events-post_events_api_v1_events_post")).to_be_visible()
    page.locator("#operations-events-post_events_api_v1_events_post .opblock-summary").click()
    expect(page.get_by_text("EventBatch").first).to_be_visible()
    assert problems == []


def test_the_dashboard_renders_under_the_csp(godel: GodelServer, page: Any) -> None:
    from playwright.sync_api import expect

    problems = watch(page, godel.url)
    page.goto(f"{godel.url}/")
    expect(page.locator("#stream-state")).to_contain_text("live", timeout=10_000)
    width = page.eval_on_selector("#mem-bar", "el => el.style.width")
    assert width.endswith("%")
    assert problems == []
