"""godel.store.ledger against a real SQLite file and a real PostgreSQL database: every query
the pipeline relies on, with the time (`now`) passed in, so no test sleeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import update

from godel.event import Event, Status
from godel.intake import parse_event
from godel.store import inserts, ledger
from godel.store.database import Database
from godel.store.ledger import EventQuery, Failure
from godel.store.schema import events

LEASE_S = 10.0


@pytest.fixture
def db(ledger_db: Database) -> Database:
    return ledger_db


def event(event_id: str | None = None, type_: str = "t.x", agent: str | None = None) -> Event:
    """An event as a client sends it: `event_id` is its idempotency key (else a new id)."""
    raw = {"type": type_, "id": event_id, "agent_id": agent}
    return parse_event({k: v for k, v in raw.items() if v is not None}, 1024)


async def insert(db: Database, evs: Sequence[Event], dispatched: bool = True) -> set[str]:
    new: set[str] = await inserts.commit_events(db, [(e, dispatched) for e in evs])
    return new


async def row(db: Database, event_id: str) -> dict[str, Any]:
    found = await db.read(ledger.get_event, event_id)
    assert found is not None, event_id
    return found


async def set_values(db: Database, ids: Sequence[str], **values: Any) -> None:
    def run(conn: Any) -> None:
        conn.execute(update(events).where(events.c.id.in_(list(ids))).values(**values))

    await db.write(run)


# -- worker claims --------------------------------------------------------------------------


async def test_claim_from_ledger_takes_the_oldest_and_holds_them(db: Database) -> None:
    evs = [event(f"c-{i}") for i in range(5)]
    await insert(db, evs)
    now = time.time()
    got = await db.write(ledger.claim_from_ledger, "w1", 3, now, LEASE_S)
    assert [e.id for e in got] == ["c-0", "c-1", "c-2"]
    held = await row(db, "c-0")
    assert held["status"] == Status.PROCESSING and held["claimed_by"] == "w1"
    assert held["claimed_until"] == now + LEASE_S
    rest = await db.write(ledger.claim_from_ledger, "w2", 10, now, LEASE_S)
    assert [e.id for e in rest] == ["c-3", "c-4"]
    assert await db.write(ledger.claim_from_ledger, "w3", 10, now, LEASE_S) == []


# Each claim picks its rows with `SELECT ... ORDER BY seq LIMIT n FOR UPDATE SKIP LOCKED`.
CLAIMS: dict[str, Callable[[Any, float], Sequence[Any]]] = {
    "claim_from_ledger": lambda conn, now: ledger.claim_from_ledger(conn, "w", 3, now, LEASE_S),
    "claim_undispatched": lambda conn, now: ledger.claim_undispatched(conn, 3, now),
    "claim_stale": lambda conn, now: ledger.claim_stale(conn, 3, now, now - 50),
    "take_dead": lambda conn, now: ledger.take_dead(conn, None, 0, 3, {"status": "queued"})[1],
}


@pytest.mark.parametrize("claim", list(CLAIMS))
async def test_a_claim_takes_at_most_its_limit(db: Database, claim: str) -> None:
    ids = [f"b-{i}" for i in range(10)]
    await insert(db, [event(i) for i in ids], dispatched=claim != "claim_undispatched")
    now = time.time()
    if claim == "claim_stale":
        await set_values(db, ids, updated_at=now - 100)
    if claim == "take_dead":
        await set_values(db, ids, status=Status.DEAD)
    assert len(await db.write(CLAIMS[claim], now)) == 3


async def test_claim_waits_for_available_at(db: Database) -> None:
    await insert(db, [event("later")])
    now = time.time()
    await set_values(db, ["later"], status=Status.RETRYING, available_at=now + 5)
    assert await db.write(ledger.claim_from_ledger, "w", 10, now, LEASE_S) == []
    got = await db.write(ledger.claim_from_ledger, "w", 10, now + 6, LEASE_S)
    assert [e.id for e in got] == ["later"]


async def test_an_open_claim_is_skipped_not_waited_for(db: Database) -> None:
    """Two claimers at once never get the same row. On PostgreSQL the second does not wait
    for the first's transaction (SKIP LOCKED); SQLite serialises writers instead."""
    await insert(db, [event(f"s-{i}") for i in range(10)])
    now = time.time()
    results: dict[str, list[str]] = {}
    second_done = threading.Event()

    def second() -> None:
        with db.engine.begin() as conn:
            results["w2"] = [e.id for e in ledger.claim_from_ledger(conn, "w2", 5, now, LEASE_S)]
        second_done.set()

    with db.engine.begin() as conn:
        results["w1"] = [e.id for e in ledger.claim_from_ledger(conn, "w1", 5, now, LEASE_S)]
        thread = threading.Thread(target=second)
        thread.start()
        if not db.is_sqlite:  # w1's transaction is still open: w2 must not wait for it
            assert second_done.wait(10), "the second claimer waited for the first's locks"
    thread.join(30)
    assert not thread.is_alive()
    assert len(results["w1"]) == len(results["w2"]) == 5
    assert set(results["w1"]).isdisjoint(results["w2"])


async def test_concurrent_claimers_never_take_a_row_twice(db: Database) -> None:
    ids = [f"m-{i:03d}" for i in range(120)]
    await insert(db, [event(i) for i in ids])
    now = time.time()
    taken: dict[str, list[str]] = {f"w{n}": [] for n in range(4)}
    start = threading.Barrier(len(taken))

    def claimer(name: str) -> None:
        own = Database(db.url)  # engines of its own, as another process has
        try:
            start.wait(10)
            while got := own_claim(own, name):
                taken[name] += got
        finally:
            own.close()

    def own_claim(own: Database, name: str) -> list[str]:
        with own.engine.begin() as conn:
            return [e.id for e in ledger.claim_from_ledger(conn, name, 7, now, LEASE_S)]

    threads = [threading.Thread(target=claimer, args=(name,)) for name in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(i for got in taken.values() for i in got) == ids  # each row once, none left


async def test_an_expired_claim_is_reclaimable_and_the_old_holder_loses(db: Database) -> None:
    await insert(db, [event("e-1")])
    now = time.time()
    assert len(await db.write(ledger.claim_from_ledger, "w1", 1, now, LEASE_S)) == 1
    assert await db.write(ledger.claim_from_ledger, "w2", 1, now + LEASE_S / 2, LEASE_S) == []
    later = now + LEASE_S + 1
    again = await db.write(ledger.claim_from_ledger, "w2", 1, later, LEASE_S)
    assert [e.id for e in again] == ["e-1"]
    assert await db.write(ledger.mark_processed, ["e-1"], later, "w1") == set()
    assert await db.write(ledger.mark_processed, ["e-1"], later, "w2") == {"e-1"}


# -- marking processed ------------------------------------------------------------------------


async def test_mark_processed_wins_once(db: Database) -> None:
    await insert(db, [event("p-1"), event("p-2")])
    now = time.time()
    assert await db.write(ledger.mark_processed, ["p-1", "p-2"], now, None) == {"p-1", "p-2"}
    assert await db.write(ledger.mark_processed, ["p-1", "p-2"], now, None) == set()
    done = await row(db, "p-1")
    assert done["status"] == Status.PROCESSED and done["processed_at"] == now
    assert done["dispatched"] is True and done["claimed_by"] is None
    assert await db.write(ledger.mark_processed, [], now, None) == set()


async def test_a_redis_copy_cannot_mark_an_event_a_live_ledger_claim_holds(db: Database) -> None:
    await insert(db, [event("h-1")])
    now = time.time()
    await db.write(ledger.claim_from_ledger, "w1", 1, now, LEASE_S)
    assert await db.read(ledger.fetch_claimable, ["h-1"], now) == []
    assert await db.write(ledger.mark_processed, ["h-1"], now, None) == set()
    assert await db.write(ledger.mark_processed, ["h-1"], now, "w1") == {"h-1"}
    assert await db.read(ledger.fetch_claimable, ["h-1"], now) == []


async def test_record_failures_sets_retrying_dead_and_the_dispatched_flag(db: Database) -> None:
    await insert(db, [event("f-retry"), event("f-dead"), event("f-done")])
    now = time.time()
    await db.write(ledger.claim_from_ledger, "w", 3, now, LEASE_S)
    await db.write(ledger.mark_processed, ["f-done"], now, "w")
    evs = {e: Event(id=e, type="t.x", payload_json="{}") for e in ("f-retry", "f-dead", "f-done")}
    failures = [
        Failure(evs["f-retry"], "RuntimeError: once", 1, dead=False, available_at=now + 3),
        Failure(evs["f-dead"], "RuntimeError: " + "x" * 5000, 5, dead=True, available_at=now),
        Failure(evs["f-done"], "late", 2, dead=False, available_at=now),
    ]
    await db.write(ledger.record_failures, failures, now, False)  # the ledger path
    retry, dead, done = [await row(db, i) for i in ("f-retry", "f-dead", "f-done")]
    assert (retry["status"], retry["attempts"], retry["dispatched"]) == (Status.RETRYING, 1, False)
    assert retry["available_at"] == now + 3 and retry["claimed_by"] is None
    assert (dead["status"], dead["attempts"], dead["dispatched"]) == (Status.DEAD, 5, False)
    assert len(dead["last_error"]) == 4000
    assert done["status"] == Status.PROCESSED and done["last_error"] is None  # untouched
    await db.write(ledger.record_failures, failures[:1], now, True)  # the Redis path
    assert (await row(db, "f-retry"))["dispatched"] is True


# -- replay and reconcile ---------------------------------------------------------------------


async def test_claim_undispatched_in_ledger_order_and_marks_them(db: Database) -> None:
    await insert(db, [event(f"u-{i}") for i in range(6)], dispatched=False)
    await insert(db, [event("pushed")])
    now = time.time()
    await db.write(ledger.mark_processed, ["u-1"], now, None)  # done: nothing to replay
    await set_values(db, ["u-2"], status=Status.DEAD)
    held = {"status": Status.PROCESSING, "claimed_by": "w"}
    await set_values(db, ["u-3"], **held, claimed_until=now - 1)  # its holder is gone
    await set_values(db, ["u-4"], **held, claimed_until=now + 9)
    assert await db.read(ledger.count_undispatched) == 5

    first = await db.write(ledger.claim_undispatched, 2, now)
    assert [(d.id, d.status) for d in first] == [("u-0", Status.QUEUED), ("u-2", Status.DEAD)]
    second = await db.write(ledger.claim_undispatched, 10, now)
    assert [(d.id, d.status) for d in second] == [("u-3", Status.QUEUED), ("u-5", Status.QUEUED)]
    assert await db.write(ledger.claim_undispatched, 10, now) == []
    assert [d.seq for d in first + second] == sorted(d.seq for d in first + second)
    expired = await row(db, "u-3")  # queued again, the dead holder's claim cleared
    assert (expired["status"], expired["claimed_by"], expired["dispatched"]) == (
        Status.QUEUED,
        None,
        True,
    )
    assert await db.read(ledger.count_undispatched) == 1  # u-4, held by a live claim


async def test_claim_stale_touches_what_it_takes(db: Database) -> None:
    await insert(db, [event("old-1"), event("old-2"), event("fresh")])
    await insert(db, [event("undispatched")], dispatched=False)
    now = time.time()
    await set_values(db, ["old-1", "old-2", "undispatched"], updated_at=now - 100)
    await db.write(ledger.mark_processed, ["old-2"], now - 100, None)
    await set_values(db, ["old-2"], updated_at=now - 100)
    stale = await db.write(ledger.claim_stale, 10, now, now - 50)
    assert [d.id for d in stale] == ["old-1"]
    assert (await row(db, "old-1"))["updated_at"] == now
    assert await db.write(ledger.claim_stale, 10, now, now - 50) == []


# -- dead letters -------------------------------------------------------------------------------


async def test_take_dead_walks_a_cursor_by_type(db: Database) -> None:
    await insert(db, [event(f"d-{i}", type_="t.a" if i % 2 else "t.b") for i in range(6)])
    await set_values(db, [f"d-{i}" for i in range(6)], status=Status.DEAD)
    assert await db.read(ledger.count_dead) == {"t.a": 3, "t.b": 3}
    values = {"status": Status.QUEUED, "attempts": 0}

    last, taken = await db.write(ledger.take_dead, "t.a", 0, 2, values)
    assert taken == [("d-1", "t.a"), ("d-3", "t.a")]
    assert (await row(db, "d-3"))["seq"] == last
    # d-1 dies again at once: it is behind the cursor, so this call does not take it again.
    await set_values(db, ["d-1"], status=Status.DEAD)
    last, taken = await db.write(ledger.take_dead, "t.a", last, 2, values)
    assert taken == [("d-5", "t.a")]
    assert await db.write(ledger.take_dead, "t.a", last, 2, values) == (last, [])
    _, every = await db.write(ledger.take_dead, None, 0, 10, values)
    assert every == [("d-0", "t.b"), ("d-1", "t.a"), ("d-2", "t.b"), ("d-4", "t.b")]
    assert await db.read(ledger.count_dead) == {}
    assert (await row(db, "d-0"))["status"] == Status.QUEUED


# -- reads --------------------------------------------------------------------------------------


async def test_list_events_filters_and_cursor(db: Database) -> None:
    await insert(db, [event(f"l-{i}", type_="t.a", agent="p") for i in range(4)])
    await insert(db, [event("l-b", type_="t.b")])
    await db.write(ledger.mark_processed, ["l-0"], time.time(), None)

    page = await db.read(ledger.list_events, EventQuery(type="t.a", limit=2))
    assert [e["id"] for e in page] == ["l-0", "l-1"]
    rest = await db.read(ledger.list_events, EventQuery(type="t.a", after=page[-1]["seq"]))
    assert [e["id"] for e in rest] == ["l-2", "l-3"]
    by_agent = await db.read(ledger.list_events, EventQuery(agent_id="p"))
    assert len(by_agent) == 4
    queued = await db.read(ledger.list_events, EventQuery(status=Status.QUEUED))
    assert [e["id"] for e in queued] == ["l-1", "l-2", "l-3", "l-b"]
    future = await db.read(ledger.list_events, EventQuery(since=time.time() + 60))
    assert future == []
    assert await db.read(ledger.count_by_status) == {Status.QUEUED: 4, Status.PROCESSED: 1}
