"""What a client may send, and the honest answer when it may not (issue 9): whatever is
accepted can be stored, served and listed again, on SQLite and on PostgreSQL.

Regressions from the issue's fuzzing: nesting past what orjson serialises, integers past
64 bits, NUL characters (PostgreSQL cannot store them), cursors and Last-Event-ID past
2^63, a trailing newline passing the name patterns, payloads counted in characters,
an id re-sent with another body kept silently, duplicates inside one batch miscounted,
an invalid agent status killing the handler with SQL in `last_error`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.harness import TOKEN, Harness, make_settings, running, wait_until_async

JSON = {"content-type": "application/json"}
DEEP_OK = 60  # levels under the payload object (the object itself is one more)


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def settings(ledger_url: str, redis_url: str) -> Any:
    return make_settings(ledger_url, redis_url)


async def post_raw(h: Harness, body: bytes, **headers: str) -> Any:
    return await h.client.post("/api/v1/events", content=body, headers={**JSON, **headers})


async def test_what_is_accepted_can_be_listed_and_served(settings: Any) -> None:
    payload = {"deep": nested(DEEP_OK), "big": 2**63 - 1, "small": -(2**63), "s": "é" * 10}
    async with running(settings, workers=1) as h:
        r = await h.post({"type": "t.deep", "id": "deep-1", "payload": payload})
        assert r.status_code == 202, r.text
        got = await h.client.get("/api/v1/events/deep-1")
        assert got.status_code == 200 and got.json()["payload"] == payload
        listed = await h.client.get("/api/v1/events")
        assert listed.status_code == 200 and listed.json()["events"][0]["id"] == "deep-1"
        agent = {"id": "ag-1", "metadata": {"deep": nested(DEEP_OK), "n": 2**63 - 1}}
        assert (await h.client.post("/api/v1/agents", json=agent)).status_code == 201
        assert (await h.client.get("/api/v1/agents")).status_code == 200
        assert (await h.client.get("/api/v1/agents/ag-1")).json()["metadata"] == agent["metadata"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"x": nested(70)}, "nested deeper than 64"),
        ({"x": nested(300)}, "nested deeper than 64"),
        ({"x": 2**63}, "64 bits"),
        ({"x": -(2**63) - 1}, "64 bits"),
        ({"x": 2**64}, "64 bits"),
        ({"x": 10**30}, "64 bits"),
        ({"x": "a\u0000b"}, "NUL"),
        ({"a\u0000": 1}, "NUL"),
    ],
    ids=["depth-70", "depth-300", "2^63", "-2^63-1", "2^64", "10^30", "nul-value", "nul-key"],
)
async def test_unstorable_payloads_are_422(settings: Any, payload: Any, needle: str) -> None:
    async with running(settings, workers=0) as h:
        import json

        body = json.dumps({"type": "t.x", "payload": payload}).encode()
        r = await post_raw(h, body)
        assert r.status_code == 422, r.text
        assert needle in r.json()["detail"] and r.json()["error"] == "invalid_event"
        assert await h.counts() == {}


async def test_nesting_past_the_parsers_limit_is_422_not_500(settings: Any) -> None:
    async with running(settings, workers=0) as h:
        body = b'{"type": "t.x", "payload": {"x": ' + b"[" * 2000 + b"]" * 2000 + b"}}"
        r = await post_raw(h, body)
        assert r.status_code == 422 and "nested" in r.json()["detail"]


@pytest.mark.parametrize(
    "metadata",
    [{"x": nested(300)}, {"x": 2**64}, {"x": 2**63}, {"x": "\u0000"}],
    ids=["deep", "2^64", "2^63", "nul"],
)
async def test_unstorable_agent_metadata_is_422(settings: Any, metadata: Any) -> None:
    async with running(settings, workers=0) as h:
        import json

        body = json.dumps({"id": "ag-2", "metadata": metadata}).encode()
        r = await h.client.post("/api/v1/agents", content=body, headers=JSON)
        assert r.status_code == 422, r.text
        assert (await h.client.get("/api/v1/agents")).status_code == 200


async def test_agent_name_and_metadata_are_bounded_in_bytes(settings: Any) -> None:
    async with running(settings, workers=0) as h:
        big = {"id": "ag-3", "metadata": {"x": "é" * 9000}}  # 18,000 bytes, 9,000 characters
        r = await h.client.post("/api/v1/agents", json=big)
        assert r.status_code == 422 and "bytes" in r.json()["detail"], r.text
        r = await h.client.post("/api/v1/agents", json={"id": "ag-3", "name": "n" * 257})
        assert r.status_code == 422
        r = await h.client.post("/api/v1/agents", json={"id": "ag-3", "name": "a\u0000"})
        assert r.status_code == 422


async def test_payload_limit_counts_utf8_bytes(ledger_url: str, redis_url: str) -> None:
    settings = make_settings(ledger_url, redis_url, max_payload_bytes=1024)
    async with running(settings, workers=0) as h:
        r = await h.post({"type": "t.x", "payload": {"s": "€" * 400}})  # 400 chars, 1,200 bytes
        assert r.status_code == 413 and "1208 bytes" in r.json()["detail"], r.text
        assert (await h.post({"type": "t.x", "payload": {"s": "a" * 1000}})).status_code == 202


@pytest.mark.parametrize(
    "event",
    [
        {"type": "t.x\n"},
        {"type": "t.x", "id": "k-1\n"},
        {"type": "t.x", "agent_id": "a-1\n"},
        {"type": "t\u0000x"},
        {"type": "t.x", "id": "k\u0000"},
    ],
    ids=["type", "id", "agent_id", "nul-type", "nul-id"],
)
async def test_names_must_match_whole(settings: Any, event: dict[str, str]) -> None:
    async with running(settings, workers=0) as h:
        r = await h.post(event)
        assert r.status_code == 422 and r.json()["error"] == "invalid_event", r.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/a%00b",
        "/api/v1/events?type=a%00b",
        "/api/v1/events?agent_id=%00",
        "/api/v1/agents/x%00",
        "/api/v1/agents?cursor=%00",
        "/admin/dead/events/x%00",
    ],
)
async def test_nul_in_path_or_query_is_422(settings: Any, path: str) -> None:
    async with running(settings, workers=0) as h:
        r = await h.client.get(path)
        assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/events?cursor={2**63}",
        f"/api/v1/events?cursor={10**30}",
        "/api/v1/events?cursor=-1",
        f"/admin/dead/events?cursor={2**63}",
        f"/api/v1/stream?cursor={2**63}",
    ],
)
async def test_cursors_past_64_bits_are_refused(settings: Any, path: str) -> None:
    async with running(settings, workers=0) as h:
        r = await h.client.get(path)
        assert r.status_code == 422 and r.json()["error"] == "invalid", r.text
        ok = await h.client.get(f"/api/v1/events?cursor={2**63 - 1}")
        assert ok.status_code == 200 and ok.json()["events"] == []


@pytest.mark.parametrize("value", [str(2**63), "12a", "-1", " 1 2", "1" * 40, "0x10"])
async def test_a_bad_last_event_id_is_400(settings: Any, value: str) -> None:
    async with running(settings, workers=0) as h:
        r = await h.client.get("/api/v1/stream", headers={"Last-Event-ID": value})
        assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"], r.text


@pytest.mark.parametrize("since", ["nan", "inf", "9999-99-99", "1e999"])
async def test_a_bad_since_is_400(settings: Any, since: str) -> None:
    async with running(settings, workers=0) as h:
        r = await h.client.get("/api/v1/events", params={"since": since})
        assert r.status_code == 400, r.text


async def test_an_id_sent_again_with_another_body_is_409(settings: Any) -> None:
    async with running(settings, workers=0) as h:
        first = {"type": "t.x", "id": "same", "agent_id": "a", "payload": {"x": 1, "y": 2}}
        assert (await h.post(first)).status_code == 202
        again = {"type": "t.x", "id": "same", "agent_id": "a", "payload": {"y": 2, "x": 1}}
        r = await h.post(again)  # same event, keys in another order: a duplicate
        assert r.status_code == 202 and r.json()["duplicates"] == ["same"], r.text
        assert r.json()["accepted"] == 0
        for changed in ({"type": "t.y"}, {"agent_id": "b"}, {"payload": {"x": 2}}):
            r = await h.post({**first, **changed})
            assert r.status_code == 409, r.text
            assert r.json()["error"] == "conflict" and r.json()["ids"] == ["same"]
            assert "'same'" in r.json()["detail"]
        stored = (await h.client.get("/api/v1/events/same")).json()
        assert stored["type"] == "t.x" and stored["payload"] == {"x": 1, "y": 2}


async def test_a_conflicting_batch_stores_nothing(settings: Any) -> None:
    async with running(settings, workers=0) as h:
        assert (await h.post({"type": "t.x", "id": "old"})).status_code == 202
        batch = {"events": [{"type": "t.x", "id": "new-1"}, {"type": "t.y", "id": "old"}]}
        r = await h.post(batch)
        assert r.status_code == 409 and r.json()["ids"] == ["old"]
        assert (await h.client.get("/api/v1/events/new-1")).status_code == 404


async def test_duplicates_inside_one_batch_are_counted(settings: Any) -> None:
    async with running(settings, workers=0) as h:
        batch = {"events": [{"type": "t.x", "id": "d-1"}] * 2 + [{"type": "t.x", "id": "d-2"}]}
        r = await h.post(batch)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["ids"] == ["d-1", "d-1", "d-2"]
        assert body["accepted"] == 2 and body["duplicates"] == ["d-1"]
        clash = {"events": [{"type": "t.x", "id": "d-3"}, {"type": "t.z", "id": "d-3"}]}
        r = await h.post(clash)
        assert r.status_code == 409 and r.json()["ids"] == ["d-3"]
        assert await h.counts() == {"queued": 2}


async def test_concurrent_conflicts_refuse_only_the_conflicting_request(settings: Any) -> None:
    async with running(settings, workers=0) as h:
        bodies = [{"type": "t.x", "id": f"c-{i}"} for i in range(20)]
        bodies += [{"type": "t.other", "id": "c-3"}, {"type": "t.x", "id": "c-3"}]
        answers = await asyncio.gather(*(h.post(b) for b in bodies))
        codes = [r.status_code for r in answers]
        assert codes.count(409) <= 1 and set(codes) <= {202, 409}, codes
        assert (await h.counts()) == {"queued": 20}


@pytest.mark.parametrize(
    "status",
    ["BUSY", "bu\u0000sy", "busy\n", 7, "x" * 33],
    ids=["caps", "nul", "nl", "int", "long"],
)
async def test_agent_events_with_an_invalid_status_are_refused(settings: Any, status: Any) -> None:
    async with running(settings, workers=0) as h:
        r = await h.post({"type": "agent.status", "agent_id": "a", "payload": {"status": status}})
        assert r.status_code == 422 and "payload" in r.json()["detail"], r.text


async def test_a_stored_invalid_status_is_ignored_not_fatal(settings: Any) -> None:
    """A row accepted before intake checked statuses: the handler applies the event
    without its status rather than failing on every attempt."""
    from godel.event import Event
    from godel.store import inserts

    async with running(settings, workers=1) as h:
        bad = Event(
            id="old-1", type="agent.status", agent_id="ag", payload_json='{"status":"BAD\\n"}'
        )
        await inserts.commit_events(h.rt.db, [(bad, False)])
        await wait_until_async(lambda: _processed(h, "old-1"), 20, "the old agent event processed")
        agent = (await h.client.get("/api/v1/agents/ag")).json()
        assert agent["status"] == "unknown" and agent["events_applied"] == 1


async def _processed(h: Harness, event_id: str) -> bool:
    row = (await h.client.get(f"/api/v1/events/{event_id}")).json()
    assert row["status"] != "dead", row
    return bool(row["status"] == "processed")


async def test_last_error_holds_no_sql(ledger_url: str, redis_url: str) -> None:
    """A transactional handler's database error: `last_error` names the exception, never
    the statement or its parameters (the event's data)."""
    from godel.handlers import Registry

    def broken(conn: Any, event: Any) -> None:
        from sqlalchemy import text

        # NOT NULL violated: an IntegrityError whose message quotes the statement and row.
        insert = (
            "INSERT INTO agents (id, name, status, metadata, created_at, updated_at, "
            "events_applied) VALUES (:s, :s, NULL, '{}', 0, 0, 0)"
        )
        conn.execute(text(insert), {"s": "s3cret-v"})

    registry = Registry()
    registry.add("t.sql", broken, transactional=True)

    settings = make_settings(ledger_url, redis_url, retry_max_attempts=1)
    async with running(settings, workers=1, registry=registry) as h:
        assert (await h.post({"type": "t.sql", "id": "sq-1"})).status_code == 202

        async def dead() -> bool:
            row = (await h.client.get("/api/v1/events/sq-1")).json()
            return bool(row["status"] == "dead")

        await wait_until_async(dead, 20, "the event dead")
        error = (await h.client.get("/api/v1/events/sq-1")).json()["last_error"]
        assert error and "s3cret-v" not in error and "INSERT" not in error, error
        assert "[SQL" not in error and "parameters" not in error


async def test_admin_token_is_not_needed_for_these_checks_to_hold_anonymously(
    settings: Any,
) -> None:
    async with running(settings, workers=0) as h:
        r = await h.anon.get("/api/v1/events/a%00b")
        assert r.status_code in {401, 422} and r.headers["content-type"] == "application/json"
        assert TOKEN not in r.text
