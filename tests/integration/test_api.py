"""The HTTP API against a real redis-server and a real SQLite ledger."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness import assert_exactly_once, make_settings, running, wait_drained


@pytest.fixture
def settings(sqlite_url: str, redis_url: str):  # type: ignore[no-untyped-def]
    return make_settings(sqlite_url, redis_url)


async def test_post_one_event_is_processed(settings) -> None:  # type: ignore[no-untyped-def]
    async with running(settings) as h:
        r = await h.post({"type": "agent.status", "agent_id": "a-1", "payload": {"status": "busy"}})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["mode"] == "redis" and body["accepted"] == 1
        await wait_drained(h.ledger_url, 1)
        ev = (await h.client.get(f"/api/v1/events/{body['id']}")).json()
        assert ev["status"] == "processed" and ev["attempts"] == 0
        agent = (await h.client.get("/api/v1/agents/a-1")).json()
        assert agent["status"] == "busy" and agent["events_applied"] == 1
        assert_exactly_once(h.ledger_url, {body["id"]})


async def test_batch_and_duplicate_ids(settings) -> None:  # type: ignore[no-untyped-def]
    async with running(settings) as h:
        events = [{"type": "agent.ping", "id": f"b-{i}", "agent_id": "a"} for i in range(50)]
        r = await h.post({"events": events})
        assert r.status_code == 202
        assert r.json()["ids"] == [f"b-{i}" for i in range(50)]
        again = await h.post({"type": "agent.ping", "id": "b-7", "agent_id": "a"})
        assert again.status_code == 202 and again.json()["duplicates"] == ["b-7"]
        await wait_drained(h.ledger_url, 50)
        assert_exactly_once(h.ledger_url, {f"b-{i}" for i in range(50)})


async def test_concurrent_posts_are_group_committed(settings) -> None:  # type: ignore[no-untyped-def]
    async with running(settings, workers=2) as h:
        results = await asyncio.gather(
            *(h.post({"type": "agent.ping", "agent_id": f"a{i % 3}"}) for i in range(200))
        )
        assert {r.status_code for r in results} == {202}
        acked = {r.json()["id"] for r in results}
        await wait_drained(h.ledger_url, 200)
        assert_exactly_once(h.ledger_url, acked)


async def test_list_events_filters_and_cursor(settings) -> None:  # type: ignore[no-untyped-def]
    async with running(settings, workers=0) as h:
        await h.post(
            {
                "events": [{"type": "x.a", "agent_id": "p"} for _ in range(5)]
                + [{"type": "x.b"} for _ in range(3)]
            }
        )
        page = (await h.client.get("/api/v1/events", params={"type": "x.a", "limit": 2})).json()
        assert len(page["events"]) == 2 and page["next_cursor"] is not None
        rest = (
            await h.client.get(
                "/api/v1/events", params={"type": "x.a", "limit": 10, "cursor": page["next_cursor"]}
            )
        ).json()
        assert len(rest["events"]) == 3 and rest["next_cursor"] is None
        assert {e["type"] for e in rest["events"]} == {"x.a"}
        by_agent = (await h.client.get("/api/v1/events", params={"agent_id": "p"})).json()
        assert len(by_agent["events"]) == 5
        queued = await h.client.get(
            "/api/v1/events", params={"status": "queued", "since": "2000-01-01T00:00:00Z"}
        )
        assert len(queued.json()["events"]) == 8


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"type": "a.b", "colour": "red"}', 422, "invalid_event"),
        (b'{"type": "no spaces allowed"}', 422, "invalid_event"),
        (b'{"type": 7}', 422, "invalid_event"),
        (b'{"payload": {}}', 422, "invalid_event"),
        (b'{"type": "a.b", "payload": [1, 2]}', 422, "invalid_event"),
        (b'{"type": "a.b", "id": "has space"}', 422, "invalid_event"),
        (b'{"events": []}', 422, "invalid_event"),
        (b"[1, 2]", 422, "invalid_event"),
    ],
)
async def test_bad_input_gets_a_json_reason(
    settings,
    body: bytes,
    status: int,  # type: ignore[no-untyped-def]
    error: str,
) -> None:
    async with running(settings, workers=0) as h:
        r = await h.client.post(
            "/api/v1/events", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == status, r.text
        assert r.json()["error"] == error and r.json()["detail"]


async def test_size_limits(sqlite_url: str, redis_url: str) -> None:
    settings = make_settings(sqlite_url, redis_url, max_payload_bytes=1024, max_batch_events=10)
    async with running(settings, workers=0) as h:
        big = await h.post({"type": "a.b", "payload": {"x": "y" * 2000}})
        assert big.status_code == 413 and "limit is 1024" in big.json()["detail"]
        many = await h.post({"events": [{"type": "a.b"}] * 11})
        assert many.status_code == 413 and "limit is 10" in many.json()["detail"]
        wrong = await h.client.post(
            "/api/v1/events", content=b"type=a", headers={"content-type": "text/plain"}
        )
        assert wrong.status_code == 415
        assert (await h.client.get("/api/v1/events/nope")).status_code == 404
        bad_q = await h.client.get("/api/v1/events", params={"limit": 0})
        assert bad_q.status_code == 422 and bad_q.json()["error"] == "invalid"


async def test_admin_token(settings) -> None:  # type: ignore[no-untyped-def]
    async with running(settings, workers=0) as h:
        missing = await h.anon.post("/admin/recovery/redis")
        assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
        wrong = await h.anon.post("/admin/cache/warm", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        ok = await h.admin("/admin/recovery/redis")
        assert ok.status_code == 200
        assert ok.json()["state"] == "connected" and ok.json()["remaining"] == 0


async def test_agents_and_cache_warm(settings, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    import redis

    async with running(settings, workers=0) as h:
        for i in range(3):
            r = await h.client.post("/api/v1/agents", json={"id": f"ag-{i}", "name": f"n{i}"})
            assert r.status_code == 201
        bad = await h.client.post("/api/v1/agents", json={"id": "x", "extra": 1})
        assert bad.status_code == 422
        listed = (await h.client.get("/api/v1/agents")).json()["agents"]
        assert [a["id"] for a in listed] == ["ag-0", "ag-1", "ag-2"]
        assert (await h.client.get("/api/v1/agents/missing")).status_code == 404
        warm = await h.admin("/admin/cache/warm")
        assert warm.status_code == 200 and warm.json()["warmed"] == 3
        with redis.Redis.from_url(redis_url) as r:
            assert r.exists("godel:cache:agent:ag-1") and r.ttl("godel:cache:agent:ag-1") > 0


async def test_health_and_metrics(settings) -> None:  # type: ignore[no-untyped-def]
    async with running(settings, workers=0) as h:
        assert (await h.client.get("/health/live")).json() == {"status": "ok"}
        ready = await h.client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["state"] == "connected"
        health = (await h.client.get("/health")).json()
        assert health["link"]["state"] == "connected" and health["queues"]["pending"] == 0
        text = (await h.client.get("/metrics")).text
        for name in (
            "godel_redis_fallback_active",
            "godel_memory_cache_entries",
            "godel_fallback_queued_events",
            "godel_replayed_events_total",
            "godel_queue_depth",
            "godel_http_request_duration_seconds",
            "godel_redis_used_memory_bytes",
        ):
            assert name in text, name
