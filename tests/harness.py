"""In-process Godel for tests: the real app and Runtime against real Redis and SQL servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from godel.api import create_app
from godel.api.deps import api_state
from godel.config import Settings
from godel.handlers import Registry
from godel.runtime import Runtime
from godel.store.database import Database
from godel.store.migrate import upgrade
from godel.store.schema import agents, events

TOKEN = "test-admin-token"

FAST = {
    "admin_token": TOKEN,
    "redis_socket_timeout_s": 0.3,
    "redis_connect_timeout_s": 0.3,
    "redis_block_timeout_s": 0.2,
    "probe_backoff_min_s": 0.05,
    "probe_backoff_max_s": 0.3,
    "reconcile_interval_s": 0.3,
    "reconcile_deadline_s": 1.5,
    "metrics_interval_s": 0.3,
    "redis_info_interval_s": 0.5,
    "worker_lease_s": 2.0,
    "retry_backoff_base_ms": 20,
    "retry_backoff_max_ms": 100,
    "embedded_redis": False,
}


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    return Settings(**{**FAST, "database_url": database_url, "redis_url": redis_url, **overrides})


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    rt: Runtime

    async def post(self, body: Any, **kw: Any) -> httpx.Response:
        return await self.client.post("/api/v1/events", json=body, **kw)

    async def admin(self, path: str) -> httpx.Response:
        return await self.client.post(path, headers={"Authorization": f"Bearer {TOKEN}"})


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
        async with httpx.AsyncClient(transport=transport, base_url="http://godel") as client:
            yield Harness(app, client, api_state(app).rt)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Poll until `check()` is true; fail with `what` after `timeout_s` (liveness, not speed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def ledger_counts(rt: Runtime) -> dict[str, int]:
    with rt.db.read_engine.connect() as conn:
        rows = conn.execute(select(events.c.status, func.count()).group_by(events.c.status))
        return {status: int(n) for status, n in rows}


def ledger_ids(rt: Runtime) -> list[str]:
    with rt.db.read_engine.connect() as conn:
        return [r[0] for r in conn.execute(select(events.c.id))]


def applied_total(rt: Runtime) -> int:
    """Sum of agents.events_applied: equals the number of agent events iff exactly-once."""
    with rt.db.read_engine.connect() as conn:
        return int(
            conn.execute(select(func.coalesce(func.sum(agents.c.events_applied), 0))).scalar_one()
        )


async def all_processed(rt: Runtime, n: int) -> bool:
    counts = await asyncio.to_thread(ledger_counts, rt)
    return counts.get("processed", 0) >= n


def assert_exactly_once(rt: Runtime, acked: set[str]) -> None:
    """Every acknowledged event is in the ledger once, processed, and applied once."""
    ids = ledger_ids(rt)
    assert len(ids) == len(set(ids))
    missing = acked - set(ids)
    assert not missing, f"{len(missing)} acknowledged events missing from the ledger"
    counts = ledger_counts(rt)
    assert counts == {"processed": len(ids)}, counts
    assert applied_total(rt) == len(ids), "an event was applied more or less than once"
