"""A streaming replica of a test PostgresServer (`pg_basebackup -R`), to fail over to.

The primary's trust pg_hba (initdb's default) already admits replication connections from
127.0.0.1, and its defaults (`wal_level=replica`, `max_wal_senders=10`) allow streaming.
`synchronous()` makes every commit on the primary wait for the replica: a `202` is then
never given for an event the replica lacks, and a failover loses no acknowledged event.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tests.support.postgres_server import START_TIMEOUT_S, PostgresServer
from tests.support.process import free_port
from tests.support.wait import wait_until


class PostgresReplica(PostgresServer):
    """A hot standby of `primary`, on its own port and directory, with its settings."""

    def __init__(self, primary: PostgresServer) -> None:
        super().__init__(primary.bin_dir, durable=primary.durable, options=primary.options)
        self.primary = primary

    def _initdb(self) -> None:
        # `-R` writes standby.signal and primary_conninfo: the copy starts as a standby.
        argv = [
            str(self.bin_dir / "pg_basebackup"),
            "-D", str(self.data_dir),
            "-h", self.primary.host,
            "-p", str(self.primary.port),
            "-U", self.primary.user,
            "-R",
            "-X", "stream",
            "--checkpoint=fast",
            "--no-sync",
        ]  # fmt: skip
        self._run_tool(argv)

    def in_recovery(self) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def wait_streaming(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the primary lists this replica as streaming."""

        def streaming() -> bool:
            with self.primary.connect() as conn:
                rows = conn.execute(
                    "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchall()
            return bool(rows)

        wait_until(streaming, timeout_s, f"replica on port {self.port} streaming")

    def cut_off(self) -> None:
        """A network partition between the replica and its primary: the replica keeps what
        it has and receives nothing more (its primary_conninfo now names a closed port)."""
        with self.connect() as conn:
            conninfo = f"host={self.host} port={free_port()} user={self.user}"
            conn.execute(f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
            conn.execute("SELECT pg_reload_conf()")

        def detached() -> bool:
            with self.primary.connect() as conn:
                return not conn.execute("SELECT 1 FROM pg_stat_replication").fetchall()

        wait_until(detached, START_TIMEOUT_S, f"replica on port {self.port} cut off")

    def promote(self) -> None:
        """`SELECT pg_promote()`: returns once the replica takes writes."""
        with self.connect() as conn:
            conn.execute("SELECT pg_promote(wait => true, wait_seconds => 30)")
        if self.in_recovery():
            raise RuntimeError(f"replica did not leave recovery; log:\n{self.log_text()[-3000:]}")


def synchronous(primary: PostgresServer, standbys: str = "*") -> None:
    """Every commit on `primary` waits until a standby has flushed it (synchronous_commit
    `on` with synchronous_standby_names): what the primary acknowledges, the replica has."""
    with primary.connect() as conn:
        conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{standbys}'")
        conn.execute("SELECT pg_reload_conf()")
        wait_until(lambda: _sync_state(conn) == "sync", 10, "the replica to become synchronous")


def fence(server: PostgresServer) -> None:
    """Make a running primary read-only for every session (as an operator or a failover
    manager fences a demoted primary): writes fail with SQLSTATE 25006, reads still work."""
    with server.connect() as conn:
        conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        conn.execute("SELECT pg_reload_conf()")


def _sync_state(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    row = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchone()
    return str(row[0]) if row else ""


def multi_host_url(database: str, *servers: PostgresServer) -> str:
    """The GODEL_DATABASE_URL of a multi-host ledger: every server, libpq picking the one
    that takes writes (`target_session_attrs=read-write`)."""
    hosts = "&".join(f"host={s.host}:{s.port}" for s in servers)
    user = servers[0].user
    return f"postgresql+psycopg://{user}@/{database}?{hosts}&target_session_attrs=read-write"


@contextmanager
def replicated(
    database: str, *, sync: bool = True
) -> Iterator[tuple[PostgresServer, PostgresReplica]]:
    """A primary holding an empty `database` and its streaming replica, synchronous unless
    `sync=False`; both stopped (and deleted) after."""
    primary = PostgresServer(options={"synchronous_commit": "on"})
    replica: PostgresReplica | None = None
    try:
        primary.start()
        primary.create_database(database)
        replica = PostgresReplica(primary).start()
        replica.wait_streaming()
        if sync:
            synchronous(primary)
        yield primary, replica
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()
