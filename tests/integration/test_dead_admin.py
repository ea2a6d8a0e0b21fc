"""Dead-letter admin endpoints against a real redis-server and a real SQLite ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from godel import Event
from godel.fastlane.link import LinkState
from godel.handlers import Registry, default_registry
from godel.pipeline.deadletters import DeadLetters
from tests.harness import TOKEN, Harness, ledger_counts, make_settings, running, wait_until_async
from tests.servers import RedisServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATTERN = "deadtest.*"
broken = {"on": True}  # the handler's switch: a bug, then its fix


async def _deadtest_handler(event: Event) -> None:
    if broken["on"]:
        raise RuntimeError(f"broken handler for {event.payload.get('n')}")


@pytest.fixture(autouse=True)
def deadtest_handler() -> Iterator[None]:
    broken["on"] = True
    yield
    broken["on"] = True


def handlers() -> Registry:
    """This test's own registry: the built-ins plus the switchable broken handler."""
    registry = default_registry()
    registry.add(PATTERN, _deadtest_handler)
    return registry


def settings_for(sqlite_url: str, redis_url: str) -> Any:
    return make_settings(sqlite_url, redis_url, retry_max_attempts=2)


async def get(h: Harness, path: str, **params: Any) -> Any:
    r = await h.client.get(path, params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


async def post(h: Harness, path: str, **params: Any) -> Any:
    r = await h.client.post(path, params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


async def kill_events(h: Harness, counts: dict[str, int]) -> dict[str, list[str]]:
    """Post events that the broken handler sends to the dead letters; wait until they are."""
    ids: dict[str, list[str]] = {}
    for event_type, n in counts.items():
        body = {"events": [{"type": event_type, "payload": {"n": i}} for i in range(n)]}
        ids[event_type] = (await h.post(body)).json()["ids"]
    total = sum(counts.values())

    def all_dead() -> bool:
        return ledger_counts(h.ledger_url).get("dead") == total

    await wait_until_async(all_dead, 30, f"{total} dead letters")
    return ids


def redis_list(url: str, event_type: str) -> list[str]:
    with redis.Redis.from_url(url, decode_responses=True) as r:
        return list(r.lrange(f"godel:queue:dead:{event_type}", 0, -1))


async def wait_listed(url: str, event_type: str, n: int) -> None:
    def listed() -> bool:
        return len(redis_list(url, event_type)) == n

    await wait_until_async(listed, 10, f"{n} ids in godel:queue:dead:{event_type}")


async def test_list_show_and_validation(sqlite_url: str, redis_url: str) -> None:
    async with running(settings_for(sqlite_url, redis_url), registry=handlers()) as h:
        ids = await kill_events(h, {"deadtest.a": 3, "deadtest.b": 2})
        await wait_listed(redis_url, "deadtest.a", 3)
        await wait_listed(redis_url, "deadtest.b", 2)
        summary = await get(h, "/admin/dead")
        assert summary["types"] == {"deadtest.a": 3, "deadtest.b": 2}
        assert summary["total"] == 5 and summary["redis"] == summary["types"]

        first = await get(h, "/admin/dead/events", type="deadtest.a", limit=2)
        assert [e["id"] for e in first["events"]] == ids["deadtest.a"][:2]
        rest = await get(h, "/admin/dead/events", type="deadtest.a", cursor=first["next_cursor"])
        assert [e["id"] for e in rest["events"]] == ids["deadtest.a"][2:]
        assert rest["next_cursor"] is None
        every = await get(h, "/admin/dead/events")
        assert len(every["events"]) == 5

        one = await get(h, f"/admin/dead/events/{ids['deadtest.b'][1]}")
        assert one["payload"] == {"n": 1} and one["attempts"] == 2
        assert one["type"] == "deadtest.b" and "broken handler for 1" in one["last_error"]
        assert set(one) >= {"id", "seq", "agent_id", "created_at", "updated_at"}

        missing = await h.client.get("/admin/dead/events/nope", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        for params in ({"limit": 0}, {"limit": 1001}, {"cursor": -1}, {"type": "no spaces"}):
            bad = await h.client.get("/admin/dead/events", params=params, headers=AUTH)
            assert bad.status_code == 422 and bad.json()["error"] == "invalid", params
        bad = await h.client.post("/admin/dead/replay", params={"type": "a b"}, headers=AUTH)
        assert bad.status_code == 422
        assert await post(h, "/admin/dead/replay", type="unknown.type") == {
            "replayed": 0,
            "pushed": 0,
        }
        assert (await post(h, "/admin/dead/purge", type="unknown.type"))["purged"] == 0


async def test_auth_is_required(sqlite_url: str, redis_url: str) -> None:
    async with running(settings_for(sqlite_url, redis_url), workers=0, registry=handlers()) as h:
        for method, path in (
            ("GET", "/admin/dead"),
            ("GET", "/admin/dead/events"),
            ("GET", "/admin/dead/events/x"),
            ("POST", "/admin/dead/replay"),
            ("POST", "/admin/dead/purge"),
        ):
            missing = await h.anon.request(method, path)
            assert missing.status_code == 401, path
            assert missing.json()["error"] == "unauthorized"
            wrong = await h.anon.request(method, path, headers={"Authorization": "Bearer no"})
            assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized", path


async def test_replay_after_fix_processes_and_purge_discards(
    sqlite_url: str, redis_url: str
) -> None:
    async with running(settings_for(sqlite_url, redis_url), registry=handlers()) as h:
        ids = await kill_events(h, {"deadtest.a": 3, "deadtest.b": 2})
        await wait_listed(redis_url, "deadtest.a", 3)
        await wait_listed(redis_url, "deadtest.b", 2)
        broken["on"] = False  # the fix is deployed

        assert await post(h, "/admin/dead/replay", type="deadtest.a") == {
            "replayed": 3,
            "pushed": 3,
        }
        assert redis_list(redis_url, "deadtest.a") == []

        def processed() -> bool:
            return ledger_counts(h.ledger_url).get("processed") == 3

        await wait_until_async(processed, 30, "replayed dead letters processed")
        for event_id in ids["deadtest.a"]:
            ev = (await h.client.get(f"/api/v1/events/{event_id}")).json()
            assert ev["status"] == "processed" and ev["attempts"] == 0
            assert "broken handler" in ev["last_error"]  # the history is kept
        again = await post(h, "/admin/dead/replay", type="deadtest.a")
        assert again["replayed"] == 0  # idempotent

        assert await post(h, "/admin/dead/purge", type="deadtest.b") == {"purged": 2}
        assert redis_list(redis_url, "deadtest.b") == []
        assert (await post(h, "/admin/dead/purge"))["purged"] == 0
        summary = await get(h, "/admin/dead")
        assert summary == {"types": {}, "total": 0, "redis": {}}
        counts = await h.counts()
        assert counts == {"processed": 3, "purged": 2}  # the ledger keeps every row
        assert (await h.client.get("/health")).json()["undispatched"] == 0
        gone = await h.client.get(f"/admin/dead/events/{ids['deadtest.b'][0]}", headers=AUTH)
        assert gone.status_code == 404


async def test_replay_in_batches_keeps_ledger_order(sqlite_url: str, redis_url: str) -> None:
    async with running(settings_for(sqlite_url, redis_url), workers=0, registry=handlers()) as h:
        # A burst worker kills them and exits, so pending then shows the replayed order.
        ids = {"deadtest.c": (await h.post({"events": [{"type": "deadtest.c"}] * 5})).json()["ids"]}
        await h.rt.add_worker("burst-0", burst=True)
        assert (await h.counts()) == {"dead": 5}
        await wait_listed(redis_url, "deadtest.c", 5)
        result = await DeadLetters(db=h.rt.db, lane=h.rt.lane, batch=2).replay()
        assert result == {"replayed": 5, "pushed": 5}
        with redis.Redis.from_url(redis_url, decode_responses=True) as r:
            # Workers take from the right: the oldest event must be the rightmost.
            assert r.lrange("godel:queue:pending", 0, -1) == list(reversed(ids["deadtest.c"]))
            assert r.llen("godel:queue:dead:deadtest.c") == 0


async def test_replay_and_purge_while_redis_is_down(sqlite_url: str, redis_factory: Any) -> None:
    """Done in fallback, the ledger changes at once; the Redis lists are tidied once the
    link is back and the next replay or purge runs."""
    server: RedisServer = redis_factory(appendonly=True)
    async with running(settings_for(sqlite_url, server.url), registry=handlers()) as h:
        ids = await kill_events(h, {"deadtest.d": 2, "deadtest.e": 1})
        await wait_listed(server.url, "deadtest.d", 2)
        await wait_listed(server.url, "deadtest.e", 1)
        broken["on"] = False
        await asyncio.to_thread(server.pause)  # hung: the lists survive, nothing answers

        def in_fallback() -> bool:
            return h.rt.link.state is LinkState.FALLBACK

        await wait_until_async(in_fallback, 10, "fallback")
        assert await post(h, "/admin/dead/replay", type="deadtest.d") == {
            "replayed": 2,
            "pushed": 0,
        }
        assert await post(h, "/admin/dead/purge", type="deadtest.e") == {"purged": 1}

        def processed() -> bool:
            return ledger_counts(h.ledger_url).get("processed") == 2

        await wait_until_async(processed, 30, "replayed dead letters processed from the ledger")
        await asyncio.to_thread(server.resume)

        def connected() -> bool:
            return h.rt.link.connected

        await wait_until_async(connected, 10, "recovery")
        assert redis_list(server.url, "deadtest.d") == ids["deadtest.d"][::-1]  # stale
        assert await post(h, "/admin/dead/purge") == {"purged": 0}
        assert redis_list(server.url, "deadtest.d") == []
        assert redis_list(server.url, "deadtest.e") == []
        assert (await h.client.get("/health")).json()["undispatched"] == 0


async def test_replay_before_the_fix_is_finite(sqlite_url: str, redis_url: str) -> None:
    """Still broken, replayed events die again at once; one call replays each only once."""
    settings = make_settings(sqlite_url, redis_url, retry_max_attempts=1)
    async with running(settings, workers=2, registry=handlers()) as h:
        await kill_events(h, {"deadtest.f": 20})
        dl = DeadLetters(db=h.rt.db, lane=h.rt.lane, batch=1)
        assert (await dl.replay("deadtest.f"))["replayed"] == 20

        async def all_dead_again() -> bool:
            return (await dl.summary())["types"] == {"deadtest.f": 20}

        await wait_until_async(all_dead_again, 30, "the replayed events to die again")


async def test_sync_restores_the_lists_a_restarted_redis_lost(
    sqlite_url: str, fresh_redis: RedisServer
) -> None:
    async with running(settings_for(sqlite_url, fresh_redis.url), registry=handlers()) as h:
        ids = await kill_events(h, {"deadtest.g": 3})
        await wait_listed(fresh_redis.url, "deadtest.g", 3)
        await asyncio.to_thread(fresh_redis.restart, False)  # no AOF: the lists are gone

        def recovered() -> bool:
            return h.rt.link.connected

        await wait_until_async(recovered, 10, "recovery")
        assert redis_list(fresh_redis.url, "deadtest.g") == []
        dl = DeadLetters(db=h.rt.db, lane=h.rt.lane)
        # Just died: their worker may still be filing them, so the default grace skips them.
        assert await dl.sync() == {"removed": 0, "restored": 0}
        assert await dl.sync(settle_grace_s=0) == {"removed": 0, "restored": 3}
        assert sorted(redis_list(fresh_redis.url, "deadtest.g")) == sorted(ids["deadtest.g"])
        assert await dl.sync(settle_grace_s=0) == {"removed": 0, "restored": 0}
        assert (await get(h, "/admin/dead"))["redis"] == {"deadtest.g": 3}
