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
from collections.abc import Iterator

import pytest

from godel.fastlane.link import LinkState
from godel.store import ledger
from tests.harness import assert_exactly_once, make_settings, running, wait_until
from tests.servers import PostgresServer, RedisServer, find_postgres_bin_dir

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]
BACKLOG = 20_000


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own: it is stopped and started again mid-test."""
    if find_postgres_bin_dir() is None:
        pytest.skip("PostgreSQL binaries not found (scripts/setup-dev.sh installs them)")
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


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

        async def replaying() -> bool:
            return h.rt.replayer.replayed_total > 0

        await wait_until(replaying, 30, "the probe's replay to begin")
        await asyncio.to_thread(private_postgres.halt)  # the ledger goes away mid-replay
        assert h.rt.replayer.replayed_total < BACKLOG, "the replay ended before the fault"

        async def back_in_fallback() -> bool:
            return link.state is LinkState.FALLBACK

        await wait_until(back_in_fallback, 30, "fallback after the ledger failed mid-replay")
        assert ("recovering", "fallback") in transitions
        assert h.rt.recovery.probing, "fallback without a probe: nothing would reopen the lane"
        await asyncio.sleep(3)  # PostgreSQL stays down for a few seconds
        assert link.state is not LinkState.CONNECTED

        await asyncio.to_thread(private_postgres.restart)
        returned = time.monotonic()

        async def reopened() -> bool:
            return link.connected

        await wait_until(reopened, 30, "the fast lane to reopen with no operator action")
        assert time.monotonic() - returned < 30

        h.rt.add_worker("liveness-worker")

        async def all_done() -> bool:
            counts = await h.rt.db.read(ledger.count_by_status)
            return counts.get("processed", 0) == BACKLOG

        await wait_until(all_done, 60, f"{BACKLOG} events processed")
        await asyncio.to_thread(assert_exactly_once, h.rt, acked)
