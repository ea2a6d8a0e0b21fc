"""GET /api/v1/stream over real HTTP (an in-process uvicorn server; httpx's ASGI transport
buffers whole responses, so it cannot follow a stream) against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI

from godel.api import create_app
from godel.api.deps import api_state
from godel.api.server import ApiServer
from godel.config import Settings
from tests.harness import TOKEN, make_settings, running, wait_until_async
from tests.servers import LOOPBACK, RedisServer, free_port

STREAM = "/api/v1/stream"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Served:
    url: str
    app: FastAPI
    server: uvicorn.Server
    task: asyncio.Task[None]


@asynccontextmanager
async def serving(settings: Settings, workers: int = 1) -> AsyncIterator[Served]:
    app = create_app(settings, workers=workers)
    port = free_port()
    # No graceful-shutdown timeout: a stream that ignored shutdown would hang the test.
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", ws="none")
    server = ApiServer(config, app)
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        return server.started or task.done()

    await wait_until_async(started, 20, "uvicorn to start")
    assert not task.done(), "uvicorn exited on start"
    try:
        yield Served(f"http://{LOOPBACK}:{port}", app, server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


class Events:
    """Reads `event:`/`data:`/`id:` blocks from an open text/event-stream response."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        self.lines = response.aiter_lines()

    async def next(self) -> tuple[str, Any, str | None]:
        name, data, event_id = "message", "", None
        async for line in self.lines:
            if not line:
                if data:
                    return name, orjson.loads(data), event_id
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data += value
            elif field == "id":
                event_id = value
        raise EOFError("the stream ended")

    async def until(self, name: str, check: Any = None, timeout_s: float = 10.0) -> Any:
        """The data of the first `name` message for which `check(data)` holds."""
        async with asyncio.timeout(timeout_s):
            while True:
                got, data, _ = await self.next()
                if got == name and (check is None or check(data)):
                    return data


def settings_for(sqlite_url: str, redis_url: str) -> Settings:
    return make_settings(sqlite_url, redis_url)


async def test_status_events_and_link_changes(sqlite_url: str, fresh_redis: RedisServer) -> None:
    async with (
        serving(settings_for(sqlite_url, fresh_redis.url)) as s,
        httpx.AsyncClient(base_url=s.url, timeout=10, headers=AUTH) as client,
        client.stream("GET", STREAM, params={"interval": 0.5}) as response,
    ):
        events = Events(response)
        first = await events.until("link")
        assert first["state"] == "connected" and first["reason"] is None
        status = await events.until("status")
        assert status["link"]["state"] == "connected" and status["queues"]["pending"] == 0
        assert {"stats", "redis_memory", "agents", "processed", "undispatched"} <= set(status)
        assert status["redis_memory"]["used"] > 0

        posted = await client.post("/api/v1/events", json={"type": "agent.ping", "agent_id": "s1"})
        new = await events.until("events")
        assert [e["id"] for e in new["events"]] == [posted.json()["id"]]
        assert new["cursor"] == new["events"][0]["seq"] and "payload" not in new["events"][0]

        killed = time.monotonic()
        await asyncio.to_thread(fresh_redis.kill9)
        down = await events.until("link", lambda d: d["state"] == "fallback")
        assert time.monotonic() - killed < 3.0, "the link event must be pushed at once"
        assert down["previous"] == "connected" and down["reason"] == "connection"
        assert down["last_error"]
        stale = await events.until("status")
        assert stale["link"]["state"] == "fallback" and stale["queues"] is None

        await asyncio.to_thread(fresh_redis.restart, False)
        restarted = time.monotonic()
        up = await events.until("link", lambda d: d["state"] == "connected")
        assert time.monotonic() - restarted < 3.0
        assert up["reason"] is None
        assert (await events.until("status"))["link"]["state"] == "connected"


async def test_cursor_and_last_event_id_resume(sqlite_url: str, redis_url: str) -> None:
    async with (
        serving(settings_for(sqlite_url, redis_url), workers=0) as s,
        httpx.AsyncClient(base_url=s.url, timeout=10, headers=AUTH) as client,
    ):
        body = {"events": [{"type": "feed.x", "id": f"f-{i}"} for i in range(3)]}
        assert (await client.post("/api/v1/events", json=body)).status_code == 202
        async with client.stream("GET", STREAM, params={"cursor": 0, "interval": 0.2}) as r:
            batch = await Events(r).until("events")
        assert [e["id"] for e in batch["events"]] == ["f-0", "f-1", "f-2"]
        second = batch["events"][1]["seq"]
        # An EventSource reconnecting sends the last id it saw.
        headers = {"Last-Event-ID": str(second)}
        async with client.stream("GET", STREAM, params={"interval": 0.2}, headers=headers) as r:
            resumed = await Events(r).until("events")
        assert [e["id"] for e in resumed["events"]] == ["f-2"]
        # Without a cursor a stream starts at the ledger's end: only new rows.
        async with client.stream("GET", STREAM, params={"interval": 0.2}) as r:
            events = Events(r)
            await events.until("status")
            await client.post("/api/v1/events", json={"type": "feed.x", "id": "f-3"})
            fresh = await events.until("events")
        assert [e["id"] for e in fresh["events"]] == ["f-3"]


async def test_disconnect_releases_the_listener(sqlite_url: str, redis_url: str) -> None:
    async with (
        serving(settings_for(sqlite_url, redis_url), workers=0) as s,
        httpx.AsyncClient(base_url=s.url, timeout=10, headers=AUTH) as client,
    ):
        rt = api_state(s.app).rt
        async with client.stream("GET", STREAM, params={"interval": 0.2}) as r:
            await Events(r).until("status")
            during = rt.link.listener_count
        # One listener stays: the shared snapshot's (it lives as long as the runtime).

        def released() -> bool:
            return rt.link.listener_count == during - 1

        await wait_until_async(released, 10, "the stream's Link listener to be removed")
        for params in ({"interval": 0.1}, {"interval": 61}, {"cursor": -1}):
            bad = await client.get(STREAM, params=params)
            assert bad.status_code == 422 and bad.json()["error"] == "invalid", params


async def test_shutdown_does_not_wait_for_open_streams(sqlite_url: str, redis_url: str) -> None:
    settings = settings_for(sqlite_url, redis_url)
    async with (
        serving(settings, workers=0) as s,
        httpx.AsyncClient(base_url=s.url, timeout=10, headers=AUTH) as client,
        client.stream("GET", STREAM) as response,
    ):
        events = Events(response)
        await events.until("status")
        asked = time.monotonic()
        s.server.should_exit = True  # what uvicorn's SIGTERM handler does
        await asyncio.wait_for(s.task, 10)
        assert time.monotonic() - asked < 5.0
        try:
            while True:
                await events.next()
        except EOFError:
            pass  # the server ended the stream cleanly


async def test_dashboard_first_paint(sqlite_url: str, fresh_redis: RedisServer) -> None:
    """The page is rendered on the server from the same snapshot, so it is right before
    any JavaScript runs."""
    async with running(settings_for(sqlite_url, fresh_redis.url), workers=0) as h:
        await h.client.post("/api/v1/agents", json={"id": "agent-7", "status": "busy"})
        page = await h.client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        html = page.text
        assert '<div id="banner-down" hidden>' in html and "Redis connected" in html
        assert "agent-7" in html
        assert (await h.client.get("/static/dashboard.js")).status_code == 200
        assert (await h.client.get("/static/dashboard.css")).status_code == 200
        assert (await h.client.get("/static/../app.py")).status_code == 404

        await asyncio.to_thread(fresh_redis.kill9)

        def down() -> bool:
            return not h.rt.link.connected

        await wait_until_async(down, 10, "fallback")  # maintenance notices within its period
        html = (await h.client.get("/")).text
        assert '<div id="banner-down" >' in html and "Redis Connection Error" in html
        assert "<title>Godel — Redis Connection Error</title>" in html
