"""The events ledger in SQL: every query on the events table, dead letters included.

Every function is synchronous and takes a Connection inside a transaction that the caller
owns (`await db.write(ledger.fn, ...)`), so several steps can share one commit.

An event is *claimable* when it is queued or retrying, or when its ledger claim has expired.
Claims (`claimed_by`, `claimed_until`) are how several workers and API instances share the
ledger: entries are claimed, not copied. Every claim is one UPDATE of the rows a
`SELECT ... FOR UPDATE SKIP LOCKED` picked (see `_claim`), so two claimers never take the
same row and neither waits for the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    and_,
    any_,
    cast,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.dml import ReturningUpdate

from godel.event import CLAIMABLE, UNFINISHED, Event, Status
from godel.store import counts
from godel.store.schema import NOT_PROCESSED, UNDISPATCHED, events, row_dict

# events.lane: which lane's claim the last attempt came through.
REDIS_LANE = "redis"
LEDGER_LANE = "ledger"


def _claimable(now: float) -> ColumnElement[bool]:
    return or_(
        events.c.status.in_(CLAIMABLE),
        and_(events.c.status == Status.PROCESSING, events.c.claimed_until < now),
    )


def _row_event(row: Any) -> Event:
    return Event(
        id=row.id,
        type=row.type,
        payload_json=row.payload,
        agent_id=row.agent_id,
        attempts=row.attempts,
        created_at=row.created_at,
        seq=row.seq,
    )


def _claim(
    conn: Connection, where: ColumnElement[bool], limit: int, values: dict[str, Any], *cols: Any
) -> list[Any]:
    """Update the oldest `limit` rows matching `where` that nobody else holds; return `cols`
    of the rows taken, oldest first.

    The pick is evaluated once. As `UPDATE ... WHERE seq IN (SELECT ... LIMIT n FOR UPDATE
    SKIP LOCKED)`, PostgreSQL may run the subquery again while updating; the rows this very
    statement already changed are then skipped, and the next ones are taken too: more than
    `limit` rows (caught by tests/unit/store/test_ledger.py). On PostgreSQL the pick is an
    array built by an uncorrelated subquery (an InitPlan: run once), matched through the
    primary key. A CTE joined to `events` was once too, but its planner estimate made
    PostgreSQL hash the whole table for every claim: a claim cost O(ledger size) (40 ms
    for 2,000 rows of a 100,000-row ledger; 20 ms this way). SQLite runs the CTE once and
    looks each row up by key."""
    stmt = claim_statement(conn.dialect.name, where, limit, values, *cols)
    return sorted(conn.execute(stmt).all(), key=lambda r: r.seq)


def claim_statement(
    dialect: str, where: ColumnElement[bool], limit: int, values: dict[str, Any], *cols: Any
) -> ReturningUpdate[Any]:
    """`_claim`'s statement for a dialect ("sqlite" or "postgresql")."""
    picked = (
        select(events.c.seq)
        .where(where)
        .order_by(events.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    taken: ColumnElement[bool]
    if dialect == "postgresql":
        seqs = select(func.array_agg(picked.subquery().c.seq)).scalar_subquery()
        # The cast makes `ANY` take one array value, not the rows of a subquery.
        taken = events.c.seq == any_(cast(seqs, ARRAY(BigInteger)))
    else:
        cte = picked.cte("picked")
        taken = events.c.seq == cte.c.seq
    return update(events).where(taken).values(**values).returning(*(cols or events.c))


# -- ingest (the insert itself: store.inserts) ------------------------------------------


def mark_undispatched(conn: Connection, ids: Iterable[str]) -> None:
    """The push to Redis failed after commit: leave these to the replay."""
    conn.execute(
        update(events)
        .where(events.c.id.in_(list(ids)), events.c.status.in_(UNFINISHED))
        .values(dispatched=False)
    )


# -- workers ------------------------------------------------------------------------------


def fetch_claimable(conn: Connection, ids: Sequence[str], now: float) -> list[Event]:
    """Events named by a Redis claim that still need processing (the rest are duplicates)."""
    rows = conn.execute(select(events).where(events.c.id.in_(list(ids)), _claimable(now))).all()
    return [_row_event(row) for row in rows]


def claim_from_ledger(
    conn: Connection, worker: str, limit: int, now: float, lease_s: float
) -> list[Event]:
    """Fallback path: claim the oldest claimable events straight from the ledger."""
    due = and_(
        NOT_PROCESSED,
        or_(
            and_(events.c.status.in_(CLAIMABLE), events.c.available_at <= now),
            and_(events.c.status == Status.PROCESSING, events.c.claimed_until < now),
        ),
    )
    values = {
        "status": Status.PROCESSING,
        "claimed_by": worker,
        "claimed_until": now + lease_s,
        "updated_at": now,
    }
    return [_row_event(row) for row in _claim(conn, due, limit, values)]


def mark_processed(
    conn: Connection,
    ids: Sequence[str],
    now: float,
    claimed_by: str | None,
    owner: str | None = None,
) -> set[str]:
    """Mark events processed, once: returns the ids this call won.

    `claimed_by` set means the events were claimed from the ledger by that worker; None means
    they came from Redis and must still be claimable (not processed, not held by a live claim).
    The rows won are counted on `owner`'s counter row (`godel.store.counts`; default: the
    claiming worker, else this process), in this transaction.
    """
    if not ids:
        return set()
    cond = (
        and_(events.c.status == Status.PROCESSING, events.c.claimed_by == claimed_by)
        if claimed_by is not None
        else _claimable(now)
    )
    stmt = (
        update(events)
        .where(events.c.id.in_(list(ids)), cond)
        .values(
            status=Status.PROCESSED,
            dispatched=True,
            lane=LEDGER_LANE if claimed_by is not None else REDIS_LANE,
            processed_at=now,
            updated_at=now,
            claimed_by=None,
            claimed_until=None,
        )
        .returning(events.c.id, events.c.attempts)
    )
    won = conn.execute(stmt).all()
    owner = owner or claimed_by or counts.process_owner()
    counts.add_processed(conn, owner, len(won), sum(int(r[1]) for r in won), now)
    return {str(r[0]) for r in won}


@dataclass(slots=True)
class Failure:
    """A failed attempt: `dead` when attempts are exhausted."""

    event: Event
    error: str
    attempts: int
    dead: bool
    available_at: float
    traceback: str | None = None


def record_failures(
    conn: Connection, failures: Sequence[Failure], now: float, via_redis: bool
) -> None:
    """Record retries and dead letters. Via the ledger path they stay undispatched, so the
    replay puts them in the delayed set or the dead list once Redis is back."""
    for f in failures:
        conn.execute(
            update(events)
            .where(events.c.id == f.event.id, events.c.status != Status.PROCESSED)
            .values(
                status=Status.DEAD if f.dead else Status.RETRYING,
                attempts=f.attempts,
                last_error=f.error[:4000],
                last_traceback=f.traceback,
                available_at=f.available_at,
                updated_at=now,
                claimed_by=None,
                claimed_until=None,
                dispatched=via_redis,
                lane=REDIS_LANE if via_redis else LEDGER_LANE,
            )
        )


# -- replay and reconcile -----------------------------------------------------------------


@dataclass(slots=True)
class Dispatch:
    """One ledger event on its way into Redis (replay or reconcile)."""

    seq: int
    id: str
    type: str
    status: str
    available_at: float


_DISPATCH_COLUMNS = (events.c.seq, events.c.id, events.c.type, events.c.status)


def _dispatches(rows: Iterable[Any]) -> list[Dispatch]:
    return [Dispatch(r.seq, r.id, r.type, r.status, r.available_at) for r in rows]


def claim_undispatched(conn: Connection, limit: int, now: float) -> list[Dispatch]:
    """Claim the next replay batch, in ledger order; the caller pushes it to Redis."""
    stmt = undispatched_claim(conn.dialect.name, limit, now)
    return _dispatches(sorted(conn.execute(stmt).all(), key=lambda r: r.seq))


def undispatched_claim(dialect: str, limit: int, now: float) -> ReturningUpdate[Any]:
    want = and_(
        UNDISPATCHED,
        or_(events.c.status.in_((*CLAIMABLE, Status.DEAD)), _claimable(now)),
    )
    values = {
        "dispatched": True,
        "claimed_by": None,
        "claimed_until": None,
        "updated_at": now,
        "status": func.coalesce(func.nullif(events.c.status, Status.PROCESSING), Status.QUEUED),
    }
    return claim_statement(dialect, want, limit, values, *_DISPATCH_COLUMNS, events.c.available_at)


def claim_stale(conn: Connection, limit: int, now: float, cutoff: float) -> list[Dispatch]:
    """Reconcile candidates: pushed, still unprocessed, untouched since `cutoff`. Touching
    them is the claim, so two instances do not check the same events at once."""
    stale = and_(
        NOT_PROCESSED,
        events.c.dispatched == true(),
        events.c.updated_at < cutoff,
        _claimable(now),
    )
    rows = _claim(
        conn, stale, limit, {"updated_at": now}, *_DISPATCH_COLUMNS, events.c.available_at
    )
    return _dispatches(rows)


def count_undispatched(conn: Connection) -> int:
    stmt = select(func.count()).select_from(events).where(UNDISPATCHED, NOT_PROCESSED)
    return int(conn.execute(stmt).scalar_one())


# -- dead letters -------------------------------------------------------------------------


def _dead(event_type: str | None, event_id: str | None = None) -> ColumnElement[bool]:
    cond = and_(NOT_PROCESSED, events.c.status == Status.DEAD)  # ix_events_open serves it
    if event_type:
        cond = and_(cond, events.c.type == event_type)
    return and_(cond, events.c.id == event_id) if event_id else cond


def count_dead(conn: Connection) -> dict[str, int]:
    stmt = select(events.c.type, func.count()).where(_dead(None)).group_by(events.c.type)
    return {str(t): int(n) for t, n in conn.execute(stmt).all()}


def take_dead(
    conn: Connection,
    event_type: str | None,
    after: int,
    limit: int,
    values: dict[str, Any],
    event_id: str | None = None,
) -> tuple[int, list[tuple[str, str]]]:
    """Set `values` on the oldest `limit` dead rows past seq `after` (of one type, or the one
    `event_id`): (last seq, [(id, type)]).

    The seq cursor keeps one call finite: a replayed event that dies again at once (the bug
    is not fixed yet) is behind the cursor and waits for the next call."""
    want = and_(_dead(event_type, event_id), events.c.seq > after)
    rows = _claim(conn, want, limit, values, events.c.seq, events.c.id, events.c.type)
    return (rows[-1].seq if rows else after), [(r.id, r.type) for r in rows]


def dead_ids(
    conn: Connection, event_type: str, after: int, limit: int, before: float
) -> list[tuple[int, str]]:
    """(seq, id) of dead rows of one type past `after`, last touched before `before`."""
    want = and_(_dead(event_type), events.c.seq > after, events.c.updated_at < before)
    stmt = select(events.c.seq, events.c.id).where(want).order_by(events.c.seq).limit(limit)
    return [(int(seq), str(i)) for seq, i in conn.execute(stmt).all()]


def statuses(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    stmt = select(events.c.id, events.c.status).where(events.c.id.in_(list(ids)))
    return {str(i): str(s) for i, s in conn.execute(stmt).all()}


# -- reads --------------------------------------------------------------------------------


def count_by_status(conn: Connection) -> dict[str, int]:
    stmt = select(events.c.status, func.count()).group_by(events.c.status)
    return {status: int(n) for status, n in conn.execute(stmt).all()}


def totals_by_status(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per status: (events, sum of their attempts). The attempts of every row add up to the
    failed attempts ever recorded (a replayed dead letter starts again from 0)."""
    stmt = select(events.c.status, func.count(), func.coalesce(func.sum(events.c.attempts), 0))
    rows = conn.execute(stmt.group_by(events.c.status)).all()
    return {str(status): (int(n), int(tried)) for status, n, tried in rows}


def ledger_claims(conn: Connection) -> dict[str, int]:
    """Events each worker holds by a ledger claim (fallback), by worker name."""
    stmt = (
        select(events.c.claimed_by, func.count())
        .where(NOT_PROCESSED, events.c.status == Status.PROCESSING)
        .where(events.c.claimed_by.is_not(None))
        .group_by(events.c.claimed_by)
    )
    return {str(worker): int(n) for worker, n in conn.execute(stmt).all()}


def get_event(conn: Connection, event_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(events).where(events.c.id == event_id)).first()
    return row_dict(row) if row else None


@dataclass(slots=True)
class EventQuery:
    """Filters for listing the ledger; `after` is the cursor (a ledger sequence number)."""

    type: str | None = None
    agent_id: str | None = None
    status: str | None = None
    since: float | None = None
    after: int | None = None
    limit: int = 100


def list_events(conn: Connection, query: EventQuery) -> list[dict[str, Any]]:
    stmt: Select[Any] = select(events)
    if query.type:
        stmt = stmt.where(events.c.type == query.type)
    if query.agent_id:
        stmt = stmt.where(events.c.agent_id == query.agent_id)
    if query.status:
        stmt = stmt.where(events.c.status == query.status)
        if query.status != Status.PROCESSED:
            stmt = stmt.where(NOT_PROCESSED)  # the term of ix_events_open: its index serves
    if query.since is not None:
        stmt = stmt.where(events.c.created_at >= query.since)
    if query.after is not None:
        stmt = stmt.where(events.c.seq > query.after)
    stmt = stmt.order_by(events.c.seq).limit(query.limit)
    return [row_dict(row) for row in conn.execute(stmt).all()]


def latest_events(conn: Connection, limit: int, status: str | None = None) -> list[dict[str, Any]]:
    stmt = select(events).order_by(events.c.seq.desc()).limit(limit)
    if status:
        stmt = stmt.where(events.c.status == status)
    return [row_dict(row) for row in conn.execute(stmt).all()]
