"""A failing handler shows itself: every failed attempt logged at WARNING, the death at
ERROR with the stack, and the stack stored with the event for `GET /admin/dead/events/{id}`
and `godel dead show`."""

from __future__ import annotations

import logging

import pytest

from godel import Event
from godel.handlers import Registry, default_registry
from tests.harness import make_settings, running, wait_until_async


async def _charge(event: Event) -> None:
    amount = event.payload["amount"]
    raise RuntimeError(f"card declined for {amount}")


def handlers() -> Registry:
    registry = default_registry()
    registry.add("billing.*", _charge)
    return registry


async def test_failed_attempts_and_death_are_logged_and_the_stack_stored(
    sqlite_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="godel")
    settings = make_settings(sqlite_url, redis_url, retry_max_attempts=3)
    async with running(settings, workers=1, registry=handlers()) as h:
        posted = await h.post({"type": "billing.charge", "id": "bill-1", "payload": {"amount": 7}})
        assert posted.status_code == 202

        async def dead() -> bool:
            return (await h.counts()).get("dead") == 1

        await wait_until_async(dead, 30, "bill-1 to die")
        letter = (await h.client.get("/admin/dead/events/bill-1")).json()
        event = (await h.client.get("/api/v1/events/bill-1")).json()

    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "bill-1" in r.msg % r.args
    ]
    assert len(warnings) == 2  # attempts 1 and 2 of 3
    assert "type=billing.charge id=bill-1 attempt=1/3: RuntimeError: card declined for 7" in (
        warnings[0].getMessage()
    )
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    death = errors[0].getMessage()
    assert "event bill-1 (billing.charge) is dead after 3 attempts" in death
    assert "in _charge" in death and "Traceback (most recent call last)" in death

    stack = letter["last_traceback"]
    assert stack.startswith("Traceback (most recent call last):")
    assert "in _charge" in stack and 'raise RuntimeError(f"card declined for {amount}")' in stack
    assert stack.rstrip().endswith("RuntimeError: card declined for 7")
    assert "last_traceback" not in event  # the read API serves the error line only
    assert event["last_error"] == "RuntimeError: card declined for 7"
