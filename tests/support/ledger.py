"""Reading a Godel ledger from outside, by URL: the Godel under test may be this process or
another one. The one ledger counter (Godel's own `count_by_status` query) and the one
exactly-once assertion every test, chaos test and benchmark uses."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine, func, select
from sqlalchemy.pool import NullPool

from godel.event import UNFINISHED, Status
from godel.store import ledger
from godel.store.database import normalize_url
from godel.store.schema import agents, events
from tests.support.wait import wait_until_async


@contextmanager
def reading(url: str) -> Iterator[Connection]:
    """A connection of its own (no pool left behind: the test may drop the database next)."""
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def ledger_counts(url: str) -> dict[str, int]:
    """Events per status, e.g. {"processed": 40, "dead": 1}."""
    with reading(url) as conn:
        return ledger.count_by_status(conn)


def undispatched(url: str) -> int:
    """Unprocessed events that never reached Redis: the replay's backlog."""
    with reading(url) as conn:
        return ledger.count_undispatched(conn)


def drained(url: str, n: int) -> bool:
    """At least `n` events processed and none still to do (retries included)."""
    counts = ledger_counts(url)
    return counts.get(Status.PROCESSED, 0) >= n and not any(counts.get(s) for s in UNFINISHED)


async def wait_drained(url: str, n: int, timeout_s: float = 60.0) -> None:
    await wait_until_async(
        lambda: drained(url, n),
        timeout_s,
        f"{n} events processed",
        detail=lambda: f"ledger: {ledger_counts(url)}",
    )


def _agent_events(conn: Connection) -> dict[str, int]:
    """Per agent, the ledger's `agent.*` events with that agent id (what the built-in
    transactional handler applies)."""
    stmt = (
        select(events.c.agent_id, func.count())
        .where(events.c.type.like("agent.%"), events.c.agent_id.is_not(None))
        .group_by(events.c.agent_id)
    )
    return {str(agent): int(n) for agent, n in conn.execute(stmt).all()}


def _applied(conn: Connection) -> dict[str, int]:
    stmt = select(agents.c.id, agents.c.events_applied).where(agents.c.events_applied > 0)
    return {str(agent): int(n) for agent, n in conn.execute(stmt).all()}


def assert_exactly_once(url: str, acked: Collection[str]) -> None:
    """The ledger holds exactly the acknowledged events (none lost, none it never
    acknowledged; ids are unique by the schema), every one processed, and every agent's
    `events_applied` equals its agent events: each applied once, per agent, so one event
    applied twice cannot hide behind another never applied."""
    acked = set(acked)
    with reading(url) as conn:
        ids = {str(i) for i in conn.execute(select(events.c.id)).scalars()}
        counts = ledger.count_by_status(conn)
        expected, applied = _agent_events(conn), _applied(conn)
    lost, unacked = acked - ids, ids - acked
    assert not lost and not unacked, (
        f"{len(lost)} acknowledged events missing from the ledger, "
        f"{len(unacked)} in it never acknowledged (e.g. {sorted(lost or unacked)[:3]})"
    )
    assert counts == {Status.PROCESSED: len(acked)}, counts
    wrong = {a: (applied.get(a, 0), n) for a, n in expected.items() if applied.get(a, 0) != n}
    wrong.update({a: (n, 0) for a, n in applied.items() if a not in expected})
    assert not wrong, f"agent events applied more or less than once, (applied, events): {wrong}"
