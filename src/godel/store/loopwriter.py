"""PostgreSQL writes on the event loop: psycopg's AsyncConnection, for the ingest's group
commits only.

The other queries run in a thread on SQLAlchemy's pool (`Database.write`). A group commit
is the hot path: through a thread it cost a hop there and back, the pool's checkout with its
pre-ping (one more round trip) and the GIL taken back and forth with the event loop. On the
loop it costs the two round trips it needs (measured on 2 cores, ten events a commit: 270
instead of 410 µs of CPU a commit, 1.4x the commits a second).

Connections are kept idle between commits, at most `size` of them (the commits in flight).
What pre-ping did is done here after the fact: a kept connection found dead before the commit
(the server restarted, a failover) is dropped and the transaction is run once more on a new
connection; the dead one's never committed. A failure of the commit itself (its outcome is
unknown), or on a new connection, is the caller's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg

T = TypeVar("T")
P = ParamSpec("P")
AsyncConn = psycopg.AsyncConnection[Any]


class LoopWriter:
    """Runs `fn(conn, ...)` in one committed transaction on a kept AsyncConnection."""

    def __init__(self, connect_kwargs: dict[str, Any], size: int) -> None:
        self._connect_kwargs = connect_kwargs
        self._size = size
        self._idle: list[AsyncConn] = []

    async def run(
        self, fn: Callable[Concatenate[AsyncConn, P], Awaitable[T]], *args: P.args, **kw: P.kwargs
    ) -> T:
        kept = bool(self._idle)
        conn = self._idle.pop() if kept else await self._connect()
        try:
            try:
                result = await fn(conn, *args, **kw)
            except psycopg.OperationalError:
                if not (kept and conn.broken):
                    raise
                await self._discard(conn)  # dead while idle: once more on a new one
                conn = await self._connect()
                result = await fn(conn, *args, **kw)
            await conn.commit()
        except Exception:
            await self._give_back(conn, rollback=True)
            raise
        except BaseException:  # cancelled mid-statement: its state is unknown
            await self._discard(conn)
            raise
        await self._give_back(conn, rollback=False)
        return result

    async def close(self) -> None:
        """Close the kept connections (also after a failover: they may point at the old
        primary); the next commit connects again."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn)

    def close_now(self) -> None:
        """`close` without an event loop (the loop that made them may be gone): libpq's
        PQfinish on each kept connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.pgconn.finish()

    async def _connect(self) -> AsyncConn:
        return await psycopg.AsyncConnection.connect(**self._connect_kwargs)

    async def _give_back(self, conn: AsyncConn, *, rollback: bool) -> None:
        if rollback and not conn.broken and not conn.closed:
            try:
                await conn.rollback()
            except psycopg.Error:
                await self._discard(conn)
                return
        if conn.broken or conn.closed or len(self._idle) >= self._size:
            await self._discard(conn)
        else:
            self._idle.append(conn)

    @staticmethod
    async def _discard(conn: AsyncConn) -> None:
        with contextlib.suppress(Exception):
            await conn.close()
