"""Replay after an outage: ledger order, pipelined, and claimed (not copied) by instances."""

from __future__ import annotations

import asyncio

import pytest

from godel.config import Settings
from godel.fastlane.link import LinkState
from godel.runtime import Runtime
from tests.harness import make_settings
from tests.servers import RedisServer


async def _start(settings: Settings) -> Runtime:
    rt = Runtime(settings)
    await rt.start(workers=0, maintenance=False, migrate=True)
    return rt


async def _fill_in_fallback(rt: Runtime, n: int) -> list[str]:
    assert rt.link.state is LinkState.FALLBACK
    from godel.intake import parse_event

    ids: list[str] = []
    for start in range(0, n, 500):
        batch = [
            parse_event({"type": "bulk.x", "id": f"r-{i:06d}"}, 1024)
            for i in range(start, min(start + 500, n))
        ]
        ack = await rt.ingest.submit(batch)
        assert ack.mode == "fallback"
        ids += ack.ids
    return ids


async def test_replay_pushes_in_ledger_order(ledger_url: str, fresh_redis: RedisServer) -> None:
    """On PostgreSQL two transactions claim each batch at once: still pushed in order."""
    await asyncio.to_thread(fresh_redis.kill9)
    rt = await _start(make_settings(ledger_url, fresh_redis.url, replay_batch_size=300))
    try:
        ids = await _fill_in_fallback(rt, 1000)
        assert await rt.replayer.undispatched() == 1000
        await asyncio.to_thread(fresh_redis.restart, False)
        result = await rt.recovery.recover_now()  # the background probe may have beaten us to it
        assert result["state"] == "connected" and result["remaining"] == 0
        assert rt.replayer.replayed_total == 1000
        with fresh_redis.client(decode_responses=True) as r:
            # LPUSH puts the oldest at the right end, where workers take from.
            assert r.lrange("godel:queue:pending", 0, -1)[::-1] == ids
    finally:
        await rt.stop()


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
async def test_two_instances_replay_each_event_once(
    db: str, request: pytest.FixtureRequest, fresh_redis: RedisServer
) -> None:
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    await asyncio.to_thread(fresh_redis.kill9)
    settings = make_settings(url, fresh_redis.url, replay_batch_size=200)
    a = await _start(settings)
    b = await _start(settings)
    try:
        ids = await _fill_in_fallback(a, 3000)
        await asyncio.to_thread(fresh_redis.restart, False)
        await asyncio.gather(a.recovery.recover_now(), b.recovery.recover_now())
        assert a.replayer.replayed_total + b.replayer.replayed_total == 3000
        with fresh_redis.client(decode_responses=True) as r:
            pushed = r.lrange("godel:queue:pending", 0, -1)
        assert len(pushed) == 3000 and set(pushed) == set(ids)
    finally:
        await a.stop()
        await b.stop()
