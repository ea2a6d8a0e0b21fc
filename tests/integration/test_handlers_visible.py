"""What runs is visible: the handlers loaded are logged at start, and events no handler
matches are counted and logged (once per type) instead of vanishing silently."""

from __future__ import annotations

import logging

import pytest

from godel import metrics
from tests.harness import make_settings, running, wait_drained


async def test_start_up_logs_the_handlers_and_plugins(
    sqlite_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="godel")
    settings = make_settings(sqlite_url, redis_url, handlers="tests.plugins.flaky")
    async with running(settings, workers=0):
        pass
    assert "handler module tests.plugins.flaky loaded: 3 handler(s)" in caplog.text
    assert "handler agent.* -> godel.store.agents.apply_agent_event (transactional)" in caplog.text
    assert "handler test.fail -> tests.plugins.flaky.always_fails" in caplog.text


async def test_unhandled_events_are_counted_and_their_type_logged_once(
    sqlite_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="godel")
    before = metrics.read(metrics.EVENTS_UNHANDLED)
    async with running(make_settings(sqlite_url, redis_url), workers=1) as h:
        body = {"events": [{"type": "nobody.home"}] * 3 + [{"type": "agent.ping"}]}
        assert (await h.post(body)).status_code == 202

        await wait_drained(h.ledger_url, 4, timeout_s=20)
        assert h.rt.registry.unhandled == {"nobody.home": 3}
    assert metrics.read(metrics.EVENTS_UNHANDLED) - before == 3
    assert caplog.text.count("no handler matches event type nobody.home") == 1
    assert "agent.ping" not in caplog.text  # the built-in agent.* handler took it
