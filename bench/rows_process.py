"""Row 4: drain N no-op events with one worker process in burst mode.

Every worker (Godel, arq, RQ) is a fresh process timed from spawn to exit; the same worker on an
empty queue is timed too and subtracted, so interpreter start-up and imports (heavier for
Godel, which loads FastAPI and SQLAlchemy) do not count: rate = N / (wall(N) - wall(0)).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from bench import peers
from bench.common import (
    RATE,
    BenchError,
    check_ledger,
    check_pending,
    godel_reps,
    judge,
    ratio,
)
from bench.context import Context
from bench.godel_side import (
    EVENT_TYPE,
    Ledger,
    fallbacks_in_log,
    fresh_ledger,
    godel_env,
    require_producer,
    run_cli,
    settings,
)
from bench.stats import Result, Stat

ARQ_TUNED = ["--poll-delay", "0.005", "--max-jobs", "100"]


async def _fill(cfg: Any, n: int) -> None:
    _, producer_cls = require_producer()
    async with producer_cls(cfg) as p:
        for start in range(0, n, 500):
            await p.publish_many(
                [
                    {"type": EVENT_TYPE, "payload": {"n": i}}
                    for i in range(start, min(n, start + 500))
                ]
            )


def _net_rate(n: int, wall: float, wall_empty: float) -> float:
    if wall <= wall_empty:
        raise BenchError(f"drain of {n} took {wall:.3f}s, no longer than an empty run")
    return n / (wall - wall_empty)


def _godel_rep(
    ctx: Context,
    res: Result,
    n: int,
    walls: list[dict[str, float]],
    ledgers: Callable[[], AbstractContextManager[Ledger]] = fresh_ledger,
) -> float:
    ctx.redis.reset()
    with ledgers() as ledger:
        asyncio.run(_fill(settings(ctx.redis.url, ledger), n))
        check_pending(ctx, n)
        env = godel_env(ctx.redis.url, ledger)
        logs: list[str] = []
        wall = run_cli(["worker", "--burst"], env, logs=logs)
        check_ledger(ledger, total=n, processed=n)  # the exactly-once log really was written
        check_pending(ctx, 0)
        wall_empty = run_cli(["worker", "--burst"], env, logs=logs)
        res.saw_fallbacks(sum(fallbacks_in_log(text) for text in logs))
    walls.append({"wall_s": wall, "empty_wall_s": wall_empty})
    return _net_rate(n, wall, wall_empty)


def arq_processing(ctx: Context, res: Result) -> None:
    """arq's drain figures (defaults and tuned; the better is the peer), measured once per
    run: rows 4 and P4 compare to the same."""

    def measure() -> dict[str, Any]:
        s = ctx.sizes
        scratch = Result("process", "", "")
        figures = {
            "defaults": _peer(ctx, scratch, "arq defaults", "arq", s.process_slow_n, []),
            "tuned": _peer(ctx, scratch, "arq tuned", "arq", s.process_tuned_n, ARQ_TUNED),
        }
        return {"figures": figures, "note": scratch.note, "details": scratch.details}

    got = ctx.once("arq-processing", measure)
    res.note += got["note"]
    res.details.update(got["details"])
    arqs = [(k, v) for k, v in got["figures"].items() if v]
    if arqs:
        which, best = max(arqs, key=lambda kv: kv[1].median)
        res.peers[f"arq ({which})"] = best
        res.details["arq_all"] = {k: v.to_json() for k, v in arqs}
        res.note += "; ".join(f"arq {k} {v.median:,.0f} ev/s" for k, v in arqs) + ". "


def _peer_rates(ctx: Context, peer: str, n: int, extra: list[str]) -> dict[str, Any]:
    net: list[float] = []
    inner: list[float] = []
    for _ in range(ctx.sizes.reps):
        ctx.redis.reset()
        peers.run_peer(peer, ctx.redis.url, "fill", n)
        wall, line = peers.timed_peer(peer, ctx.redis.url, "work", n, extra)
        done = line["reps"][0]["jobs_complete"]
        if done != n:
            raise BenchError(f"{peer} worker completed {done} of {n} jobs")
        wall_empty, _ = peers.timed_peer(peer, ctx.redis.url, "work", 0, extra)
        net.append(_net_rate(n, wall, wall_empty))
        inner.append(float(line["reps"][0]["rate"]))
    ctx.redis.reset()
    return {"net": net, "in_process": inner, "n": n}


def _peer(
    ctx: Context, res: Result, label: str, peer: str, n: int, extra: list[str]
) -> Stat | None:
    ctx.log(f"process: {label}")
    try:
        got = _peer_rates(ctx, peer, n, extra)
    except (peers.PeerUnavailable, BenchError, subprocess.TimeoutExpired) as exc:
        res.note += f"{label} unavailable: {exc}. "
        return None
    res.details[label] = got
    return Stat.of(got["net"], RATE)


def bench_process(ctx: Context) -> list[Result]:
    s = ctx.sizes
    res = Result(
        "process",
        "4 processing: drain no-op events, one worker process (burst)",
        "≥ 2x best arq and ≥ 2x RQ",
        topology="worker",
        ledger="sqlite",
    )
    arq_processing(ctx, res)
    rq = _peer(ctx, res, "rq", "rq", s.process_slow_n, [])
    if rq:
        res.peers["rq SimpleWorker"] = rq
    ctx.log("process: godel")
    walls: list[dict[str, float]] = []
    godel_reps(ctx, res, lambda: _godel_rep(ctx, res, s.process_n, walls))
    res.details["godel_walls"] = walls
    for peer in list(res.peers):
        ratio(res, peer)
    judge(
        res,
        bool(res.ratios) and len(res.ratios) == 2 and all(v >= 2.0 for v in res.ratios.values()),
    )
    return [res]
