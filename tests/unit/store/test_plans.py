"""The ledger's claims use the indexes made for them, on SQLite and on PostgreSQL.

A predicate written differently from a partial index's (`dispatched IS false` for an index
on `dispatched = false`) is another term to the planner, and a claim joined to the table it
updates may be planned as a hash of the whole table: either way the query still answers,
only slower as the ledger grows (a replay of 100,000 events on PostgreSQL went from 28,000
to 60,000+ claims a second when both were fixed). Only the plan shows it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.sql import ClauseElement

from godel.store import ledger
from godel.store.database import Database
from godel.store.schema import UNDISPATCHED, events


@pytest.fixture
def db(ledger_db: Database) -> Database:
    return ledger_db


async def plan(db: Database, stmt: ClauseElement) -> str:
    """The planner's plan of `stmt` (not run). On PostgreSQL sequential scans are priced out
    first: an empty table is otherwise cheapest to scan whatever the predicate, and so only
    a predicate no index can serve still gives one."""

    def run(conn: Any) -> str:
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        if db.is_sqlite:
            order = getattr(compiled, "positiontup", None) or ()  # SQLCompiler: qmark order
            params = tuple(compiled.params[name] for name in order)
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
            return "\n".join(str(r[-1]) for r in rows)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        return "\n".join(str(r[0]) for r in rows)

    found: str = await db.write(run)
    return found


async def test_the_undispatched_backlog_is_read_through_its_partial_index(db: Database) -> None:
    backlog = select(events.c.seq).where(UNDISPATCHED).order_by(events.c.seq).limit(10)
    found = await plan(db, backlog)
    assert "ix_events_undispatched" in found, found


async def test_a_replay_claim_picks_by_index_and_updates_by_primary_key(db: Database) -> None:
    dialect = "sqlite" if db.is_sqlite else "postgresql"
    found = await plan(db, ledger.undispatched_claim(dialect, 2000, time.time()))
    assert "ix_events_undispatched" in found, found
    if db.is_sqlite:
        scans = [line for line in found.splitlines() if "SCAN events" in line]
        assert all("USING INDEX ix_events_undispatched" in line for line in scans), found
        assert "SEARCH events USING INTEGER PRIMARY KEY" in found, found
    else:
        assert "Seq Scan" not in found and "Hash" not in found, found
        assert "Index Cond: (seq = ANY" in found, found
