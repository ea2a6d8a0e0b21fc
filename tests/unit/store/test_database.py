"""godel.store.database: the multi-host URL forms, and a pooled connection to a server that
turned read-only (a demoted or fenced primary) becoming LedgerUnavailable and a new
connection, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from godel.errors import LedgerUnavailable
from godel.event import Event
from godel.store import inserts
from godel.store.database import Database, normalize_url
from godel.store.migrate import upgrade


def libpq_params(url: str) -> dict[str, Any]:
    parsed = make_url(normalize_url(url))
    _, params = create_engine(parsed).dialect.create_connect_args(parsed)
    return {k: v for k, v in params.items() if k != "context"}


@pytest.mark.parametrize(
    "url",
    [
        # SQLAlchemy's form (the documented one), repeated host=...
        "postgresql+psycopg://godel:p%40ss@/godel?host=db-1:5432&host=db-2:5433"
        "&target_session_attrs=read-write",
        # libpq's own URI form, as managed services print it: rewritten to the above
        "postgresql://godel:p%40ss@db-1:5432,db-2:5433/godel?target_session_attrs=read-write",
        "postgres://godel:p%40ss@db-1:5432,db-2:5433/godel?target_session_attrs=read-write",
    ],
)
def test_multi_host_urls_reach_libpq_as_host_and_port_lists(url: str) -> None:
    assert libpq_params(url) == {
        "dbname": "godel",
        "user": "godel",
        "password": "p@ss",
        "host": "db-1,db-2",
        "port": "5432,5433",
        "target_session_attrs": "read-write",
    }


def test_single_host_urls_are_left_alone() -> None:
    url = "postgresql+psycopg://godel:pw@db:5432/godel?sslmode=require"
    assert normalize_url(url) == url
    assert normalize_url("postgresql://godel@db/godel") == "postgresql+psycopg://godel@db/godel"


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, threads=1)
    try:
        upgrade(database)
        yield database
    finally:
        database.close()


def backend_pid(conn: Any) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar())


def turn_read_only(conn: Any) -> int:
    """What a reload of default_transaction_read_only does to a live session."""
    conn.exec_driver_sql("SET SESSION default_transaction_read_only = on")
    return backend_pid(conn)


async def loop_backend_pid(conn: Any) -> int:
    cur = await conn.execute("SELECT pg_backend_pid()")
    row = await cur.fetchone()
    return int(row[0])


async def loop_turn_read_only(conn: Any) -> int:
    await conn.execute("SET SESSION default_transaction_read_only = on")
    return await loop_backend_pid(conn)


async def test_a_write_to_a_read_only_server_drops_the_pool(db: Database) -> None:
    row = [(Event(id="ro-1", type="t.x", agent_id=None, payload_json="{}"), True)]
    # The ingest's commits, on the event loop's kept connections.
    stale = await db.write_on_loop(loop_turn_read_only)
    with pytest.raises(LedgerUnavailable, match="read-only"):
        await inserts.commit_events(db, row)
    # The kept session is still alive but read-only: it must go.
    assert await db.write_on_loop(loop_backend_pid) != stale
    assert await inserts.commit_events(db, row) == {"ro-1"}

    # Every other write, in a thread on SQLAlchemy's pool.
    stale = await db.write(turn_read_only)
    with pytest.raises(LedgerUnavailable, match="read-only"):
        await db.write(lambda conn: conn.execute(text("CREATE TABLE t (x int)")))
    assert await db.read(backend_pid) != stale


async def test_readiness_check_fails_on_a_read_only_server(db: Database) -> None:
    await db.check()
    stale = await db.write(turn_read_only)
    assert await db.ping() is False
    assert await db.read(backend_pid) != stale
    assert await db.ping() is True
