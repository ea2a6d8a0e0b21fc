"""The api_keys table: keys made at run time, found by the digest of their secret."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, delete, exc, insert, select

from godel.errors import Conflict
from godel.store.schema import api_keys, row_dict

PUBLIC = (api_keys.c.name, api_keys.c.scopes, api_keys.c.created_at)


def create_key(conn: Connection, name: str, digest: str, scopes: str) -> dict[str, Any]:
    """Insert a key; Conflict when the name is taken."""
    if conn.execute(select(api_keys.c.name).where(api_keys.c.name == name)).first():
        raise Conflict(f"a key named {name!r} exists already; revoke it first")
    values = {"name": name, "digest": digest, "scopes": scopes, "created_at": time.time()}
    try:
        conn.execute(insert(api_keys).values(**values))
    except exc.IntegrityError as err:  # a concurrent create of the same name
        raise Conflict(f"a key named {name!r} exists already; revoke it first") from err
    return {k: values[k] for k in ("name", "scopes", "created_at")}


def find_by_digest(conn: Connection, digest: str) -> dict[str, Any] | None:
    row = conn.execute(select(*PUBLIC).where(api_keys.c.digest == digest)).first()
    return row_dict(row) if row else None


def list_keys(conn: Connection) -> list[dict[str, Any]]:
    """Every stored key, by name, without its digest."""
    return [row_dict(r) for r in conn.execute(select(*PUBLIC).order_by(api_keys.c.name)).all()]


def revoke_key(conn: Connection, name: str) -> bool:
    """Delete the key; False when there was none of that name."""
    return conn.execute(delete(api_keys).where(api_keys.c.name == name)).rowcount > 0
