"""Run-wide settings: sizes for --quick and full runs, the shared redis-server, a memo of peer
figures that more than one row compares against."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
)


@dataclass
class Context:
    redis: RedisServer
    sizes: Sizes
    quick: bool
    log: Callable[[str], None]
    http_client: str = "raw"  # see bench/http_load.py
    memo: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, fn: Callable[[], Any]) -> Any:
        """Compute a figure once per run (e.g. arq's enqueue rate, used by rows 1 and 3)."""
        if key not in self.memo:
            self.memo[key] = fn()
        return self.memo[key]


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
