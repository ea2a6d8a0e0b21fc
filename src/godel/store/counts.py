"""Ledger counts that cost O(unfinished rows), not O(ledger): what /health, the stream and
the dashboard show.

A processed event is never changed again, and processed rows are what a ledger grows by.
They are counted as they are made: `mark_processed` adds the rows it wins to a counter row
of its own (`event_counts.owner`: the worker), in the same transaction, so the count is
exact, and no two workers or API instances wait for each other's row (one row that every
commit updates would serialise the whole fleet on its lock). Every other status (queued,
processing, retrying, dead, purged) is counted from the rows themselves, through the
partial index ix_events_open (status != 'processed'): few rows while the workers keep up.

`fold` merges the rows of owners gone quiet into the base row (owner ""), so the table stays
the size of the live fleet. `ledger.count_by_status` remains the exact scan (tests, admin).
"""

from __future__ import annotations

import os
import socket

from sqlalchemy import Connection, func, literal, select, text, union_all

from godel.event import Status
from godel.store.schema import NOT_PROCESSED, event_counts, events

BASE_OWNER = ""
_ADD = text(
    "INSERT INTO event_counts (owner, processed, attempts, updated_at) "
    "VALUES (:owner, :n, :attempts, :now) ON CONFLICT (owner) DO UPDATE SET "
    "processed = event_counts.processed + excluded.processed, "
    "attempts = event_counts.attempts + excluded.attempts, updated_at = excluded.updated_at"
)


def process_owner() -> str:
    """The counter row of this process, for marks made outside a worker."""
    return f"{socket.gethostname()}-{os.getpid()}"


def add_processed(conn: Connection, owner: str, n: int, attempts: int, now: float) -> None:
    """Count `n` events just marked processed (their `attempts` summed), in the caller's
    transaction."""
    if n:
        conn.execute(_ADD, {"owner": owner, "n": n, "attempts": attempts, "now": now})


def totals(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per status with any events: (events, the sum of their attempts). Exact, in one
    statement (one snapshot on PostgreSQL too)."""
    unfinished = (
        select(events.c.status, func.count(), func.coalesce(func.sum(events.c.attempts), 0))
        .where(NOT_PROCESSED)
        .group_by(events.c.status)
    )
    processed = select(
        literal(Status.PROCESSED.value),
        func.coalesce(func.sum(event_counts.c.processed), 0),
        func.coalesce(func.sum(event_counts.c.attempts), 0),
    )
    rows = conn.execute(union_all(unfinished, processed)).all()
    return {str(status): (int(n), int(tried)) for status, n, tried in rows if n}


def by_status(conn: Connection) -> dict[str, int]:
    """Events per status, as `ledger.count_by_status` answers, without reading the ledger."""
    return {status: n for status, (n, _) in totals(conn).items()}


def fold(conn: Connection, before: float, now: float) -> int:
    """Merge the counter rows last written before `before` into the base row; returns how
    many. The rows are locked first: a worker writing its row meanwhile waits, then makes
    a new one."""
    quiet = conn.execute(
        select(event_counts.c.owner, event_counts.c.processed, event_counts.c.attempts)
        .where(event_counts.c.owner != BASE_OWNER, event_counts.c.updated_at < before)
        .with_for_update()
    ).all()
    if not quiet:
        return 0
    conn.execute(event_counts.delete().where(event_counts.c.owner.in_([r[0] for r in quiet])))
    n, attempts = sum(int(r[1]) for r in quiet), sum(int(r[2]) for r in quiet)
    conn.execute(_ADD, {"owner": BASE_OWNER, "n": n, "attempts": attempts, "now": now})
    return len(quiet)
