"""Rows P1-P6: the same rows on a PostgreSQL ledger, the production one, started by the bench
with PostgreSQL's own durable defaults (fsync and synchronous_commit on; not the tests' fast
settings), a fresh database per repetition (per row for the wrk rows), migrated first.

P1, P1b, P2  the Producer: one event per call, 32 concurrent callers, batches of 100
P3a-P3d      wrk: API only, and the default topology (its worker inside) end to end, one
             sequential client, batches of 100 (see rows_serve)
P4           one `godel worker --burst` drains N events (see rows_process)
P6           replay of N events accepted in fallback (see rows_outage)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from bench.common import arq_enqueue, godel_reps, guarded, judge, peer_stat, ratio
from bench.context import Context
from bench.godel_side import Ledger, fresh_pg_ledger
from bench.rows_ingest import (
    _godel_ingest_rep,
    _publish_batches,
    _publish_concurrent,
    _publish_one,
    producer_row,
)
from bench.rows_outage import REPLAY_TARGET, replay_figures, replay_reps
from bench.rows_process import _godel_rep, arq_processing
from bench.rows_serve import PEER, run_rows
from bench.stats import Result, Stat

LABEL = " (PostgreSQL)"
INFO = "information (no target for PostgreSQL)"


def _ledgers(ctx: Context) -> Any:
    @contextlib.contextmanager
    def fresh() -> Iterator[Ledger]:
        with fresh_pg_ledger(ctx.postgres()) as ledger:
            yield ledger

    return fresh


def bench_pg_ingest(ctx: Context) -> list[Result]:
    s = ctx.sizes
    ledgers = _ledgers(ctx)
    c = s.callers
    one = producer_row(Result("pg", f"P1 ingest, one event per call{LABEL}", INFO), "postgresql")
    one.note += "Each call waits for its own durable commit (fsync). "
    conc = producer_row(
        Result("pg", f"P1b ingest, one event per call, {c} concurrent callers{LABEL}", INFO),
        "postgresql",
    )
    batch = producer_row(
        Result("pg", f"P2 ingest, batches of {s.batch_size}{LABEL}", INFO), "postgresql"
    )
    arq = arq_enqueue(ctx)
    if isinstance(arq, Stat):
        one.peers["arq"] = arq
    ctx.once(
        "arq-enqueue-concurrent",
        lambda: peer_stat(
            ctx,
            conc,
            "arq",
            "arq",
            "enqueue-concurrent",
            s.ingest_concurrent_n,
            ["--callers", str(c)],
        ),
    )
    ctx.log("postgresql: producer, one per call")
    n = s.pg_ingest_n
    godel_reps(
        ctx,
        one,
        lambda: _godel_ingest_rep(ctx, one, n, lambda cfg: _publish_one(cfg, n), 1, ledgers),
    )
    ctx.log(f"postgresql: producer, {c} concurrent callers")
    m = s.ingest_concurrent_n
    commits: list[float] = []
    godel_reps(
        ctx,
        conc,
        lambda: _godel_ingest_rep(
            ctx, conc, m, lambda cfg: _publish_concurrent(cfg, m, c, commits), c, ledgers
        ),
    )
    if "arq" not in conc.peers and isinstance(ctx.memo.get("arq-enqueue-concurrent"), Stat):
        conc.peers["arq"] = ctx.memo["arq-enqueue-concurrent"]
    ctx.log("postgresql: producer, batches")
    b = s.pg_batch_n
    godel_reps(
        ctx,
        batch,
        lambda: _godel_ingest_rep(
            ctx, batch, b, lambda cfg: _publish_batches(cfg, b, s.batch_size), 1, ledgers
        ),
    )
    for res in (one, conc, batch):
        for peer in list(res.peers):
            ratio(res, peer)
    return [one, conc, batch]


def _accepted_and_e2e(res: Result) -> bool:
    return res.ratios.get(PEER, 0.0) >= 2.0 and res.details.get("accepted_ratio", 0.0) >= 3.0


def bench_pg_http(ctx: Context) -> list[Result]:
    targets: dict[str, Any] = {
        "api": (
            "pg",
            "P3a",
            f"≥ 3x {PEER} accepted",
            lambda r: r.ratios.get(f"{PEER} (accepted)", 0.0) >= 3.0,
        ),
        "e2e": (
            "pg",
            "P3b",
            f"accepted ≥ 3x and accepted and processed ≥ 2x {PEER}",
            _accepted_and_e2e,
        ),
        "seq": ("pg", "P3c", INFO, None),
        "batch": ("pg", "P3d", INFO, None),
    }
    return list(run_rows(ctx, _ledgers(ctx), LABEL, "postgresql", targets).values())


def bench_pg_process(ctx: Context) -> list[Result]:
    res = Result(
        "pg",
        f"P4 processing: drain no-op events, one worker process (burst){LABEL}",
        "≥ 2x best arq",
        topology="worker",
        ledger="postgresql",
    )
    arq_processing(ctx, res)
    ctx.log("postgresql: godel worker --burst")
    walls: list[dict[str, float]] = []
    ledgers = _ledgers(ctx)
    godel_reps(ctx, res, lambda: _godel_rep(ctx, res, ctx.sizes.pg_process_n, walls, ledgers))
    res.details["godel_walls"] = walls
    for peer in list(res.peers):
        ratio(res, peer)
    judge(res, bool(res.ratios) and all(v >= 2.0 for v in res.ratios.values()))
    return [res]


def bench_pg_replay(ctx: Context) -> list[Result]:
    n = ctx.sizes.pg_replay_n
    res = Result(
        "pg",
        f"P6 replay {n:,} undispatched events into Redis after recovery{LABEL}",
        "≥ 50,000 ev/s",
        topology="api-only",
        ledger="postgresql",
        client=f"python-{ctx.http_client}",
    )

    def run() -> None:
        replay_figures(res, replay_reps(ctx, "postgresql", _ledgers(ctx), n), n)

    guarded(ctx, [res], run)
    judge(res, res.godel is not None and res.godel.median >= REPLAY_TARGET)
    return [res]
