"""Whole `godel serve` processes: killed in fallback, and two of them sharing PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from godel.event import Status
from godel.store.schema import events
from tests.servers import GODEL_BIN, GodelServer, RedisServer, godel_env, start_serve
from tests.support.godel_server import StartProcess
from tests.support.ledger import assert_exactly_once, reading, undispatched, wait_drained
from tests.support.settings import TOKEN, fast_settings
from tests.support.wait import wait_until_async

pytestmark = [pytest.mark.chaos]
GATE = "tests.chaos.gate"  # holds agent events whose payload names an existing gate file


def serve(
    run_process: StartProcess, tmp_path: Path, name: str, db_url: str, redis_url: str, **kw: Any
) -> GodelServer:
    settings = fast_settings(db_url, redis_url, **kw)
    return start_serve(run_process, tmp_path / name, settings, name=name)


async def post_many(
    url: str, n: int, prefix: str, payload: dict[str, Any] | None = None
) -> tuple[set[str], set[str]]:
    """Post n agent events one per request; returns (acked ids, modes seen)."""
    acked: set[str] = set()
    modes: set[str] = set()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=auth) as client:
        for i in range(n):
            event = {"type": "agent.ping", "id": f"{prefix}-{i}", "agent_id": f"a{i % 3}"}
            r = await client.post("/api/v1/events", json={**event, "payload": payload or {}})
            assert r.status_code == 202, r.text
            acked.add(r.json()["id"])
            modes.add(r.json()["mode"])
    return acked, modes


@pytest.mark.parametrize("redis_back_first", [False, True])
async def test_api_killed_in_fallback_keeps_what_it_acknowledged(
    redis_back_first: bool, fresh_redis: RedisServer, tmp_path: Path, run_process: StartProcess
) -> None:
    db_url = f"sqlite:///{tmp_path}/g.db"
    first = serve(run_process, tmp_path, "api-1", db_url, fresh_redis.url, workers=0)
    await asyncio.to_thread(fresh_redis.kill9)
    acked, modes = await post_many(first.url, 60, "f")
    assert "fallback" in modes  # the first may still say redis: its push failed afterwards
    first.process.kill9()
    if redis_back_first:
        await asyncio.to_thread(fresh_redis.restart, False)
    second = serve(run_process, tmp_path, "api-2", db_url, fresh_redis.url, workers=1)
    await wait_drained(db_url, len(acked))
    if not redis_back_first:
        await asyncio.to_thread(fresh_redis.restart, False)
    more, _ = await post_many(second.url, 20, "g")
    await wait_drained(db_url, len(acked | more))
    await asyncio.to_thread(assert_exactly_once, db_url, acked | more)


def live_claims(db_url: str) -> int:
    """Ledger claims not yet expired (a worker may still mark these processed)."""
    live = (events.c.status == Status.PROCESSING) & (events.c.claimed_until >= time.time())
    with reading(db_url) as conn:
        return int(conn.execute(select(func.count()).where(live)).scalar_one())


async def test_two_instances_share_postgres_through_an_outage(
    pg_url: str, fresh_redis: RedisServer, tmp_path: Path, run_process: StartProcess
) -> None:
    settings = fast_settings(pg_url, fresh_redis.url, handlers=GATE, workers=1)
    env = godel_env(settings)
    migrate = run_process([str(GODEL_BIN), "db", "upgrade"], env=env, inherit_env=False)
    assert await asyncio.to_thread(migrate.wait, 60) == 0, migrate.log_tail()
    a, b = (start_serve(run_process, tmp_path / n, settings, name=n) for n in ("api-a", "api-b"))
    before = await asyncio.gather(post_many(a.url, 30, "a0"), post_many(b.url, 30, "b0"))
    await asyncio.to_thread(fresh_redis.kill9)
    during = await asyncio.gather(post_many(a.url, 60, "a1"), post_many(b.url, 60, "b1"))
    for _, modes in during:
        assert "fallback" in modes
    # Both instances' workers claim from the one ledger while Redis is away.
    await wait_drained(pg_url, 180)

    # Freeze a backlog for the replay: events the workers claim and then hold at the gate
    # until their claims expire, so none is processed before Redis returns.
    gate = tmp_path / "gate"
    gate.touch()
    held = await asyncio.gather(
        post_many(a.url, 30, "a2", {"gate": str(gate)}),
        post_many(b.url, 30, "b2", {"gate": str(gate)}),
    )
    assert {mode for _, modes in held for mode in modes} == {"fallback"}
    backlog = set().union(*(ids for ids, _ in held))

    def both_workers_held() -> bool:
        return len(list(tmp_path.glob("held-*"))) == 2

    await wait_until_async(both_workers_held, 30, "a worker of each instance at the gate")
    await wait_until_async(lambda: live_claims(pg_url) == 0, 30, "the held claims to expire")
    assert await asyncio.to_thread(undispatched, pg_url) == len(backlog)

    await asyncio.to_thread(fresh_redis.restart, False)
    for server in (a, b):
        server.wait_state("connected")
    await wait_until_async(lambda: undispatched(pg_url) == 0, 30, "the backlog replayed")
    # Replays are claimed in SQL: between them the two instances replayed each backlog
    # event exactly once (a second replay of one would leave another behind, undispatched).
    replayed = [server.metric("godel_replayed_events_total") for server in (a, b)]
    assert sum(replayed) == len(backlog), replayed
    with fresh_redis.client(decode_responses=True) as r:
        assert set(r.lrange("godel:queue:pending", 0, -1)) == backlog  # the workers are held

    gate.unlink()
    after = await asyncio.gather(post_many(a.url, 30, "a3"), post_many(b.url, 30, "b3"))
    acked = backlog.union(*(ids for ids, _ in (*before, *during, *after)))
    await wait_drained(pg_url, len(acked), timeout_s=90)
    await asyncio.to_thread(assert_exactly_once, pg_url, acked)
