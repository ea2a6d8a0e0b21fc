"""The fast lane reopens by itself when the ledger fails in the middle of a recovery.

Before the recovery sequence was made total, a LedgerUnavailable raised while replaying
killed the probe task and left the Link `recovering` until an operator called
POST /admin/recovery/redis. Here: a PostgreSQL ledger, Redis killed, a backlog of
undispatched events, Redis restarted, and PostgreSQL stopped for a few seconds while the
replay runs. No operator action: the Link must be `connected` within 30 s of PostgreSQL
returning, and every event processed exactly once.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from godel.fastlane.link import LinkState
from tests.harness import (
    assert_exactly_once,
    make_settings,
    running,
    wait_drained,
    wait_until_async,
)
from tests.servers import PostgresServer, RedisServer

pytestmark = [pytest.mark.chaos]
BACKLOG = 20_000


async def test_ledger_down_mid_replay_reopens_the_lane_without_an_operator(
    private_postgres: PostgresServer, fresh_redis: RedisServer
) -> None:
    url = private_postgres.create_database()
    settings = make_settings(url, fresh_redis.url, replay_batch_size=100)
    async with running(settings, workers=0) as h:
        link = h.rt.link
        transitions: list[tuple[str, str]] = []
        link.subscribe(lambda old, new: transitions.append((old.value, new.value)))

        await asyncio.to_thread(fresh_redis.kill9)
        acked: set[str] = set()
        for start in range(0, BACKLOG, 1000):
            batch = [
                {"type": "agent.beat", "agent_id": f"a{i % 50}"} for i in range(start, start + 1000)
            ]
            response = await h.post({"events": batch})
            assert response.status_code == 202, response.text
            assert response.json()["mode"] == "fallback"
            acked.update(response.json()["ids"])
        assert await h.rt.replayer.undispatched() == BACKLOG

        await asyncio.to_thread(fresh_redis.restart)

        def replaying() -> bool:
            return h.rt.replayer.replayed_total > 0

        await wait_until_async(replaying, 30, "the probe's replay to begin")
        await asyncio.to_thread(private_postgres.halt)  # the ledger goes away mid-replay
        assert h.rt.replayer.replayed_total < BACKLOG, "the replay ended before the fault"

        def back_in_fallback() -> bool:
            return link.state is LinkState.FALLBACK

        await wait_until_async(back_in_fallback, 30, "fallback after the ledger failed mid-replay")
        assert ("recovering", "fallback") in transitions
        assert h.rt.recovery.probing, "fallback without a probe: nothing would reopen the lane"
        await asyncio.sleep(3)  # PostgreSQL stays down for a few seconds
        assert link.state is not LinkState.CONNECTED

        await asyncio.to_thread(private_postgres.restart)
        returned = time.monotonic()

        def reopened() -> bool:
            return link.connected

        await wait_until_async(reopened, 30, "the fast lane to reopen with no operator action")
        assert time.monotonic() - returned < 30

        h.rt.add_worker("liveness-worker")
        await wait_drained(url, BACKLOG)
        await asyncio.to_thread(assert_exactly_once, url, acked)
