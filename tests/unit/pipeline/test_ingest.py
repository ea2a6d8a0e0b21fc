"""pipeline.ingest: concurrent submissions share one group commit, every acknowledgement is
right, and what could not reach Redis is left to the replay. Real SQLite and PostgreSQL,
and a real redis-server where the fast lane is open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from godel.event import Event, Status
from godel.intake import parse_event
from godel.store import ledger
from tests.harness import make_settings, started
from tests.servers import RedisServer

NO_REDIS = "redis://127.0.0.1:1/0"  # never dialled: the fast lane stays closed
COMMITS = "godel_ledger_commit_rows_count"


def event(event_id: str | None = None, **raw: Any) -> Event:
    body = {"type": "t.x", **raw} if event_id is None else {"type": "t.x", "id": event_id, **raw}
    return parse_event(body, 1024)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def pending(redis: RedisServer) -> list[str]:
    with redis.client(decode_responses=True) as r:
        return list(r.lrange("godel:queue:pending", 0, -1))


@pytest.mark.parametrize(("max_rows", "commits"), [(2000, 1), (20, 3)])
async def test_concurrent_submissions_share_group_commits(
    ledger_url: str, redis_server: RedisServer, redis_url: str, max_rows: int, commits: int
) -> None:
    """50 calls in flight at once: they gather while the first group forms, so they commit
    together (in groups of at most `ingest_commit_max_rows`), then go out in one LPUSH."""
    settings = make_settings(ledger_url, redis_url, ingest_commit_max_rows=max_rows)
    async with started(settings) as rt:
        evs = [event() for _ in range(50)]
        before = sample(COMMITS)
        acks = await asyncio.gather(*(rt.ingest.submit([e]) for e in evs))
        assert sample(COMMITS) - before == commits
        for e, ack in zip(evs, acks, strict=True):
            assert (ack.ids, ack.duplicates, ack.mode) == ([e.id], [], "redis")
        await rt.ingest.close()  # the pusher has sent what committed
        assert sorted(pending(redis_server)) == sorted(e.id for e in evs)
        assert await rt.db.read(ledger.count_by_status) == {Status.QUEUED: 50}
        assert await rt.db.read(ledger.count_undispatched) == 0


async def test_duplicates_are_reported_to_their_later_senders(
    ledger_url: str, redis_url: str
) -> None:
    async with started(make_settings(ledger_url, redis_url)) as rt:
        first = await rt.ingest.submit([event("d-1"), event("d-2"), event("d-2")])
        assert (first.ids, first.duplicates) == (["d-1", "d-2", "d-2"], ["d-2"])
        # The same new id from two callers in one group: the first sender gets it.
        a, b, c = await asyncio.gather(
            rt.ingest.submit([event("d-3")]),
            rt.ingest.submit([event("d-3"), event("d-1")]),
            rt.ingest.submit([event("d-4")]),
        )
        assert (a.duplicates, b.duplicates, c.duplicates) == ([], ["d-3", "d-1"], [])
        assert await rt.db.read(ledger.count_by_status) == {Status.QUEUED: 4}


async def test_in_fallback_events_are_committed_undispatched(ledger_url: str) -> None:
    async with started(make_settings(ledger_url, NO_REDIS), fast_lane=False) as rt:
        acks = await asyncio.gather(*(rt.ingest.submit([event()]) for _ in range(10)))
        assert {ack.mode for ack in acks} == {"fallback"}
        await rt.ingest.close()
        assert await rt.db.read(ledger.count_undispatched) == 10
        assert await rt.db.read(ledger.count_by_status) == {Status.QUEUED: 10}


async def test_a_failed_push_leaves_the_events_to_the_replay(
    ledger_url: str, fresh_redis: RedisServer
) -> None:
    async with started(make_settings(ledger_url, fresh_redis.url)) as rt:
        await asyncio.to_thread(fresh_redis.kill9)
        # Nothing has told the Link yet: the commit says dispatched, the push then fails.
        ack = await rt.ingest.submit([event() for _ in range(5)])
        assert ack.mode == "redis"
        await rt.ingest.close()
        assert not rt.link.connected
        assert await rt.db.read(ledger.count_undispatched) == 5

        await asyncio.to_thread(fresh_redis.restart, False)
        result = await rt.recovery.recover_now()  # or the probe did it first: same end
        assert (result["state"], result["remaining"]) == ("connected", 0)
        assert rt.replayer.replayed_total == 5
        assert sorted(pending(fresh_redis)) == sorted(ack.ids)
