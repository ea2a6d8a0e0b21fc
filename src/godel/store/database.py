"""Engines for the ledger, and running database work off the event loop.

All database work is plain synchronous SQLAlchemy Core, run in a small thread pool: one
thread hop per unit of work (a group commit, a claim, a batch mark) instead of one per
statement. SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` for writers, so two
processes sharing the file queue for the write lock instead of failing on upgrade.

PostgreSQL may be several hosts (libpq multi-host, `target_session_attrs=read-write`): libpq
picks the primary whenever a connection is made, pre-ping drops dead pooled connections, and
a pooled connection to a server that became read-only (a demoted or fenced primary) fails
its first write; that error is LedgerUnavailable and drops every pooled connection, so the
next ones are made afresh, to whichever host is the primary now.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import re
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from godel.errors import ConfigError, LedgerRefused, LedgerUnavailable
from godel.store.loopwriter import AsyncConn, LoopWriter

T = TypeVar("T")
P = ParamSpec("P")
# prepare_threshold=None: psycopg would prepare a statement run 5 times, and PostgreSQL then
# plans `id IN (...)` claims once, generically: a scan of every unfinished row per batch
# (measured: processing at 1/20th of its speed). Unprepared, each is planned for its own ids.
_PG_CONNECT_ARGS: dict[str, Any] = {"connect_timeout": 5, "prepare_threshold": None}
LOOP_WRITERS = 2  # connections kept for the group commits on the loop (ingest's in flight)


class Busy(enum.Enum):
    """The SQLite write lock was taken; try again off the event loop."""

    BUSY = "busy"


BUSY = Busy.BUSY
# What libpq says when the server (or the client's own TLS settings) refuse the connection:
# no SQLSTATE comes with these, only the message.
_REFUSED = re.compile(
    r"password authentication failed|no pg_hba\.conf entry|(role|database) \"[^\"]*\" does "
    r"not exist|SSL was required|does not support SSL|certificate verify failed|root cert",
    re.IGNORECASE,
)


# SQLSTATE 25006: a write reached a server that only reads (a standby, a demoted primary, or
# default_transaction_read_only fencing it).
READ_ONLY_SQLSTATE = "25006"


def read_only(err: BaseException) -> bool:
    """Did the database refuse a write because it is read-only now?"""
    cause = getattr(err, "orig", None) or err
    return getattr(cause, "sqlstate", None) == READ_ONLY_SQLSTATE


def unavailable(message: str) -> LedgerUnavailable:
    """The ledger error for a driver's message: LedgerRefused when it is a refusal."""
    kind = LedgerRefused if _REFUSED.search(message) else LedgerUnavailable
    return kind(message)


def normalize_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
            break
    return _multi_host(url) if url.startswith("postgresql+psycopg://") else url


def _multi_host(url: str) -> str:
    """libpq's multi-host form `user:pw@h1:5432,h2:5432/db?...`, which SQLAlchemy cannot
    parse, as the form it passes to libpq: `user:pw@/db?host=h1:5432&host=h2:5432&...`."""
    head, _, rest = url.partition("://")
    authority, _, tail = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    if "," not in hosts:
        return url
    path, _, query = tail.partition("?")
    params = [f"host={quote(h, safe=':[]')}" for h in hosts.split(",") if h]
    params += [query] if query else []
    return f"{head}://{credentials}{at}/{path}?{'&'.join(params)}"


def _sqlite_engine(url: str, synchronous: str, writer: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=8, max_overflow=8, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, see below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with SQLITE_BUSY without waiting, which busy_timeout cannot help.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


class Database:
    """Engines for the ledger plus a bounded thread pool to run database work in."""

    def __init__(self, url: str, *, threads: int = 4, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        try:
            if self.is_sqlite:
                self.engine = _sqlite_engine(self.url, sqlite_synchronous, writer=True)
                self.read_engine = _sqlite_engine(self.url, sqlite_synchronous, writer=False)
            else:
                self.engine = create_engine(
                    self.url,
                    pool_size=threads + 2,
                    max_overflow=4,
                    pool_pre_ping=True,
                    connect_args=_PG_CONNECT_ARGS,
                )
                self.read_engine = self.engine
                event.listen(self.engine, "checkout", self._drop_if_stale)
        except (exc.ArgumentError, ValueError) as err:  # the message may hold the URL
            raise ConfigError(f"invalid GODEL_DATABASE_URL: {type(err).__name__}") from err
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="godel-db")
        # SQLite takes one writer at a time. This process's writes queue in one thread of
        # their own rather than fight over the lock: a loser would sleep in SQLite's busy
        # handler (1 ms, then longer), and ingest and the workers lose to each other all the
        # time. Other processes sharing the file still wait on busy_timeout.
        self._writer = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="godel-db-writer")
            if self.is_sqlite
            else self._pool
        )
        self._synchronous = sqlite_synchronous
        self._inline: sqlite3.Connection | None = None
        self._loop_writer: LoopWriter | None = None
        self._stale = False  # a write found the server read-only: drop the pool

    def _drop_if_stale(self, _dbapi: Any, _entry: ConnectionPoolEntry, _proxy: Any) -> None:
        # InvalidatePoolError on checkout is SQLAlchemy's way to close every pooled
        # connection made before now; it then connects afresh (libpq finds the primary).
        if self._stale:
            self._stale = False
            raise exc.InvalidatePoolError("the database is read-only: reconnecting")

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in one committed transaction."""
        result: T = await self._run_write(self._in_tx, self.engine, fn, *args)
        return result

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._run(self._in_tx, self.read_engine, fn, *args)
        return result

    def write_inline(self, fn: Callable[..., T], *args: Any) -> T | Busy:
        """SQLite only: run `fn(dbapi_connection, *args)` in a transaction on the calling
        thread when the write lock is free right now, else return BUSY (use `write_raw`).

        A small commit costs less than the hop to a thread and back, which is most of a
        single event's latency; a lock held elsewhere must never stall the event loop,
        hence busy_timeout=0 on this connection."""
        conn = self._inline_connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                return BUSY
            raise LedgerUnavailable(str(err)) from err
        try:
            result = fn(conn, *args)
            conn.commit()
            return result
        except sqlite3.OperationalError as err:
            conn.rollback()
            raise LedgerUnavailable(str(err)) from err
        except BaseException:
            conn.rollback()
            raise

    def _inline_connection(self) -> sqlite3.Connection:
        if self._inline is None:
            path = make_url(self.url).database or ":memory:"
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=0")
            self._inline = conn
        return self._inline

    async def write_raw(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(dbapi_connection, *args)` in one committed transaction, without
        SQLAlchemy's per-statement machinery: for the ingest hot path only."""
        result: T = await self._run_write(self._raw_tx, fn, *args)
        return result

    async def write_on_loop(
        self, fn: Callable[Concatenate[AsyncConn, P], Awaitable[T]], *args: P.args, **kw: P.kwargs
    ) -> T:
        """PostgreSQL only: run `async fn(async_connection, ...)` in one committed transaction
        on the event loop (store.loopwriter): for the ingest's group commits only."""
        if self._loop_writer is None:
            cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
            if cargs:
                raise ConfigError("unexpected positional connection arguments")
            self._loop_writer = LoopWriter({**cparams, **_PG_CONNECT_ARGS}, size=LOOP_WRITERS)
        try:
            return await self._loop_writer.run(fn, *args, **kw)
        except (psycopg.OperationalError, psycopg.InterfaceError) as err:
            raise unavailable(str(err)) from err
        except psycopg.Error as err:
            if not read_only(err):
                raise
            self._stale = True
            await self._loop_writer.close()
            raise LedgerUnavailable(f"the database is read-only: {_cause(err)}") from err

    async def close_loop_writer(self) -> None:
        if self._loop_writer is not None:
            await self._loop_writer.close()

    async def _run_write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(fn, *args, executor=self._writer)

    def _raw_tx(self, fn: Callable[..., T], *args: Any) -> T:
        pooled = self.engine.raw_connection()
        dbapi_conn: Any = pooled.driver_connection
        try:
            if self.is_sqlite:
                dbapi_conn.execute("BEGIN IMMEDIATE")
            result = fn(dbapi_conn, *args)
            dbapi_conn.commit()
            return result
        except BaseException:
            dbapi_conn.rollback()
            raise
        finally:
            pooled.close()

    @staticmethod
    def _in_tx(engine: Engine, fn: Callable[..., T], *args: Any) -> T:
        with engine.begin() as conn:
            result: T = fn(conn, *args)
            return result

    async def _run(
        self, fn: Callable[..., T], *args: Any, executor: ThreadPoolExecutor | None = None
    ) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(self._translate, fn, *args)
        return await loop.run_in_executor(executor or self._pool, call)

    def _translate(self, fn: Callable[..., T], *args: Any) -> T:
        dbapi = self.engine.dialect.dbapi
        raw_errors: tuple[type[Exception], ...] = (
            (dbapi.OperationalError, dbapi.InterfaceError) if dbapi is not None else ()
        )
        try:
            return fn(*args)
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as err:
            raise unavailable(str(err.orig if hasattr(err, "orig") else err)) from err
        except raw_errors as err:
            raise unavailable(str(err)) from err
        except Exception as err:
            if not read_only(err):
                raise
            self._stale = True
            raise LedgerUnavailable(f"the database is read-only: {_cause(err)}") from err

    async def check(self) -> None:
        """One round trip; LedgerUnavailable (LedgerRefused: the configuration) if it fails,
        or if PostgreSQL answers but cannot take writes (a standby, a fenced primary)."""
        if self.is_sqlite:
            await self.read(lambda conn: conn.execute(text("SELECT 1")).scalar())
            return
        setting = await self.read(_transaction_read_only)
        if setting != "off":
            self._stale = True
            raise LedgerUnavailable("the database is read-only (transaction_read_only is on)")

    async def ping(self) -> bool:
        try:
            await self.check()
        except LedgerUnavailable:
            return False
        return True

    def close(self) -> None:
        if self._loop_writer is not None:  # Runtime.stop closed them already, on its loop
            self._loop_writer.close_now()
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._writer.shutdown(wait=True, cancel_futures=False)
        if self._inline is not None:
            self._inline.close()
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _transaction_read_only(conn: Connection) -> str:
    return str(conn.execute(text("SHOW transaction_read_only")).scalar())


def _cause(err: BaseException) -> str:
    return " ".join(str(getattr(err, "orig", None) or err).split())
