"""When the database cannot take an event the answer is 503 with a reason, never a 202."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from tests.harness import assert_exactly_once, make_settings, running, wait_drained
from tests.servers import PostgresServer, RedisServer


def _allow_connections(server: PostgresServer, db: str, allow: bool) -> None:
    with server.connect() as conn:
        conn.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (db,),
            )


async def test_database_down_gives_503_and_keeps_what_was_accepted(
    pg_url: str, postgres_server: PostgresServer, redis_url: str
) -> None:
    db = pg_url.rsplit("/", 1)[1]
    settings = make_settings(pg_url, redis_url)
    async with running(settings, workers=1) as h:
        first = await h.post({"events": [{"type": "agent.ping", "agent_id": "a"}] * 20})
        assert first.status_code == 202
        await asyncio.to_thread(_allow_connections, postgres_server, db, False)
        try:
            refused = await h.post({"type": "agent.ping", "agent_id": "a"})
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["error"] == "ledger_unavailable"
            assert (await h.client.get("/health/ready")).status_code == 503
        finally:
            await asyncio.to_thread(_allow_connections, postgres_server, db, True)
        second = await h.post({"events": [{"type": "agent.ping", "agent_id": "b"}] * 5})
        assert second.status_code == 202
        acked = set(first.json()["ids"]) | set(second.json()["ids"])

        await wait_drained(h.ledger_url, len(acked), timeout_s=30)
        await asyncio.to_thread(assert_exactly_once, h.ledger_url, acked)


async def test_eviction_policy_that_may_drop_queue_keys_is_reported(
    sqlite_url: str,
    redis_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="godel")
    server = redis_factory(extra_args=("--maxmemory-policy", "allkeys-lru", "--maxmemory", "64mb"))
    async with running(make_settings(sqlite_url, server.url), workers=0) as h:
        text = (await h.client.get("/metrics")).text
    assert "maxmemory-policy is allkeys-lru" in caplog.text
    assert "godel_redis_eviction_policy_safe 0.0" in text
    assert "godel_redis_maxmemory_bytes 6.7108864e+07" in text
