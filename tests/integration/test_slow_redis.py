"""A Redis that answers late is not a Redis that is down: a worker's call times out while
redis-server holds every write (CLIENT PAUSE WRITE), yet PING still answers, so the Link
stays connected, and every event is processed once the server writes again."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from godel.handlers import Registry
from godel.intake import parse_event
from godel.pipeline.worker import Worker
from godel.store import ledger
from tests.harness import make_settings, started
from tests.servers import RedisServer


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_paused_redis_is_slow_not_down(
    sqlite_url: str, fresh_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="godel")
    settings = make_settings(sqlite_url, fresh_redis.url)  # 0.3 s socket timeout
    entered = metric("godel_redis_fallback_transitions_total", to="fallback")
    slow = metric("godel_redis_slow_answers_total")
    async with started(settings) as rt:
        ack = await rt.ingest.submit([parse_event({"type": "t.x"}, 1024) for _ in range(5)])
        await rt.ingest.close()
        worker = Worker("w1", rt.settings, db=rt.db, lane=rt.lane, registry=Registry())
        with fresh_redis.client() as conn:
            conn.client_pause(1500, all=False)  # writes (and scripts) wait; PING answers
        assert await worker.run_once() == 0  # its claim timed out
        assert rt.link.connected, rt.link.describe()
        await asyncio.sleep(1.5)  # the pause ends
        handled = 0
        for _ in range(10):
            handled += await worker.run_once()
            if await rt.db.read(ledger.count_by_status) == {"processed": 5}:
                break
        assert await rt.db.read(ledger.count_by_status) == {"processed": 5}
        assert set(ack.ids) <= set(await rt.db.read(ledger.statuses, ack.ids))
        assert rt.link.connected
    assert metric("godel_redis_fallback_transitions_total", to="fallback") == entered
    assert metric("godel_redis_slow_answers_total") > slow
    assert "Entering fallback mode" not in caplog.text
    assert "slow to answer" in caplog.text
