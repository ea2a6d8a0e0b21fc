"""In-process Godel for tests: the real app and Runtime against real Redis and SQL servers.

The FAST settings, the waits and the ledger checks are tests/support's (shared with the
subprocess tests and the benchmarks); this module adds the app, its lifespan and a client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from godel.api import create_app
from godel.api.deps import api_state
from godel.config import Settings
from godel.handlers import Registry
from godel.runtime import Runtime
from godel.store.database import Database
from godel.store.migrate import upgrade
from tests.support.ledger import assert_exactly_once, ledger_counts, wait_drained
from tests.support.settings import FAST, TOKEN, fast_settings
from tests.support.wait import wait_until_async

__all__ = [
    "FAST",
    "TOKEN",
    "Harness",
    "assert_exactly_once",
    "ledger_counts",
    "make_settings",
    "migrate",
    "running",
    "started",
    "wait_drained",
    "wait_until_async",
]


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    """FAST settings for an in-process Runtime against these servers."""
    return Settings(**fast_settings(database_url, redis_url, **overrides))


@dataclass
class Harness:
    """`client` sends the admin token (as an operator's tools do); `anon` sends no
    credential, for the tests of what a stranger gets."""

    app: FastAPI
    client: httpx.AsyncClient
    rt: Runtime
    anon: httpx.AsyncClient

    @property
    def ledger_url(self) -> str:
        return self.rt.db.url

    async def post(self, body: Any, **kw: Any) -> httpx.Response:
        return await self.client.post("/api/v1/events", json=body, **kw)

    async def admin(self, path: str) -> httpx.Response:
        return await self.client.post(path, headers={"Authorization": f"Bearer {TOKEN}"})

    async def counts(self) -> dict[str, int]:
        """The ledger's events per status (tests.support.ledger.ledger_counts)."""
        return await asyncio.to_thread(ledger_counts, self.ledger_url)


def migrate(url: str) -> None:
    db = Database(url)
    try:
        upgrade(db)
    finally:
        db.close()


@asynccontextmanager
async def running(
    settings: Settings, workers: int = 1, registry: Registry | None = None
) -> AsyncIterator[Harness]:
    """The FastAPI app with its lifespan, and an httpx client talking to it in-process."""
    await asyncio.to_thread(migrate, settings.effective_database_url)  # `godel db upgrade`
    app = create_app(settings, workers=workers, registry=registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        admin = {"Authorization": f"Bearer {TOKEN}"}
        base = "http://godel"
        async with (
            httpx.AsyncClient(transport=transport, base_url=base, headers=admin) as client,
            httpx.AsyncClient(transport=transport, base_url=base) as anon,
        ):
            yield Harness(app, client, api_state(app).rt, anon)


@asynccontextmanager
async def started(
    settings: Settings, *, fast_lane: bool = True, registry: Registry | None = None
) -> AsyncIterator[Runtime]:
    """A migrated Runtime with no workers and no upkeep loops (the test drives them):
    connected to Redis, or with `fast_lane=False` on the ledger alone (in fallback)."""
    rt = Runtime(settings, registry=registry)
    try:
        await rt.start(workers=0, maintenance=False, migrate=True, fast_lane=fast_lane)
        assert rt.link.connected is fast_lane, rt.link.describe()
        yield rt
    finally:
        await rt.stop()
