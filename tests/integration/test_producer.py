"""The Python Producer writes where a server reads, or refuses to start."""

from __future__ import annotations

import pytest

from godel import Producer
from godel.config import Settings
from godel.errors import ConfigError
from tests.harness import make_settings, running, wait_drained


async def test_without_a_ledger_url_the_producer_refuses_to_guess(tmp_path: object) -> None:
    settings = Settings(database_url="", redis_url=None, data_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="GODEL_DATABASE_URL"):
        async with Producer(settings):
            pass


async def test_ledger_only_producer_events_reach_the_server(
    sqlite_url: str, redis_url: str
) -> None:
    """No GODEL_REDIS_URL: the Producer commits to the ledger only; the server replays them."""
    async with running(make_settings(sqlite_url, redis_url), workers=1) as h:
        publishing = make_settings(sqlite_url, redis_url).model_copy(update={"redis_url": None})
        async with Producer(publishing) as producer:
            ids = await producer.publish_many([{"type": "agent.ping", "agent_id": "p"}] * 20)
            one = await producer.publish("agent.status", {"status": "busy"}, agent_id="p")
        assert len(set(ids)) == 20
        await wait_drained(h.ledger_url, 21, timeout_s=30)
        agent = (await h.client.get("/api/v1/agents/p")).json()
        assert agent["events_applied"] == 21 and agent["last_event_id"] == one


async def test_producer_with_the_servers_redis_pushes_onto_the_fast_lane(
    sqlite_url: str, redis_url: str
) -> None:
    async with running(make_settings(sqlite_url, redis_url), workers=1) as h:
        async with Producer(make_settings(sqlite_url, redis_url)) as producer:
            await producer.publish_many([{"type": "agent.ping", "agent_id": "q"}] * 10)
            assert producer.ingest.lane.link.connected
        await wait_drained(h.ledger_url, 10, timeout_s=30)
