"""Rows 3c and 9a-9c: HTTP load from wrk against `godel serve` as users run it, next to the
FastAPI + arq peer (a FastAPI endpoint calling arq's `enqueue_job`, plus an arq worker
process with poll_delay 5 ms and max_jobs 100), on the same redis-server.

3c  API only (GODEL_WORKERS=0), one event per request, wrk 32 connections: events accepted
9a  the default topology (`godel serve` with its worker inside, SQLite), one event per
    request, wrk 32 connections: events accepted *and processed* per second, from the first
    request until the last accepted event is processed; the peer measured the same way
9b  the default topology, one sequential client (wrk, 1 connection), one event per request,
    processing running: events accepted per second, against arq's direct `enqueue_job`
9c  the default topology, one sequential client, batches of 100, processing running

`run_rows` serves the PostgreSQL rows (rows_pg) too: the same shapes on another ledger.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bench.common import RATE, arq_enqueue, guarded, judge, ratio
from bench.context import Context
from bench.godel_side import GodelServe, Ledger, fresh_ledger
from bench.serve_load import Rep, arq_stack, godel_rep, warm_godel
from bench.stats import Result, Stat

Ledgers = Callable[[], AbstractContextManager[Ledger]]
PEER = "FastAPI + arq"


def _stat(reps: list[Rep], e2e: bool) -> Stat:
    values = [(r.e2e_rate or 0.0) if e2e else r.run.rate for r in reps]
    return Stat.of(values, RATE)


def _wrk_row(
    ctx: Context,
    res: Result,
    ledgers: Ledgers,
    workers: int,
    connections: int,
    per_request: int,
    e2e: bool,
) -> list[Rep]:
    """Every repetition on one `godel serve` (one ledger, growing). With workers inside,
    each repetition also waits until all is processed; res.godel is the accepted rate, or
    with `e2e` the accepted-and-processed rate (the other goes to the note)."""
    reps: list[Rep] = []

    def run() -> None:
        ctx.redis.reset()
        with ledgers() as ledger, GodelServe(ctx.redis.url, ledger, workers=workers) as serve:
            warm_godel(ctx, serve, connections, per_request)
            for _ in range(ctx.sizes.reps):
                reps.append(godel_rep(ctx, serve, connections, per_request, workers > 0))
            res.saw_fallbacks(serve.fallbacks())
        res.godel = _stat(reps, e2e)
        res.details["godel_reps"] = [r.to_json() for r in reps]
        if workers and not e2e:
            done = _stat(reps, e2e=True)
            res.details["godel_e2e"] = done.to_json()
            res.note += f"accepted and processed: {done.median:,.0f} ev/s. "

    guarded(ctx, [res], run)
    return reps


def peer_reps(ctx: Context, connections: int) -> list[Rep] | str:
    """The FastAPI + arq peer under wrk, end to end; once per run and connection count."""

    def measure() -> list[Rep] | str:
        try:
            with (
                tempfile.TemporaryDirectory(prefix="godel-bench-arq-") as tmp,
                arq_stack(ctx, Path(tmp)) as stack,
            ):
                stack.warm(ctx, connections)
                return [stack.rep(ctx, connections, e2e=True) for _ in range(ctx.sizes.reps)]
        except Exception as exc:  # the peer's failure is a note, not a lost row
            return f"{type(exc).__name__}: {exc}"

    got: list[Rep] | str = ctx.once(f"fastapi-arq-{connections}", measure)
    return got


def add_peer(res: Result, got: list[Rep] | str, e2e: bool, label: str = PEER) -> None:
    if isinstance(got, str):
        res.note += f"{label} unavailable: {got}. "
        return
    res.peers[label] = _stat(got, e2e)
    res.details[f"{label} reps"] = [r.to_json() for r in got]


def _accepted_note(res: Result, reps: list[Rep], peer: list[Rep] | str) -> None:
    if reps:
        accepted = Stat.of([r.run.rate for r in reps], RATE)
        res.details["godel_accepted"] = accepted.to_json()
        res.note += f"Godel accepted {accepted.median:,.0f} ev/s"
        if not isinstance(peer, str):
            theirs = Stat.of([r.run.rate for r in peer], RATE).median
            res.details["accepted_ratio"] = accepted.median / theirs
            res.note += f"; {PEER} accepted {theirs:,.0f} ev/s ({accepted.median / theirs:.2f}x)"
        res.note += ". "


def _rows(ctx: Context, label: str, ledger: str) -> dict[str, Result]:
    c = ctx.sizes.wrk_connections
    b = ctx.sizes.batch_size
    names = {
        "api": f"HTTP ingest, one event per request, wrk {c} connections, API only{label}",
        "e2e": f"default godel serve: accepted AND processed, wrk {c} connections{label}",
        "seq": f"default godel serve: one sequential client (wrk), processing running{label}",
        "batch": f"default godel serve: batches of {b}, one sequential client{label}",
    }
    topology = {"api": "api-only", "e2e": "default", "seq": "default", "batch": "default"}
    return {
        key: Result("", name, "", topology=topology[key], ledger=ledger, client="wrk")
        for key, name in names.items()
    }


def run_rows(
    ctx: Context, ledgers: Ledgers, label: str, ledger: str, targets: dict[str, Any]
) -> dict[str, Result]:
    """The four wrk rows on one kind of ledger; `targets` holds each row's id, number and
    target text and the thresholds (see bench_serve and rows_pg.bench_pg_http)."""
    s = ctx.sizes
    c = s.wrk_connections
    rows = _rows(ctx, label, ledger)
    for key, res in rows.items():
        res.id, number, res.target = targets[key][:3]
        res.name = f"{number} {res.name}"
    ctx.log(f"wrk rows{label}: FastAPI + arq peer")
    peer = peer_reps(ctx, c)
    ctx.log(f"wrk rows{label}: godel serve, API only")
    _wrk_row(ctx, rows["api"], ledgers, 0, c, 1, e2e=False)
    add_peer(rows["api"], peer, e2e=False, label=f"{PEER} (accepted)")
    ctx.log(f"wrk rows{label}: default godel serve, {c} connections")
    e2e = _wrk_row(ctx, rows["e2e"], ledgers, 1, c, 1, e2e=True)
    add_peer(rows["e2e"], peer, e2e=True)
    _accepted_note(rows["e2e"], e2e, peer)
    ctx.log(f"wrk rows{label}: default godel serve, one sequential client")
    _wrk_row(ctx, rows["seq"], ledgers, 1, 1, 1, e2e=False)
    arq = arq_enqueue(ctx)
    if isinstance(arq, Stat):
        rows["seq"].peers["arq enqueue_job (direct)"] = arq
    else:
        rows["seq"].note += f"arq unavailable: {arq}. "
    ctx.log(f"wrk rows{label}: default godel serve, batches of {s.batch_size}")
    _wrk_row(ctx, rows["batch"], ledgers, 1, 1, s.batch_size, e2e=False)
    for res in rows.values():
        for peer_name in list(res.peers):
            ratio(res, peer_name)
    for key, res in rows.items():
        check = targets[key][3]
        if check is not None:  # None: information only
            judge(res, check(res))
    return rows


def _first_ratio(res: Result) -> float:
    return next(iter(res.ratios.values()), 0.0)


def bench_serve(ctx: Context) -> list[Result]:
    b = ctx.sizes.batch_size
    targets: dict[str, Any] = {
        "api": ("http", "3c", "information (the peer's accepted rate)", None),
        "e2e": (
            "serve",
            "9a",
            f"≥ 2x {PEER} (accepted and processed)",
            lambda r: r.ratios.get(PEER, 0.0) >= 2.0,
        ),
        "seq": ("serve", "9b", "≥ arq enqueue_job rate", lambda r: _first_ratio(r) >= 1.0),
        "batch": (
            "serve",
            "9c",
            f"≥ 20,000 ev/s accepted (batches of {b})",
            lambda r: r.godel is not None and r.godel.median >= 20_000,
        ),
    }
    return list(run_rows(ctx, fresh_ledger, "", "sqlite", targets).values())
