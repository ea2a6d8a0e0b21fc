"""wrk against a running stack, and the end-to-end clock: from the first request until the
last accepted event is processed. Shared by the SQLite rows (rows_serve) and the PostgreSQL
rows (rows_pg), for Godel and for the FastAPI + arq peer alike.

Godel's events are done when Redis holds none of them (godel:queue:pending and every
worker's processing list are empty) and the ledger, read exactly, says every row is
processed; arq's when its queue (a sorted set it removes each job from when the job is
finished) is empty. Both are polled every 5 ms.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.process import LOOPBACK, ProcessRunner, free_port
from tests.support.wait import wait_until

from bench import peers, wrk
from bench.common import PENDING, BenchError
from bench.context import Context
from bench.godel_side import ADMIN_TOKEN, GodelServe

POLL_S = 0.005
DRAIN_TIMEOUT_S = 600.0
ARQ_QUEUE = "arq:queue"
ARQ_TUNED = ("--poll-delay", "0.005", "--max-jobs", "100")


@dataclass(frozen=True)
class Rep:
    """One repetition: wrk's run and, when waited for, when the last event was done."""

    run: wrk.WrkRun
    events: int  # events the server stored during the run (may exceed wrk's 2xx count)
    e2e_s: float | None  # from wrk's start until the last one was processed

    @property
    def e2e_rate(self) -> float | None:
        return self.events / self.e2e_s if self.e2e_s else None

    def to_json(self) -> dict[str, Any]:
        return {"wrk": self.run.to_json(), "events": self.events, "e2e_s": self.e2e_s}


def _godel_in_redis(ctx: Context) -> int:
    with contextlib.closing(ctx.redis.client(decode_responses=True)) as r:
        workers = r.zrange("godel:workers", 0, -1)
        pipe = r.pipeline(transaction=False)
        pipe.llen(PENDING)
        for w in workers:
            pipe.llen(f"godel:queue:processing:{w}")
        return sum(int(n) for n in pipe.execute())


def godel_stored(serve: GodelServe) -> tuple[int, int]:
    """(rows, processed rows) of the serve's ledger, read exactly."""
    counts = serve.ledger.counts()
    return counts.get("total", 0), counts.get("processed", 0)


def godel_drained(ctx: Context, serve: GodelServe) -> float:
    """Wait until every event in the ledger is processed; returns the monotonic time."""

    def done() -> bool:
        if _godel_in_redis(ctx):
            return False
        total, processed = godel_stored(serve)
        return total == processed

    return wait_until(done, DRAIN_TIMEOUT_S, "every event processed", interval_s=POLL_S)


def godel_rep(
    ctx: Context,
    serve: GodelServe,
    connections: int,
    per_request: int,
    e2e: bool,
) -> Rep:
    """One window of wrk load on `serve`; with `e2e`, also the time until it is all done."""
    url = serve.base_url + "/api/v1/events"
    before, _ = godel_stored(serve)
    t0 = time.monotonic()
    run = wrk.run(url, connections, ctx.sizes.wrk_window_s, per_request)
    done_at = godel_drained(ctx, serve) if e2e else None
    after, _ = godel_stored(serve)
    if run.failed:
        raise BenchError(f"wrk: {run.non_2xx} answers not 2xx, {run.socket_errors} socket errors")
    if after - before < run.accepted:
        raise BenchError(f"ledger gained {after - before} events; wrk saw {run.accepted} 2xx")
    return Rep(run, after - before, None if done_at is None else done_at - t0)


def warm_godel(ctx: Context, serve: GodelServe, connections: int, per_request: int) -> None:
    """A second of load before the clock (cold code paths, connections), then drained when
    the serve has workers inside."""
    wrk.run(serve.base_url + "/api/v1/events", connections, 1, per_request)
    if serve.settings.get("workers"):
        godel_drained(ctx, serve)


class ArqStack:
    """The FastAPI + arq peer: bench/peers/arq_app.py as an uvicorn API process and an arq
    worker process (poll_delay 5 ms, max_jobs 100: arq tuned), from the arq venv, on the
    run's redis-server."""

    def __init__(self, redis_url: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.api = ProcessRunner(log_dir, "arq-api")
        self.worker = ProcessRunner(log_dir, "arq-worker")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> ArqStack:
        python = str(peers.PeerEnv("arq").ensure())
        script = str(peers.PEERS_DIR / "arq_app.py")
        common = ["--redis-url", self.redis_url]
        serve = ["serve", *common, "--port", str(self.port), "--token", ADMIN_TOKEN]
        try:
            self.api.start([python, script, *serve], cwd=peers.PEERS_DIR)
            self.worker.start([python, script, "worker", *common, *ARQ_TUNED], cwd=peers.PEERS_DIR)
            self.api.wait_http(f"{self.url}/health/ready", timeout_s=60)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in (self.api, self.worker):
            with contextlib.suppress(Exception):
                proc.terminate(timeout_s=15)
            proc.kill9()

    def queued(self, ctx: Context) -> int:
        with contextlib.closing(ctx.redis.client()) as r:
            return int(r.zcard(ARQ_QUEUE))

    def results(self, ctx: Context) -> int:
        with contextlib.closing(ctx.redis.client()) as r:
            return sum(1 for _ in r.scan_iter(match="arq:result:*", count=1000))

    def drained(self, ctx: Context) -> float:
        return wait_until(
            lambda: self.queued(ctx) == 0, DRAIN_TIMEOUT_S, "arq's queue drained", interval_s=POLL_S
        )

    def rep(self, ctx: Context, connections: int, e2e: bool) -> Rep:
        url = self.url + "/api/v1/events"
        before = self.results(ctx)
        t0 = time.monotonic()
        run = wrk.run(url, connections, ctx.sizes.wrk_window_s, 1)
        done_at = self.drained(ctx) if e2e else None
        if run.failed:
            raise BenchError(f"wrk: {run.non_2xx} answers not 2xx, {run.socket_errors} errors")
        events = self.results(ctx) - before if e2e else run.accepted
        return Rep(run, events, None if done_at is None else done_at - t0)

    def warm(self, ctx: Context, connections: int) -> None:
        wrk.run(self.url + "/api/v1/events", connections, 1, 1)
        self.drained(ctx)


@contextlib.contextmanager
def arq_stack(ctx: Context, log_dir: Path) -> Iterator[ArqStack]:
    ctx.redis.reset()
    with ArqStack(ctx.redis.url, log_dir) as stack:
        yield stack
    ctx.redis.reset()
