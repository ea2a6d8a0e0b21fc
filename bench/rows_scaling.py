"""Rows 8a-8c: how far one PostgreSQL primary and one Redis carry several Godel processes.

- 8a: accepted events/s through 1 and then 2 `godel serve` processes (GODEL_WORKERS=0),
  loaded by `wrk` (C, a fraction of a core) with one connection group per process,
  `{"events": [...]}` batches, for a fixed window per repetition.
- 8b: processed events/s of 1 and then 2 `godel worker` processes (one claim loop each):
  the workers are held (a gate event each, tests.chaos.gate), N events are published (the
  Producer, in this process), the gate opens, and the rate is taken between 20 % and 90 %
  of them processed, so neither the fill nor the tail counts.
- 8c: Redis memory per event id: `MEMORY USAGE godel:queue:pending` / `LLEN` once 8a has
  left its ids there (no workers ran).

PostgreSQL runs with its own durable defaults (fsync, synchronous_commit on; not the
tests' fast settings), Godel with its defaults. Over each window the CPU of every process
(bench/procstat.py), PostgreSQL's commits (Godel's group commits, and pg_stat_database's
xact_commit, which also counts the pool's pre-pings), its WAL, and Redis's commands are
measured; the note says which resource was saturated. docs/scaling.md reads the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE, STDOUT, Popen
from typing import Any

from tests.support.fleet import Fleet, start_fleet
from tests.support.godel_worker import sample
from tests.support.postgres_server import PostgresServer
from tests.support.process import Processes
from tests.support.wait import wait_until

from bench.context import Context
from bench.procstat import CpuMeter, saturation
from bench.stats import Result, Stat, Status

RATE = "ev/s"
TOKEN = "bench-admin-token"
COMMITS = "godel_ledger_commit_rows_count"


@dataclass(frozen=True)
class ScaleSizes:
    window_s: int  # 8a: seconds of load per repetition
    batch: int  # 8a: events per request
    connections: int  # 8a: wrk connections per API process
    drain_n: int  # 8b: events per repetition


QUICK = ScaleSizes(window_s=2, batch=10, connections=64, drain_n=10_000)
FULL = ScaleSizes(window_s=6, batch=10, connections=64, drain_n=50_000)

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.body = '%(body)s'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %%d, "duration_us": %%d, "failed": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def _pg_commits(pg: PostgresServer, db: str) -> int:
    with pg.connect() as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (db,))
        found = row.fetchone()
    return int(found[0]) if found else 0


def _wal_bytes(pg: PostgresServer) -> int:
    with pg.connect() as conn:
        found = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
    return int(found[0]) if found else 0


def _redis_commands(ctx: Context) -> int:
    with ctx.redis.client() as r:
        return int(r.info("stats")["total_commands_processed"])


@contextlib.contextmanager
def _fleet(
    ctx: Context, pg: PostgresServer, apis: int, workers: int
) -> Iterator[tuple[Fleet, str]]:
    """A fresh ledger database, migrated, and the processes on it."""
    from tests.harness import migrate

    ctx.redis.reset()
    url = pg.create_database()
    migrate(url)
    procs = Processes(Path(tempfile.mkdtemp(prefix="godel-bench-fleet-")))
    settings = {
        "database_url": url,
        "redis_url": ctx.redis.url,
        "admin_token": TOKEN,
        "log_level": "WARNING",
        "handlers": "tests.chaos.gate",  # holds the workers while 8b fills the queue
    }
    try:
        yield start_fleet(procs, procs.log_dir, settings, apis=apis, workers=workers), url
    finally:
        procs.stop()
        pg.drop_database(url.rsplit("/", 1)[1])
        shutil.rmtree(procs.log_dir, ignore_errors=True)


def _wrk(fleet: Fleet, sizes: ScaleSizes, script: Path, seconds: int) -> list[Popen[str]]:
    """One wrk per API process (a client per pod, as a load balancer would spread it)."""
    argv = ["wrk", "-t1", f"-c{sizes.connections}", f"-d{seconds}s", "-s", str(script)]
    return [
        Popen([*argv, f"{url}/api/v1/events"], stdout=PIPE, stderr=STDOUT, text=True)
        for url in fleet.urls
    ]


def _wrk_accepted(runs: list[Popen[str]], batch: int) -> int:
    accepted = 0
    for run in runs:
        out, _ = run.communicate(timeout=120)
        summary = json.loads(out.strip().splitlines()[-1])
        if summary["failed"]:
            raise RuntimeError(f"wrk: {summary['failed']} requests failed or were not 2xx")
        accepted += summary["requests"] * batch
    return accepted


def _api_rep(
    ctx: Context, pg: PostgresServer, fleet: Fleet, db: str, sizes: ScaleSizes, script: Path
) -> dict[str, Any]:
    """One window of load: events/s, commits (Godel's and PostgreSQL's), Redis commands,
    and the CPU of every process."""
    commits = sum(sample(t, COMMITS) for t in fleet.metrics_texts())
    pg_commits, redis_cmds, wal = _pg_commits(pg, db), _redis_commands(ctx), _wal_bytes(pg)
    runs = _wrk(fleet, sizes, script, sizes.window_s)
    groups = {f"api-{i}": [a.process.pid] for i, a in enumerate(fleet.apis)}
    extra = {"postgres": [pg.pid], "redis": [ctx.redis.pid], "wrk": [r.pid for r in runs]}
    meter = CpuMeter({**groups, **extra})
    time.sleep(0.2)  # CPU from the middle of the window, while wrk still runs
    before = meter.snapshot()
    time.sleep(sizes.window_s - 0.4)
    cores = CpuMeter.used(before, meter.snapshot())
    accepted = _wrk_accepted(runs, sizes.batch)
    commits = sum(sample(t, COMMITS) for t in fleet.metrics_texts()) - commits
    window = sizes.window_s
    return {
        "events_per_s": accepted / window,
        "group_commits_per_s": commits / window,
        "events_per_commit": accepted / commits if commits else None,
        "pg_xact_commit_per_s": (_pg_commits(pg, db) - pg_commits) / window,
        "redis_commands_per_event": (_redis_commands(ctx) - redis_cmds) / accepted,
        "wal_bytes_per_event": (_wal_bytes(pg) - wal) / accepted,
        "cores": cores,
    }


def _api_config(
    ctx: Context, pg: PostgresServer, n: int, sizes: ScaleSizes, script: Path, reps: int
) -> dict[str, Any]:
    with _fleet(ctx, pg, apis=n, workers=0) as (fleet, url):
        _wrk_accepted(_wrk(fleet, sizes, script, 1), sizes.batch)  # warm-up
        db = url.rsplit("/", 1)[1]
        detail: dict[str, Any] = {
            "reps": [_api_rep(ctx, pg, fleet, db, sizes, script) for _ in range(reps)]
        }
        with ctx.redis.client() as r:
            held = int(r.llen("godel:queue:pending"))
            usage = int(r.memory_usage("godel:queue:pending", samples=0) or 0)
    detail["redis_bytes_per_id"] = usage / held if held else None
    detail["ids_in_pending"] = held
    detail["rate"] = Stat.of([r["events_per_s"] for r in detail["reps"]], RATE)
    return detail


async def _publish(settings: Any, events: list[dict[str, Any]]) -> None:
    from godel.producer import Producer

    async with Producer(settings) as producer:
        for start in range(0, len(events), 500):
            await producer.publish_many(events[start : start + 500])


def _processed(fleet: Fleet) -> float:
    return sum(worker.processed() for worker in fleet.workers)


def _hold_workers(settings: Any, fleet: Fleet, gate: Path) -> None:
    """One gate event per worker, one at a time: each worker takes one and waits at the
    gate (tests.chaos.gate), so the fill that follows is not consumed meanwhile."""
    gate.touch()
    event = {"type": "agent.gate", "payload": {"gate": str(gate)}}
    for held in range(1, len(fleet.workers) + 1):
        asyncio.run(_publish(settings, [event]))
        wait_until(lambda n=held: len(list(gate.parent.glob("held-*"))) >= n, 60, "a worker held")


def _drain_rep(
    ctx: Context, pg: PostgresServer, fleet: Fleet, url: str, n: int, meter: CpuMeter
) -> dict[str, Any]:
    """Workers held, n events published, then released: the rate between 20 % and 90 %
    of them processed, and the CPU used meanwhile."""
    from godel.config import Settings

    settings = Settings(database_url=url, redis_url=ctx.redis.url, log_level="WARNING")
    with tempfile.TemporaryDirectory(prefix="godel-bench-gate-") as tmp:
        gate = Path(tmp) / "gate"
        _hold_workers(settings, fleet, gate)
        events = [{"type": "bench.noop", "payload": {"n": i}} for i in range(n)]
        asyncio.run(_publish(settings, events))
        # A ledger in service has statistics (autovacuum analyzes it within a minute); a
        # fresh one has none and gets plans that scan the table on every batch.
        with pg.connect(url.rsplit("/", 1)[1]) as conn:
            conn.execute("ANALYZE events")
        base, wal, cmds = _processed(fleet), _wal_bytes(pg), _redis_commands(ctx)
        commits, released = _pg_commits(pg, url.rsplit("/", 1)[1]), time.monotonic()
        gate.unlink()
        marks: dict[float, tuple[Any, float]] = {}
        while len(marks) < 2:
            done = _processed(fleet) - base
            for share in (0.2, 0.9):
                if share not in marks and done >= share * n:
                    marks[share] = (meter.snapshot(), done)
            time.sleep(0.01)
        total = n + len(fleet.workers)  # and the gate events
        wait_until(lambda: _processed(fleet) - base >= total, 120, f"{n} events processed")
    (first, n_first), (last, n_last) = marks[0.2], marks[0.9]
    return {
        "events_per_s": (n_last - n_first) / (last[0] - first[0]),
        "wal_bytes_per_event": (_wal_bytes(pg) - wal) / total,
        "pg_xact_commit_per_s": (_pg_commits(pg, url.rsplit("/", 1)[1]) - commits)
        / (time.monotonic() - released),
        "redis_commands_per_event": (_redis_commands(ctx) - cmds) / total,
        "cores": CpuMeter.used(first, last),
    }


def _worker_config(ctx: Context, pg: PostgresServer, k: int, n: int, reps: int) -> dict[str, Any]:
    with _fleet(ctx, pg, apis=0, workers=k) as (fleet, url):
        groups = {f"worker-{i}": [w.process.pid] for i, w in enumerate(fleet.workers)}
        meter = CpuMeter({**groups, "postgres": [pg.pid], "redis": [ctx.redis.pid]})
        _drain_rep(ctx, pg, fleet, url, min(n, 1000), meter)  # warm-up
        detail = {"reps": [_drain_rep(ctx, pg, fleet, url, n, meter) for _ in range(reps)]}
    detail["rate"] = Stat.of([r["events_per_s"] for r in detail["reps"]], RATE)
    return detail


def _row(name: str, configs: dict[int, dict[str, Any]], what: str) -> Result:
    one, two = configs[1], configs[2]
    res = Result("scaling", name, "information: the ratio, and what saturates")
    res.godel = two["rate"]
    res.peers[f"1 {what}"] = one["rate"]
    res.ratios[f"1 {what}"] = two["rate"].median / one["rate"].median
    res.note = f"1 {what}: {_facts(one)}. 2 {what}es: {_facts(two)}. "
    res.details = {"one": _plain(one), "two": _plain(two)}
    res.status = Status.INFO
    res.topology = "api-only" if what.startswith("API") else "worker"
    res.ledger, res.client = "postgresql", "wrk" if what.startswith("API") else "python"
    return res


def _facts(config: dict[str, Any]) -> str:
    """The last repetition: what saturated, and what PostgreSQL and Redis did per event."""
    rep = config["reps"][-1]
    commits = f"{rep['pg_xact_commit_per_s']:,.0f} commits/s (xact_commit)"
    if rep.get("events_per_commit"):
        commits += f", {rep['events_per_commit']:.0f} events per group commit"
    return (
        f"{saturation(rep['cores'])}; PostgreSQL {commits}, "
        f"{rep['wal_bytes_per_event']:,.0f} B of WAL per event; "
        f"Redis {rep['redis_commands_per_event']:.3f} commands per event"
    )


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.to_json() if isinstance(v, Stat) else v) for k, v in detail.items()}


def bench_scaling(ctx: Context) -> list[Result]:
    sizes = QUICK if ctx.quick else FULL
    reps = ctx.sizes.reps
    if shutil.which("wrk") is None:
        note = "wrk is not installed (scripts/setup-dev.sh installs it)"
        return [Result("scaling", "8a scaling", "-", status=Status.UNAVAILABLE, note=note)]
    body = json.dumps(
        {"events": [{"type": "bench.noop", "payload": {"n": i}} for i in range(sizes.batch)]}
    )
    with tempfile.TemporaryDirectory(prefix="godel-bench-scaling-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT % {"token": TOKEN, "body": body})
        pg = PostgresServer(durable=True).start()
        try:
            ctx.log("scaling: 1 API process")
            api = {k: _api_config(ctx, pg, k, sizes, script, reps) for k in (1, 2)}
            ctx.log("scaling: worker processes")
            work = {k: _worker_config(ctx, pg, k, sizes.drain_n, reps) for k in (1, 2)}
        finally:
            pg.stop()
    results = [
        _row("8a scaling: 2 API processes vs 1 (PostgreSQL, durable)", api, "API process"),
        _row("8b scaling: 2 worker processes vs 1 (PostgreSQL, durable)", work, "worker process"),
    ]
    per_id = [d["redis_bytes_per_id"] for d in api.values() if d["redis_bytes_per_id"]]
    memory = Result("scaling", "8c Redis memory per event id in godel:queue:pending", "information")
    memory.topology, memory.ledger, memory.client = "api-only", "postgresql", "wrk"
    if per_id:
        memory.godel = Stat.of(per_id, "B/entry")
        held = max(d["ids_in_pending"] for d in api.values())
        memory.note = f"MEMORY USAGE / LLEN over {held:,} ids. "
    return [*results, memory]
