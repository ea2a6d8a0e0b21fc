"""Rows 1-3: ingest one event per call (one caller, then many concurrent callers), in batches,
and over HTTP."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any

from bench import http_load
from bench.common import (
    RATE,
    BenchError,
    arq_enqueue,
    check_ledger,
    check_pending,
    godel_reps,
    guarded,
    judge,
    null_server,
    peer_stat,
    ratio,
    registry_fallbacks,
)
from bench.context import Context
from bench.godel_side import (
    EVENT_TYPE,
    GodelServe,
    Ledger,
    fresh_ledger,
    require_producer,
    settings,
)
from bench.stats import Result, Stat

# One timed publishing run against a started Producer's settings: (cfg) -> seconds.
Publish = Callable[[Any], Coroutine[Any, Any, float]]
Ledgers = Callable[[], AbstractContextManager[Ledger]]  # a fresh ledger per repetition


async def _publish_one(cfg: Any, n: int) -> float:
    _, producer_cls = require_producer()
    async with producer_cls(cfg) as p:
        await p.publish(EVENT_TYPE, {"n": -1})  # warm: connections open, ledger migrated
        t0 = time.perf_counter()
        for i in range(n):
            await p.publish(EVENT_TYPE, {"n": i})
        return time.perf_counter() - t0


async def _publish_batches(cfg: Any, n: int, size: int) -> float:
    _, producer_cls = require_producer()
    batches = [
        [{"type": EVENT_TYPE, "payload": {"n": i + k}} for k in range(size)]
        for i in range(0, n, size)
    ]
    async with producer_cls(cfg) as p:
        await p.publish_many([{"type": EVENT_TYPE, "payload": {"n": -1}}])  # warm
        t0 = time.perf_counter()
        for batch in batches:
            await p.publish_many(batch)
        return time.perf_counter() - t0


def _commits() -> float:
    """Ledger commits so far in this process, from Godel's own histogram (0 if it has none)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("godel_ledger_commit_rows_count") or 0.0


async def _publish_concurrent(cfg: Any, n: int, callers: int, commits: list[float]) -> float:
    """`callers` tasks share one Producer, each awaiting publish() in a loop: n events in all.
    Appends the number of ledger commits the timed part took to `commits`."""
    _, producer_cls = require_producer()
    async with producer_cls(cfg) as p:
        # Warm as the peers do: one round of concurrent calls before the clock.
        await asyncio.gather(*(p.publish(EVENT_TYPE, {"n": -1 - k}) for k in range(callers)))

        async def caller(k: int) -> None:
            for i in range(k, n, callers):
                await p.publish(EVENT_TYPE, {"n": i})

        before = _commits()
        t0 = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(callers)))
        elapsed = time.perf_counter() - t0
        commits.append(_commits() - before)
        return elapsed


def _godel_ingest_rep(
    ctx: Context,
    res: Result,
    n: int,
    publish: Publish,
    warm: int = 1,
    ledgers: Ledgers = fresh_ledger,
) -> float:
    """One repetition on a fresh ledger; checks every event (the timed n and the `warm` warm-up
    calls) is in the ledger, dispatched, and its id in Redis."""
    ctx.redis.reset()
    with ledgers() as ledger:
        before = registry_fallbacks()
        elapsed = asyncio.run(publish(settings(ctx.redis.url, ledger)))
        res.saw_fallbacks(int(registry_fallbacks() - before))
        check_ledger(ledger, total=n + warm, undispatched=0)
        check_pending(ctx, n + warm)
    return n / elapsed


def producer_row(res: Result, ledger: str = "sqlite") -> Result:
    res.topology, res.ledger, res.client = "producer", ledger, "python"
    return res


def bench_ingest(ctx: Context) -> list[Result]:
    s = ctx.sizes
    res = producer_row(Result("ingest", "1 ingest, one event per call (Python client)", "≥ 3x arq"))
    res.note += (
        "One sequential caller: each call waits for its own durable ledger commit (one commit "
        "per event), where the peers' calls only write to Redis; concurrent callers share "
        "commits (row 1b). "
    )
    ctx.log("ingest: peers")
    arq = arq_enqueue(ctx)
    if isinstance(arq, Stat):
        res.peers["arq"] = arq
    else:
        res.note += f"arq unavailable: {arq}. "
    peer_stat(ctx, res, "rq", "rq", "enqueue", s.ingest_n)
    peer_stat(ctx, res, "bare sync", "bare", "one", s.ingest_n, ["--client", "sync"])
    peer_stat(ctx, res, "bare async", "bare", "one", s.ingest_n, ["--client", "async"])
    ctx.log("ingest: godel")
    godel_reps(
        ctx,
        res,
        lambda: _godel_ingest_rep(ctx, res, s.ingest_n, lambda cfg: _publish_one(cfg, s.ingest_n)),
    )
    for peer in list(res.peers):
        ratio(res, peer)
    judge(res, res.ratios.get("arq", 0.0) >= 3.0)
    return [res]


def bench_ingest_concurrent(ctx: Context) -> list[Result]:
    s = ctx.sizes
    n, c = s.ingest_concurrent_n, s.callers
    res = producer_row(
        Result(
            "ingest",
            f"1b ingest, one event per call, {c} concurrent callers (Python client)",
            "≥ 3x arq",
        )
    )
    res.details["callers"] = c
    res.note += (
        f"{c} callers, each awaiting one call at a time, {n} events in all after one warm-up "
        f"round: Godel and arq as {c} asyncio tasks on one Producer / one pool, RQ as {c} "
        f"threads on one Queue (no asyncio API), bare as {c} asyncio tasks on one client. "
    )
    ctx.log(f"ingest, {c} concurrent callers: peers")
    extra = ["--callers", str(c)]
    peer_stat(ctx, res, "arq", "arq", "enqueue-concurrent", n, extra)
    peer_stat(ctx, res, "rq", "rq", "enqueue-concurrent", n, extra)
    peer_stat(ctx, res, "bare async", "bare", "one-concurrent", n, ["--client", "async", *extra])
    ctx.log(f"ingest, {c} concurrent callers: godel")
    commits: list[float] = []
    godel_reps(
        ctx,
        res,
        lambda: _godel_ingest_rep(
            ctx, res, n, lambda cfg: _publish_concurrent(cfg, n, c, commits), warm=c
        ),
    )
    if commits and all(commits):
        res.details["ledger_commits"] = commits
        per = statistics.median(n / k for k in commits)
        res.note += f"Godel: {per:.1f} events per ledger commit (median over reps). "
    for peer in list(res.peers):
        ratio(res, peer)
    judge(res, res.ratios.get("arq", 0.0) >= 3.0)
    return [res]


def bench_batch(ctx: Context) -> list[Result]:
    s = ctx.sizes
    res = producer_row(
        Result(
            "batch",
            f"2 ingest, batches of {s.batch_size} (Python client)",
            "≥ 50,000 ev/s and ≥ 45% of best bare pipeline",
        )
    )
    ctx.log("batch: peers")
    extra = ["--batch", str(s.batch_size)]
    for client in ("sync", "async"):
        peer_stat(
            ctx,
            res,
            f"bare {client} pipeline",
            "bare",
            "pipeline",
            s.batch_n,
            ["--client", client, *extra],
        )
    ctx.log("batch: godel")
    godel_reps(
        ctx,
        res,
        lambda: _godel_ingest_rep(
            ctx, res, s.batch_n, lambda cfg: _publish_batches(cfg, s.batch_n, s.batch_size)
        ),
    )
    for peer in list(res.peers):
        ratio(res, peer)
    best = max(res.ratios.values(), default=0.0)
    share = min(res.ratios.values(), default=0.0)  # against the faster bare client
    res.note += f"share of best bare: {share:.0%} (best-case share {best:.0%}). "
    judge(res, res.godel is not None and res.godel.median >= 50_000 and share >= 0.45)
    return [res]


def _http_rates(
    ctx: Context, url: str, body: Any, per_request: int, requests: int
) -> tuple[list[float], int, int]:
    """(rates, events accepted including warm-ups, failed requests) over all repetitions."""
    values: list[float] = []
    accepted = failed = 0
    concurrency = ctx.sizes.concurrency
    for _ in range(ctx.sizes.reps):
        rate, records, warm = asyncio.run(
            http_load.measure(ctx.http_client, url, body, per_request, concurrency, requests)
        )
        values.append(rate)
        accepted += warm + http_load.accepted(records)
        failed += sum(1 for r in records if not http_load.ok(r))
    return values, accepted, failed


def bench_http(ctx: Context) -> list[Result]:
    s = ctx.sizes
    one = Result(
        "http", "3a HTTP ingest, one event per request", "≥ arq enqueue rate (Python client)"
    )
    batch = Result("http", f"3b HTTP ingest, batches of {s.batch_size}", "≥ 20,000 ev/s")
    for res in (one, batch):
        res.topology, res.ledger, res.client = "api-only", "sqlite", f"python-{ctx.http_client}"
    arq = arq_enqueue(ctx)
    if isinstance(arq, Stat):
        one.peers["arq enqueue"] = arq
    else:
        one.note += f"arq unavailable: {arq}. "
    bodies = [
        (one, http_load.one_body, 1, s.http_one_requests),
        (batch, http_load.batch_body(s.batch_size), s.batch_size, s.http_batch_requests),
    ]
    ctx.log(f"http: client ceiling ({ctx.http_client} client, null server)")
    try:
        with null_server() as base:
            for res, body, per, requests in bodies:
                values, _, _ = _http_rates(ctx, base + "/api/v1/events", body, per, requests)
                res.peers["client ceiling"] = Stat.of(values, RATE)
    except (OSError, BenchError) as exc:
        for res in (one, batch):
            res.note += f"client ceiling unavailable: {exc}. "
    ctx.log("http: godel serve")
    failures: dict[str, int] = {}

    def run() -> None:
        with fresh_ledger() as ledger, GodelServe(ctx.redis.url, ledger) as serve:
            url = serve.base_url + "/api/v1/events"
            total = 0
            for res, body, per, requests in bodies:
                values, accepted, failed = _http_rates(ctx, url, body, per, requests)
                failures[res.name] = failed
                res.godel = Stat.of(values, RATE)
                total += accepted
            check_ledger(ledger, total=total)
            for res in (one, batch):
                res.saw_fallbacks(serve.fallbacks())  # one process for both rows

    guarded(ctx, [one, batch], run)
    for res in (one, batch):
        if failures.get(res.name):
            res.note += f"{failures[res.name]} failed requests. "
        for peer in list(res.peers):
            ratio(res, peer)
    judge(one, one.ratios.get("arq enqueue", 0.0) >= 1.0 and not failures.get(one.name))
    judge(
        batch,
        batch.godel is not None and batch.godel.median >= 20_000 and not failures.get(batch.name),
    )
    return [one, batch]
