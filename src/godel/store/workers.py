"""The `workers` table: one row per worker loop, the roster every process can read.

Written by `pipeline.roster.Roster` (start, a heartbeat every few seconds, stop); read by
GET /api/v1/workers, `godel workers` and the dashboard. Functions take a Connection inside
the caller's transaction, as in `ledger`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from godel.store.schema import row_dict, workers


def join(conn: Connection, name: str, host: str, pid: int, now: float) -> None:
    """A worker starts: its row, fresh (a restarted pod's worker may reuse its name)."""
    values = {
        "host": host,
        "pid": pid,
        "started_at": now,
        "heartbeat_at": now,
        "stopped_at": None,
        "processed": 0,
    }
    done = conn.execute(update(workers).where(workers.c.name == name).values(**values))
    if not done.rowcount:
        conn.execute(insert(workers).values(name=name, **values))


def beat(conn: Connection, name: str, now: float, processed: int) -> bool:
    """A heartbeat; False when the row is gone (pruned while the worker hung): join again."""
    done = conn.execute(
        update(workers)
        .where(workers.c.name == name)
        .values(heartbeat_at=now, processed=processed, stopped_at=None)
    )
    return bool(done.rowcount)


def leave(conn: Connection, name: str, now: float, processed: int) -> None:
    conn.execute(
        update(workers)
        .where(workers.c.name == name)
        .values(heartbeat_at=now, stopped_at=now, processed=processed)
    )


def prune(conn: Connection, before: float) -> int:
    """Forget workers not heard of since `before` (stopped or gone for good)."""
    return int(conn.execute(delete(workers).where(workers.c.heartbeat_at < before)).rowcount)


def list_workers(conn: Connection, since: float) -> list[dict[str, Any]]:
    """Workers heard of since `since`, oldest start first."""
    stmt = (
        select(workers)
        .where(workers.c.heartbeat_at >= since)
        .order_by(workers.c.started_at, workers.c.name)
    )
    return [row_dict(row) for row in conn.execute(stmt).all()]
