"""python -m bench [--quick] [--only NAME ...] [--json PATH]: see bench/README.md."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bench import http_load, peers, report
from bench.context import FULL, QUICK, SMOKE, Context, own_redis, redis_version
from bench.rows_cache import bench_cache
from bench.rows_health import bench_health, link_row
from bench.rows_ingest import bench_batch, bench_http, bench_ingest, bench_ingest_concurrent
from bench.rows_outage import bench_fallback, bench_replay
from bench.rows_pg import bench_pg_http, bench_pg_ingest, bench_pg_process, bench_pg_replay
from bench.rows_process import bench_process
from bench.rows_scaling import bench_scaling
from bench.rows_serve import bench_serve
from bench.rows_storm import bench_storm
from bench.stats import Result, Status

Bench = Callable[[Context], list[Result]]
# Name (for --only) -> the benchmarks that produce its rows, in table order.
BENCHMARKS: dict[str, list[Bench]] = {
    "ingest": [bench_ingest, bench_ingest_concurrent],  # rows 1 and 1b
    "batch": [bench_batch],
    "http": [bench_http],
    "process": [bench_process],
    "serve": [bench_serve],  # rows 3c and 9a-9c: wrk, the default topology, FastAPI + arq
    "storm": [bench_storm],  # rows 10a-10c: other agents' latency while one agent storms
    "fallback": [bench_fallback],
    "replay": [bench_replay],  # rows 6 and 7a (one run gives both)
    "memory": [bench_replay, bench_cache],  # rows 7a and 7b
    "scaling": [bench_scaling],  # rows 8a-8c: 1 vs 2 processes on PostgreSQL
    "pg": [bench_pg_ingest, bench_pg_http, bench_pg_process, bench_pg_replay],  # rows P1-P6
    "health": [bench_health],  # rows 12a-12b (row 11, the link's, comes from every row)
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="every row once at the smallest sizes (the test suite's check of the harness; "
        "one repetition: figures not for quoting)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    p.add_argument("--json", type=Path, help="also write the JSON results here")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where <UTC timestamp>.json and latest.json go (default bench/results)",
    )
    p.add_argument(
        "--http-client",
        choices=http_load.CLIENTS,
        default="raw",
        help="HTTP load client: httpx AsyncClient, or a minimal asyncio one (see http_load.py)",
    )
    p.add_argument("--reps", type=int, help="repetitions per figure (default and minimum 3)")
    return p.parse_args(argv)


def selected(only: list[str] | None) -> list[Bench]:
    chosen: list[Bench] = []
    for name in only or list(BENCHMARKS):
        for bench in BENCHMARKS[name]:
            if bench not in chosen:
                chosen.append(bench)
    order = [b for benches in BENCHMARKS.values() for b in benches]
    return sorted(chosen, key=order.index)


def prepare_peers(log: Callable[[str], None]) -> None:
    """Create the peer venvs before any clock starts (cached after the first run)."""
    for name in peers.PEER_SPECS:
        try:
            peers.PeerEnv(name).ensure(log)
        except peers.PeerUnavailable as exc:
            log(f"peer {name} unavailable: {exc}")


def run_one(bench: Bench, ctx: Context) -> list[Result]:
    """One benchmark; a harness bug in it becomes an ERROR row, not a lost run."""
    try:
        return bench(ctx)
    except Exception as exc:
        name = bench.__name__.removeprefix("bench_")
        note = f"benchmark crashed: {type(exc).__name__}: {exc}"
        return [Result(name, f"{name} (crashed)", "-", status=Status.ERROR, note=note)]
    finally:
        ctx.redis.reset()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Console(width=None if sys.stdout.isatty() else 240)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 240)

    def log(message: str) -> None:
        err.print(f"[dim]{time.strftime('%H:%M:%S')} {message}[/dim]")

    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.reps and not args.smoke:
        sizes = dataclasses.replace(sizes, reps=max(3, args.reps))
    started = time.monotonic()
    date = report.now_utc()
    prepare_peers(log)
    results: list[Result] = []
    with own_redis() as redis:
        log(f"redis-server {redis_version(redis)} on port {redis.port}")
        ctx = Context(
            redis=redis,
            sizes=sizes,
            quick=args.quick or args.smoke,
            log=log,
            http_client=args.http_client,
        )
        try:
            for bench in selected(args.only):
                results.extend(run_one(bench, ctx))
        finally:
            ctx.close()
        link = link_row(results)
        if link is not None:
            results.append(link)
        meta = {
            "date": date.isoformat().replace("+00:00", "Z"),
            "mode": "smoke" if args.smoke else "quick" if args.quick else "full",
            "machine": report.machine(redis_version(redis)),
            "peers": peers.versions(),
            "sizes": dataclasses.asdict(sizes),
            "http_client": args.http_client,
            "duration_s": time.monotonic() - started,
        }
    report.print_report(out, results, meta)
    for path in report.write_json(results, meta, args.results_dir, args.json):
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
