"""The ledger's hot-path insert: one statement per group commit (executemany on SQLite,
unnest on PostgreSQL), and the check that an id sent again names the same event."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from godel.errors import IdConflict
from godel.event import Event
from godel.store.database import BUSY, Database

# Up to this many rows commit on the event loop thread (about 0.1 ms); more go to a thread.
INLINE_MAX_ROWS = 200

_COLUMNS = (
    "id, type, agent_id, payload, status, dispatched, attempts, created_at, "
    "updated_at, available_at"
)
_SQLITE_INSERT = (
    f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING"
)
_PG_INSERT = (
    f"INSERT INTO events ({_COLUMNS}) SELECT i, t, a, p, 'queued', d, 0, c, %(now)s, c "
    "FROM unnest(%(ids)s::text[], %(types)s::text[], %(agents)s::text[], %(payloads)s::text[], "
    "%(dispatched)s::bool[], %(created)s::float8[]) AS x(i, t, a, p, d, c) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


_PG_STORED = "SELECT id, type, agent_id, payload FROM events WHERE id = ANY(%(ids)s::text[])"


async def commit_events(db: Database, batch: Sequence[tuple[Event, bool]]) -> set[str]:
    """Commit one group of `(event, dispatched)` rows: the ingest's one way into the ledger,
    on either ledger. Returns the ids that were new.

    SQLite: on the calling thread when the group is small and the write lock is free right
    now (a small commit costs less than the hop to a thread), else in the writer thread.
    PostgreSQL: on the event loop, through store.loopwriter.

    An id already in the ledger (or earlier in the group) must name the same event: if not,
    IdConflict is raised inside the transaction, so the rollback undoes the group and the
    caller can commit the others again. Only client-made ids that were not new are compared
    (server-made ids are unique by construction)."""
    if not db.is_sqlite:
        return await db.write_on_loop(_insert_pg, batch)
    if len(batch) <= INLINE_MAX_ROWS:
        done = db.write_inline(_insert_sqlite, batch)
        if done is not BUSY:
            return done
    return await db.write_raw(_insert_sqlite, batch)


async def _insert_pg(conn: Any, batch: Sequence[tuple[Event, bool]]) -> set[str]:
    """One unnest INSERT for the group, on a psycopg AsyncConnection."""
    _check_batch_repeats(batch)
    cur = await conn.execute(_PG_INSERT, _pg_params(batch))
    new = {row[0] for row in await cur.fetchall()}
    known = _known(batch, new)
    if known:
        cur = await conn.execute(_PG_STORED, {"ids": known})
        _check_stored(batch, {r[0]: _stored(r) for r in await cur.fetchall()})
    return new


def _pg_params(batch: Sequence[tuple[Event, bool]]) -> dict[str, Any]:
    cols: dict[str, list[Any]] = {
        k: [] for k in ("ids", "types", "agents", "payloads", "dispatched", "created")
    }
    for ev, dispatched in batch:
        for key, value in zip(
            cols,
            (ev.id, ev.type, ev.agent_id, ev.payload_json, dispatched, ev.created_at),
            strict=True,
        ):
            cols[key].append(value)
    return {**cols, "now": time.time()}


def _known(batch: Sequence[tuple[Event, bool]], new: set[str]) -> list[str]:
    """Client-made ids that were not new: they must name the stored event."""
    return list({ev.id for ev, _ in batch if ev.id_from_client and ev.id not in new})


def _stored(row: Any) -> Event:
    return Event(id=row[0], type=row[1], agent_id=row[2], payload_json=row[3])


def _check_batch_repeats(batch: Sequence[tuple[Event, bool]]) -> None:
    first: dict[str, Event] = {}
    conflicts = [
        ev
        for ev, _ in batch
        if ev.id_from_client
        and (seen := first.setdefault(ev.id, ev)) is not ev
        and not seen.same_as(ev)
    ]
    if conflicts:
        raise IdConflict(conflicts)


def _check_stored(batch: Sequence[tuple[Event, bool]], stored: dict[str, Event]) -> None:
    conflicts = [ev for ev, _ in batch if ev.id in stored and not stored[ev.id].same_as(ev)]
    if conflicts:
        raise IdConflict(conflicts)


def _insert_sqlite(dbapi_conn: Any, batch: Sequence[tuple[Event, bool]]) -> set[str]:
    """One executemany for the group, on a sqlite3 connection."""
    _check_batch_repeats(batch)
    now = time.time()
    ids = list({ev.id for ev, _ in batch if ev.id_from_client})
    stored: dict[str, Event] = {}
    for start in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT id, type, agent_id, payload FROM events WHERE id IN ({marks})"
        stored.update((r[0], _stored(r)) for r in dbapi_conn.execute(query, chunk))
    if stored:
        _check_stored(batch, stored)
    new: set[str] = set()
    rows = []
    for ev, dispatched in batch:
        if ev.id not in stored and ev.id not in new:
            new.add(ev.id)
            created = ev.created_at
            rows.append(
                (ev.id, ev.type, ev.agent_id, ev.payload_json, dispatched, created, now, created)
            )
    dbapi_conn.executemany(_SQLITE_INSERT, rows)
    return new
