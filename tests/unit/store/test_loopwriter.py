"""store.loopwriter against a real PostgreSQL: a kept connection that died while idle is
replaced and its transaction run once more; a statement's own error rolls back and keeps the
connection; a cancelled transaction's connection is not kept; nothing commits twice."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from godel.store.loopwriter import LoopWriter
from tests.servers import PostgresServer

pytestmark = pytest.mark.postgres


def _connect_kwargs(url: str) -> dict[str, Any]:
    return {"conninfo": url.replace("postgresql+psycopg://", "postgresql://")}


async def _insert(conn: Any, value: int) -> int:
    cur = await conn.execute("INSERT INTO t (v) VALUES (%s) RETURNING pg_backend_pid()", (value,))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _rows(url: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(**_connect_kwargs(url)) as conn:
        cur = await conn.execute("SELECT v FROM t ORDER BY v")
        return [r[0] for r in await cur.fetchall()]


@pytest.fixture
async def writer(pg_url: str) -> Any:
    async with await psycopg.AsyncConnection.connect(**_connect_kwargs(pg_url)) as conn:
        await conn.execute("CREATE TABLE t (v int PRIMARY KEY)")
        await conn.commit()
    w = LoopWriter(_connect_kwargs(pg_url), size=2)
    yield w
    await w.close()


async def test_a_connection_killed_while_idle_is_replaced_and_the_commit_done_once(
    writer: LoopWriter, pg_url: str, postgres_server: PostgresServer
) -> None:
    first_pid = await writer.run(_insert, 1)
    with postgres_server.connect() as admin:  # what a restart or failover does to it
        admin.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
    second_pid = await writer.run(_insert, 2)
    assert second_pid != first_pid
    assert await writer.run(_insert, 3) == second_pid  # the new one is kept
    assert await _rows(pg_url) == [1, 2, 3]


async def test_a_statement_error_rolls_back_and_keeps_the_connection(
    writer: LoopWriter, pg_url: str
) -> None:
    pid = await writer.run(_insert, 1)

    async def twice(conn: Any) -> None:
        await _insert(conn, 2)
        await _insert(conn, 1)  # a duplicate key: the whole transaction goes

    with pytest.raises(psycopg.errors.UniqueViolation):
        await writer.run(twice)
    assert await writer.run(_insert, 3) == pid
    assert await _rows(pg_url) == [1, 3]


async def test_a_new_connection_that_fails_is_the_callers_error(pg_url: str) -> None:
    refused = LoopWriter({"conninfo": "postgresql://godel@127.0.0.1:1/x", "connect_timeout": 2}, 2)
    with pytest.raises(psycopg.OperationalError):
        await refused.run(_insert, 1)


async def test_a_cancelled_transaction_neither_commits_nor_keeps_its_connection(
    writer: LoopWriter, pg_url: str
) -> None:
    pid = await writer.run(_insert, 1)

    async def slow(conn: Any) -> None:
        await _insert(conn, 2)
        await conn.execute("SELECT pg_sleep(5)")

    task = asyncio.ensure_future(writer.run(slow))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await writer.run(_insert, 3) != pid
    assert await _rows(pg_url) == [1, 3]
