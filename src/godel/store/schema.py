"""The ledger's tables. Alembic's migrations create them; this is what queries use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

from godel.event import Status

metadata = MetaData()
SeqType = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("type", String(128), nullable=False),
    Column("agent_id", String(128)),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    # False while the event still has to be pushed onto Redis (the undispatched backlog).
    Column("dispatched", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("available_at", Float, nullable=False),
    Column("claimed_by", String(128)),
    Column("claimed_until", Float),
    Column("processed_at", Float),
    # The stack of the last failure (frames and the error line, never the values).
    Column("last_traceback", Text),
    # The lane of the last attempt: "redis" (a fast-lane claim) or "ledger" (a ledger claim);
    # NULL until a worker settles one. `dispatched` cannot say it: processing sets it.
    Column("lane", String(8)),
)
# Waiting to be pushed onto Redis. Written `dispatched = false` (`= 0` on SQLite), exactly as
# the partial index's predicate: `IS false` is another term to both planners, and they then
# scan the whole table (or every open row) instead of this index.
UNDISPATCHED = events.c.dispatched == false()
Index(
    "ix_events_undispatched",
    events.c.seq,
    sqlite_where=UNDISPATCHED,
    postgresql_where=UNDISPATCHED,
)
# Not processed yet (unfinished, plus the few dead/purged). `status != 'processed'` rather
# than an IN list: SQLite evaluates this cheaply on every insert (measured: IN cost a quarter
# of the ingest rate); queries that want the index repeat this exact term.
NOT_PROCESSED = events.c.status != Status.PROCESSED.value
Index("ix_events_open", events.c.seq, sqlite_where=NOT_PROCESSED, postgresql_where=NOT_PROCESSED)
Index("ix_events_type_seq", events.c.type, events.c.seq)
Index("ix_events_agent_seq", events.c.agent_id, events.c.seq)

agents = Table(
    "agents",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(256)),
    Column("status", String(32), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_event_id", String(128)),
    Column("last_event_type", String(128)),
    Column("last_seen_at", Float),
    # Counts agent events applied: equal to the number of distinct events when exactly-once.
    Column("events_applied", Integer, nullable=False, default=0),
)

# API keys made at run time (`godel keys create`, POST /admin/keys). Only the SHA-256 digest
# of a secret is kept (godel.credentials); `scopes` is their `+`-joined form.
api_keys = Table(
    "api_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("scopes", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)


# One row per worker loop, upserted at start, every few seconds and at stop (pipeline.roster):
# who is alive in every mode, since when, and how many events it has processed.
workers = Table(
    "workers",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float),
    Column("processed", BigInteger, nullable=False, default=0),
)


# Processed events counted as they are marked (godel.store.counts): one row per worker that
# marks, plus the base row (owner "") that quiet owners are folded into.
event_counts = Table(
    "event_counts",
    metadata,
    Column("owner", String(128), primary_key=True),
    Column("processed", BigInteger, nullable=False, default=0),
    Column("attempts", BigInteger, nullable=False, default=0),  # the processed rows' attempts
    Column("updated_at", Float, nullable=False),
)


def row_dict(row: Any) -> dict[str, Any]:
    """A row as a plain dict (SQLAlchemy's keys are str subclasses orjson refuses)."""
    return {str(k): v for k, v in row._mapping.items()}
