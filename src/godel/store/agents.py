"""The agents table: registration, reads, and the built-in transactional `agent.*` handler."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from godel.event import Event
from godel.intake import AGENT_STATUS_RE, MAX_AGENT_NAME_LEN
from godel.store.schema import agents, row_dict

AGENT_STATUSES = ("unknown", "idle", "busy", "running", "offline", "error")


def agent_dict(row: Any) -> dict[str, Any]:
    data = row_dict(row)
    data["metadata"] = orjson.loads(data["metadata"] or "{}")
    return data


def upsert_agent(
    conn: Connection, agent_id: str, name: str | None, status: str, meta: dict[str, Any]
) -> dict[str, Any]:
    now = time.time()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values = {
        "id": agent_id,
        "name": name,
        "status": status,
        "metadata": orjson.dumps(meta).decode(),
        "created_at": now,
        "updated_at": now,
        "events_applied": 0,
    }
    stmt = insert(agents).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "name": stmt.excluded.name,
            "status": stmt.excluded.status,
            "metadata": stmt.excluded.metadata,
            "updated_at": now,
        },
    )
    conn.execute(stmt)
    found = get_agent(conn, agent_id)
    assert found is not None
    return found


def get_agent(conn: Connection, agent_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(agents).where(agents.c.id == agent_id)).first()
    return agent_dict(row) if row else None


def list_agents(
    conn: Connection, status: str | None, limit: int, after: str | None
) -> list[dict[str, Any]]:
    stmt = select(agents).order_by(agents.c.id).limit(limit)
    if status:
        stmt = stmt.where(agents.c.status == status)
    if after:
        stmt = stmt.where(agents.c.id > after)
    return [agent_dict(row) for row in conn.execute(stmt).all()]


def apply_agent_event(conn: Connection, event: Event) -> None:
    """Built-in transactional handler for `agent.*`: the agent's row follows its events.

    `payload.status` (when given) becomes the agent's status; every event counts once in
    `events_applied`, which is how the tests check exactly-once."""
    if not event.agent_id:
        return
    payload = event.payload
    status = payload.get("status")
    # Intake refuses a bad status or name; a row stored before that check is applied
    # without them rather than failing (and dying) on every attempt.
    valid = isinstance(status, str) and AGENT_STATUS_RE.fullmatch(status) is not None
    status = status if valid else None
    now = time.time()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    name = payload.get("name")
    if not isinstance(name, str) or len(name) > MAX_AGENT_NAME_LEN or "\x00" in name:
        name = None
    stmt = insert(agents).values(
        id=event.agent_id,
        name=name,
        status=status or "unknown",
        metadata="{}",
        created_at=now,
        updated_at=now,
        last_event_id=event.id,
        last_event_type=event.type,
        last_seen_at=now,
        events_applied=1,
    )
    changes: dict[str, Any] = {
        "last_event_id": event.id,
        "last_event_type": event.type,
        "last_seen_at": now,
        "updated_at": now,
        "events_applied": agents.c.events_applied + 1,
    }
    if status:
        changes["status"] = status
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=changes))
