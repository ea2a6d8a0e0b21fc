"""pipeline.worker: one claim-handle-mark round at a time (`run_once`), from Redis while the
fast lane is open and from the ledger while it is closed, on real SQLite and PostgreSQL
and a real redis-server. Each test has its own Registry."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import REGISTRY

from godel.event import Event, Status
from godel.handlers import Registry
from godel.intake import parse_event
from godel.pipeline.worker import Worker
from godel.runtime import Runtime
from godel.store import ledger
from godel.store.agents import apply_agent_event, get_agent
from tests.harness import make_settings, started
from tests.support.ledger import assert_exactly_once
from tests.support.wait import wait_until_async

NO_REDIS = "redis://127.0.0.1:1/0"  # never dialled: the fast lane stays closed
PATHS = ["redis", "ledger"]  # where the worker claims from: the fast lane open or closed


class Recorder:
    """A plain handler that counts its calls per event id and raises while `failing`."""

    def __init__(self, failing: bool = False) -> None:
        self.calls: Counter[str] = Counter()
        self.failing = failing

    async def __call__(self, event: Event) -> None:
        self.calls[event.id] += 1
        if self.failing:
            raise RuntimeError(f"boom {event.id}")


def registry(*handlers: tuple[str, Callable[..., Any], bool]) -> Registry:
    reg = Registry()
    for pattern, fn, transactional in handlers:
        reg.add(pattern, fn, transactional)
    return reg


@asynccontextmanager
async def runtime(
    path: str, ledger_url: str, redis_url: str, **overrides: Any
) -> AsyncIterator[Runtime]:
    url = redis_url if path == "redis" else NO_REDIS
    async with started(
        make_settings(ledger_url, url, **overrides), fast_lane=path == "redis"
    ) as rt:
        yield rt


def worker(rt: Runtime, reg: Registry, name: str = "w1") -> Worker:
    return Worker(name, rt.settings, db=rt.db, lane=rt.lane, registry=reg)


async def submit(rt: Runtime, bodies: list[dict[str, Any]]) -> list[str]:
    ack = await rt.ingest.submit([parse_event(b, 1024) for b in bodies])
    await rt.ingest.close()  # pushed, if the fast lane is open
    return ack.ids


async def row(rt: Runtime, event_id: str) -> dict[str, Any]:
    found = await rt.db.read(ledger.get_event, event_id)
    assert found is not None
    return found


def processed_total(outcome: str) -> float:
    return REGISTRY.get_sample_value("godel_events_processed_total", {"outcome": outcome}) or 0.0


@pytest.mark.parametrize("path", PATHS)
async def test_run_once_handles_a_batch_from_where_events_are(
    path: str, ledger_url: str, redis_url: str
) -> None:
    seen = Recorder()
    async with runtime(path, ledger_url, redis_url) as rt:
        ids = await submit(rt, [{"type": "t.x", "payload": {"n": i}} for i in range(5)])
        w = worker(rt, registry(("t.*", seen, False)))
        assert await w.run_once() == 5
        assert seen.calls == Counter(ids)
        assert await rt.db.read(ledger.count_by_status) == {Status.PROCESSED: 5}
        assert await rt.db.read(ledger.count_undispatched) == 0
        if path == "redis":  # claimed from the lane and settled there
            depths = await rt.lane.depths()
            assert (depths.pending, depths.processing) == (0, 0)
        assert await w.run_once() == 0
        assert w.processed == 5


@pytest.mark.parametrize("path", PATHS)
async def test_a_failing_handler_is_retried_then_dead(
    path: str, ledger_url: str, redis_url: str
) -> None:
    fails = Recorder(failing=True)
    overrides = {"retry_max_attempts": 3, "retry_backoff_base_ms": 1, "retry_backoff_max_ms": 1}
    async with runtime(path, ledger_url, redis_url, **overrides) as rt:
        [eid] = await submit(rt, [{"type": "t.fail"}])
        w = worker(rt, registry(("t.*", fails, False)))
        assert await w.run_once() == 1
        first = await row(rt, eid)
        assert (first["status"], first["attempts"]) == (Status.RETRYING, 1)
        assert first["last_error"] == f"RuntimeError: boom {eid}"

        async def round_() -> bool:
            if path == "redis":
                await rt.lane.promote_due()  # due retries back to pending: the upkeep's job
            await w.run_once()
            return (await row(rt, eid))["status"] == Status.DEAD

        await wait_until_async(round_, 10, "the event to die", interval_s=0.005)
        dead = await row(rt, eid)
        assert fails.calls[eid] == dead["attempts"] == 3
        # Via the ledger it is not in Redis yet: undispatched, so the replay files it there.
        assert dead["dispatched"] is (path == "redis")
        if path == "redis":
            assert await rt.lane.dead_head("t.fail") == [eid]


@pytest.mark.parametrize("path", PATHS)
async def test_a_transactional_handler_that_raises_is_settled_one_by_one(
    path: str, ledger_url: str, redis_url: str
) -> None:
    """One event's transactional handler fails the batch's transaction: the others are
    committed one by one (each applied once), the failing one is retried."""

    def apply_or_fail(conn: Any, event: Event) -> None:
        apply_agent_event(conn, event)
        if event.payload.get("bad"):
            raise ValueError("refused")

    async with runtime(path, ledger_url, redis_url) as rt:
        bodies = [
            {"type": "agent.ping", "agent_id": "a", "payload": {"bad": i == 2}} for i in range(5)
        ]
        ids = await submit(rt, bodies)
        w = worker(rt, registry(("agent.*", apply_or_fail, True)))
        assert await w.run_once() == 5
        counts = await rt.db.read(ledger.count_by_status)
        assert counts == {Status.PROCESSED: 4, Status.RETRYING: 1}
        bad = await row(rt, ids[2])
        assert (bad["status"], bad["attempts"], bad["last_error"]) == (
            Status.RETRYING,
            1,
            "ValueError: refused",
        )
        agent = await rt.db.read(get_agent, "a")
        assert agent is not None and agent["events_applied"] == 4  # the failure rolled back


async def test_two_workers_racing_for_the_ledger_handle_each_event_once(ledger_url: str) -> None:
    """Fallback: two processes' workers claim from one ledger; a claim is exclusive, so
    every event is handled (not only applied) exactly once."""
    seen = Recorder()
    reg = registry(("agent.*", seen, False), ("agent.*", apply_agent_event, True))
    settings = make_settings(ledger_url, NO_REDIS, worker_batch_size=7)
    async with started(settings, fast_lane=False) as a, started(settings, fast_lane=False) as b:
        bodies = [{"type": "agent.ping", "agent_id": f"a{i}"} for i in range(120)]
        ids = await submit(a, bodies)
        wa, wb = worker(a, reg, "wa"), worker(b, reg, "wb")
        while sum(await asyncio.gather(wa.run_once(), wb.run_once())):
            pass
        assert seen.calls == Counter(ids)
        assert wa.processed + wb.processed == len(ids)
    assert_exactly_once(ledger_url, ids)


async def test_two_workers_racing_for_duplicate_redis_copies_apply_each_once(
    ledger_url: str, redis_url: str
) -> None:
    """Connected: Redis may hold an id twice (a reconcile racing a push). Both copies are
    claimed, possibly at once by two workers; the ledger lets one of them win."""
    reg = registry(("agent.*", apply_agent_event, True))
    settings = make_settings(ledger_url, redis_url, worker_batch_size=7)
    async with started(settings) as rt:
        ids = await submit(rt, [{"type": "agent.ping", "agent_id": f"a{i}"} for i in range(60)])
        await rt.lane.push(ids)  # every id a second time
        won, duplicates = processed_total("processed"), processed_total("duplicate")
        wa, wb = worker(rt, reg, "wa"), worker(rt, reg, "wb")
        while sum(await asyncio.gather(wa.run_once(), wb.run_once())):
            pass
        assert processed_total("processed") - won == len(ids)
        assert processed_total("duplicate") - duplicates == len(ids)
    assert_exactly_once(ledger_url, ids)


async def test_workers_applying_to_the_same_agents_at_once_do_not_deadlock(
    ledger_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two batches that touch agents x and y in opposite orders, committed at the same
    time. Their transactions must take the agents' row locks in one order: otherwise
    PostgreSQL aborts one as a deadlock, which the worker takes for an unavailable ledger
    (a warning, a second of back-off, the batch requeued)."""

    def apply_slowly(conn: Any, event: Event) -> None:
        apply_agent_event(conn, event)
        time.sleep(0.2)  # a handler doing real work: the row lock is held meanwhile

    reg = registry(("agent.*", apply_slowly, True))
    async with started(make_settings(ledger_url, redis_url, worker_batch_size=2)) as rt:
        agents = ["x", "y", "y", "x"]  # wa claims the first two, wb the last two
        ids = await submit(rt, [{"type": "agent.ping", "agent_id": a} for a in agents])
        wa, wb = worker(rt, reg, "wa"), worker(rt, reg, "wb")
        assert await asyncio.gather(wa.run_once(), wb.run_once()) == [2, 2]
        assert "ledger unavailable" not in caplog.text
    assert_exactly_once(ledger_url, ids)


@pytest.mark.parametrize("path", PATHS)
async def test_the_lane_that_took_an_event_is_recorded(
    path: str, ledger_url: str, redis_url: str
) -> None:
    """`dispatched` says only whether the id was pushed (processing sets it); `lane` says
    which lane's claim the last attempt came through."""
    overrides = {"retry_max_attempts": 3, "retry_backoff_base_ms": 60_000}
    overrides["retry_backoff_max_ms"] = 60_000
    async with runtime(path, ledger_url, redis_url, **overrides) as rt:
        done, failed = await submit(rt, [{"type": "t.ok"}, {"type": "t.fail"}])
        assert (await row(rt, done))["lane"] is None  # not taken yet
        w = worker(rt, registry(("t.ok", Recorder(), False), ("t.fail", Recorder(True), False)))
        assert await w.run_once() == 2
        assert (await row(rt, done))["lane"] == path
        assert (await row(rt, failed))["lane"] == path
        assert (await row(rt, failed))["status"] == Status.RETRYING
