"""Retries, dead letters and the reaper against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import redis
from sqlalchemy import select

from godel.store.schema import events
from tests.harness import ledger_counts, make_settings, running, wait_until_async
from tests.servers import GODEL_BIN, ProcessRunner, RedisServer, godel_env
from tests.support.ledger import reading
from tests.support.settings import fast_settings

HANDLERS = "tests.plugins.flaky"


async def test_failing_handler_dead_letters_and_flaky_one_recovers(
    sqlite_url: str, redis_url: str
) -> None:
    settings = make_settings(sqlite_url, redis_url, handlers=HANDLERS, retry_max_attempts=3)
    async with running(settings, workers=1) as h:
        bad = (await h.post({"type": "test.fail", "payload": {"n": 1}})).json()["id"]
        flaky = (await h.post({"type": "test.flaky"})).json()["id"]

        def settled() -> bool:
            counts = ledger_counts(h.ledger_url)
            return counts.get("dead") == 1 and counts.get("processed") == 1

        await wait_until_async(settled, 30, "dead letter and flaky success")
        dead = (await h.client.get(f"/api/v1/events/{bad}")).json()
        assert dead["status"] == "dead" and dead["attempts"] == 3
        assert "boom 1" in dead["last_error"]
        ok = (await h.client.get(f"/api/v1/events/{flaky}")).json()
        assert ok["status"] == "processed" and ok["attempts"] == 2
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        assert r.lrange("godel:queue:dead:test.fail", 0, -1) == [bad]
        assert r.zcard("godel:queue:delayed") == 0


async def test_dead_letter_in_fallback_reaches_redis_after_recovery(
    sqlite_url: str, fresh_redis: RedisServer
) -> None:
    settings = make_settings(sqlite_url, fresh_redis.url, handlers=HANDLERS, retry_max_attempts=2)
    async with running(settings, workers=1) as h:
        await asyncio.to_thread(fresh_redis.kill9)
        # The worker's blocking claim notices the dead connection; post once it has.
        await wait_until_async(lambda: not h.rt.link.connected, 10, "fallback")
        bad = (await h.post({"type": "test.fail"})).json()
        assert bad["mode"] == "fallback"

        def dead() -> bool:
            return ledger_counts(h.ledger_url).get("dead") == 1

        await wait_until_async(dead, 30, "dead letter via the ledger")
        await asyncio.to_thread(fresh_redis.restart, False)
        r = await h.admin("/admin/recovery/redis")
        assert r.json()["state"] == "connected" and r.json()["remaining"] == 0
    with fresh_redis.client(decode_responses=True) as conn:
        assert conn.lrange("godel:queue:dead:test.fail", 0, -1) == [bad["id"]]


async def test_reaper_returns_the_events_of_a_killed_worker(
    sqlite_url: str,
    redis_url: str,
    run_process: Callable[..., ProcessRunner],
    tmp_path: Path,
) -> None:
    block = tmp_path / "block"
    block.touch()
    fast = fast_settings(sqlite_url, redis_url, handlers=HANDLERS)
    env = godel_env(fast)
    worker = [str(GODEL_BIN), "worker"]
    settings = make_settings(sqlite_url, redis_url, handlers=HANDLERS)
    async with running(settings, workers=0) as h:  # the API and the reaper, no worker
        eid = (await h.post({"type": "test.slow", "payload": {"block_file": str(block)}})).json()[
            "id"
        ]
        proc = run_process(worker, env=env, name="worker-1", inherit_env=False)

        def claimed() -> bool:
            with redis.Redis.from_url(redis_url) as r:
                return any(r.llen(k) for k in r.scan_iter("godel:queue:processing:*"))

        await wait_until_async(claimed, 30, "the worker to claim")
        await asyncio.to_thread(proc.kill9)
        block.unlink()  # the next attempt finishes at once

        def back_in_pending() -> bool:
            with redis.Redis.from_url(redis_url, decode_responses=True) as r:
                return r.lrange("godel:queue:pending", 0, -1) == [eid]

        await wait_until_async(back_in_pending, 10, "the reaper")
        burst = run_process([*worker, "--burst"], env=env, name="worker-2", inherit_env=False)
        assert await asyncio.to_thread(burst.wait, 60) == 0, burst.log_tail()
        with reading(sqlite_url) as conn:
            row = conn.execute(
                select(events.c.status, events.c.attempts).where(events.c.id == eid)
            ).one()
        assert tuple(row) == ("processed", 0)
