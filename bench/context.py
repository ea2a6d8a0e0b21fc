"""Run-wide settings: sizes for --quick and full runs, the shared redis-server, a memo of peer
figures that more than one row compares against."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer


@dataclass(frozen=True)
class Sizes:
    reps: int
    ingest_n: int  # row 1: events per repetition, one per call
    ingest_concurrent_n: int  # row 1b: events per repetition, one per call, over all callers
    callers: int  # row 1b: concurrent callers (asyncio tasks; threads for RQ)
    batch_n: int  # row 2: events per repetition, 100 per call
    batch_size: int
    http_one_requests: int  # row 3a
    http_batch_requests: int  # row 3b (x batch_size events)
    concurrency: int  # HTTP connections
    process_n: int  # row 4: Godel (its worker start-up is subtracted; see rows_process)
    process_tuned_n: int  # row 4: tuned arq (~1,000 jobs/s here)
    process_slow_n: int  # row 4: arq defaults and RQ (~200 jobs/s here: fewer, same rate)
    fallback_one_requests: int  # row 5a, per phase
    fallback_batch_requests: int
    kill_window_s: float  # row 5b: seconds of load on each side of the kill
    replay_n: int  # rows 6 and 7a: events accepted in fallback
    cache_fill: int  # row 7b: entries inserted into the in-memory LRU
    wrk_window_s: float  # wrk rows (3c, 9, P3): seconds of load per repetition
    wrk_connections: int  # wrk rows: connections of the concurrent rows
    pg_ingest_n: int  # P1: events per repetition, one per call, each a durable commit
    pg_batch_n: int  # P2: events per repetition, 100 per call
    pg_process_n: int  # P4: events drained by one `godel worker --burst`
    pg_replay_n: int  # P6: events accepted in fallback, then replayed
    health_rows: int  # 12: ledger rows under /health's counts
    storm_window_s: float  # 10a-10c: seconds the probe is timed per window
    # 10b, 10c: the storm runs at least this long before the probe's clock starts, and with
    # limits on until the storming agent was first refused (its burst spent; at most
    # storm_lead_max_s, else the row fails)
    storm_lead_s: float = 1.0
    storm_lead_max_s: float = 30.0
    storm_warm_s: float = 0.5  # the probe's warm-up at its rate, before the storm starts
    storm_probe_rate: float = 200.0  # probe requests per second (open loop)
    storm_probe_agents: int = 50  # agent ids the probe rotates over
    storm_connections: int = 16  # wrk connections of the storming agent


QUICK = Sizes(
    reps=3,
    ingest_n=600,
    ingest_concurrent_n=1000,
    callers=32,
    batch_n=10_000,
    batch_size=100,
    http_one_requests=600,
    http_batch_requests=100,
    concurrency=16,
    process_n=12_000,  # a drain well above the start-up noise it is corrected for
    process_tuned_n=1000,
    process_slow_n=200,
    fallback_one_requests=300,
    fallback_batch_requests=50,
    kill_window_s=0.5,
    replay_n=5000,
    cache_fill=30_000,
    wrk_window_s=1.0,
    wrk_connections=32,
    pg_ingest_n=300,
    pg_batch_n=5000,
    pg_process_n=5000,
    pg_replay_n=5000,
    health_rows=30_000,
    storm_window_s=2.0,
)
# The suite's smoke run (tests/bench): every row once, at the quick sizes or below; it checks
# the harness and that Godel loses nothing, not the figures (one repetition: no medians).
SMOKE = dataclasses.replace(
    QUICK,
    reps=1,
    ingest_n=200,
    ingest_concurrent_n=320,
    batch_n=3000,
    http_one_requests=200,
    http_batch_requests=30,
    fallback_one_requests=100,
    fallback_batch_requests=20,
    replay_n=2000,
    cache_fill=10_000,
    pg_ingest_n=100,
    pg_batch_n=2000,
    # A burst worker's start-up (~0.8 s) is subtracted by an empty run; the drain must stand
    # well above that noise (3,000 events on PostgreSQL sometimes did not).
    pg_process_n=10_000,
    pg_replay_n=2000,
    health_rows=5000,
    storm_window_s=0.5,
    storm_lead_s=0.5,
    storm_warm_s=0.2,
)
FULL = Sizes(
    reps=3,
    ingest_n=5000,
    ingest_concurrent_n=10_000,
    callers=32,
    batch_n=100_000,
    batch_size=100,
    http_one_requests=4000,
    http_batch_requests=400,
    concurrency=16,
    process_n=20_000,
    process_tuned_n=8000,
    process_slow_n=1000,
    fallback_one_requests=3000,
    fallback_batch_requests=300,
    kill_window_s=2.0,
    replay_n=100_000,
    cache_fill=100_000,
    wrk_window_s=8.0,
    wrk_connections=32,
    pg_ingest_n=2000,
    pg_batch_n=50_000,
    pg_process_n=20_000,
    pg_replay_n=100_000,
    health_rows=300_000,
    storm_window_s=8.0,
)


@dataclass
class Context:
    redis: RedisServer
    sizes: Sizes
    quick: bool
    log: Callable[[str], None]
    http_client: str = "raw"  # see bench/http_load.py
    memo: dict[str, Any] = field(default_factory=dict)
    _postgres: PostgresServer | None = None

    def once(self, key: str, fn: Callable[[], Any]) -> Any:
        """Compute a figure once per run (e.g. arq's enqueue rate, used by rows 1 and 3)."""
        if key not in self.memo:
            self.memo[key] = fn()
        return self.memo[key]

    def postgres(self) -> PostgresServer:
        """The run's PostgreSQL (started on first use, with its own durable defaults:
        fsync and synchronous_commit on, not the tests' fast settings), for the P rows."""
        if self._postgres is None:
            self._postgres = PostgresServer(durable=True).start()
        return self._postgres

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None


@contextlib.contextmanager
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server (tests/support's: no persistence, a free loopback port) in a
    temp dir, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="godel-bench-redis-") as tmp:
        server = RedisServer(Path(tmp))
        try:
            yield server.start()
        finally:
            server.stop()


def redis_version(server: RedisServer) -> str:
    with server.client(decode_responses=True) as conn:
        return str(conn.info("server")["redis_version"])
