"""Rows 11 and 12: what the other rows do not show.

11  the Link's false positives: transitions into fallback seen during every row that keeps
    Redis up (a busy host must not look like a dead Redis); must be 0
12  GET /health on a ledger of N rows (SQLite, then PostgreSQL), almost all processed:
    its event counts come from maintained counters and the few unfinished rows
    (godel.store.counts), not from a GROUP BY over the ledger; the GROUP BY it used to run
    (`ledger.count_by_status`, still the exact scan for tests) is timed beside it
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx

from bench.common import guarded, judge
from bench.context import Context
from bench.godel_side import ADMIN_TOKEN, GodelServe, Ledger, fresh_ledger, fresh_pg_ledger
from bench.stats import Result, Stat

CALLS = 20
OPEN_ROWS = 200  # left unprocessed, as a ledger whose workers keep up has
HEALTH_TARGET_S = 0.010


def link_row(results: list[Result]) -> Result | None:
    """Row 11 from the `fallbacks` every watched row recorded."""
    watched = [r for r in results if r.fallbacks is not None]
    if not watched:
        return None
    total = sum(r.fallbacks or 0 for r in watched)
    res = Result(
        "link",
        "11 link: transitions into fallback during rows that keep Redis up",
        "0 (no spurious fallback)",
    )
    res.godel = Stat.of([float(total)], "transitions")
    res.details["per_row"] = {r.name: r.fallbacks for r in watched}
    res.note += f"{len(watched)} rows watched (every Godel process of each: its /metrics, "
    res.note += "its log, or this process's registry); rows that kill Redis are not. "
    if total:
        res.note += "With: " + ", ".join(r.name for r in watched if r.fallbacks) + ". "
    judge(res, total == 0)
    return res


async def _fill(url: str, n: int) -> None:
    from godel.event import Event
    from godel.store import inserts, ledger
    from godel.store.database import Database
    from godel.store.migrate import upgrade

    db = Database(url)
    try:
        upgrade(db)
        step = 5000
        for start in range(0, n, step):
            size = min(step, n - start)
            batch = [
                (Event(id=f"h{start + i:09d}", type="bench.noop", payload_json='{"n":1}'), True)
                for i in range(size)
            ]
            await inserts.commit_events(db, batch)
            ids = [ev.id for ev, _ in batch if int(ev.id[1:]) < n - OPEN_ROWS]
            for k in range(0, len(ids), 1000):
                await db.write(ledger.mark_processed, ids[k : k + 1000], time.time(), None, "b")
        if not db.is_sqlite:  # as autovacuum does for a ledger in service, within a minute
            await db.write(lambda conn: conn.exec_driver_sql("ANALYZE events"))
    finally:
        db.close()


def _timed(url: str, fn: Callable[[Any], Any]) -> float:
    from godel.store.database import Database

    db = Database(url)

    async def run() -> float:
        await db.read(fn)
        times = []
        for _ in range(CALLS):
            t0 = time.perf_counter()
            await db.read(fn)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    try:
        return asyncio.run(run())
    finally:
        db.close()


def _health_s(serve: GodelServe) -> float:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=serve.base_url, headers=headers, timeout=30) as client:
        client.get("/health").raise_for_status()
        times = []
        for _ in range(CALLS):
            t0 = time.perf_counter()
            client.get("/health").raise_for_status()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _one(
    ctx: Context, name: str, kind: str, ledgers: Callable[[], AbstractContextManager[Ledger]]
) -> Result:
    n = ctx.sizes.health_rows
    res = Result(
        "health",
        f"{name} GET /health with {n:,} events in the ledger ({kind})",
        f"≤ {HEALTH_TARGET_S * 1000:.0f} ms, flat in the ledger's size",
        topology="api-only",
        ledger=kind,
        client="python-httpx",
    )

    def run() -> None:
        from godel.store import counts, ledger

        with ledgers() as led:
            ctx.log(f"health: filling a {kind} ledger with {n:,} events")
            asyncio.run(_fill(led.url, n))
            if led.counts().get("processed") != n - OPEN_ROWS:
                raise RuntimeError(f"ledger fill: {led.counts()}")
            scan = _timed(led.url, ledger.count_by_status)
            fast = _timed(led.url, counts.by_status)
            with GodelServe(ctx.redis.url, led) as serve:
                got = [_health_s(serve) for _ in range(ctx.sizes.reps)]
                res.saw_fallbacks(serve.fallbacks())
        res.godel = Stat.of([t * 1000 for t in got], "ms")
        res.peers["GROUP BY count (before)"] = Stat.of([scan * 1000], "ms")
        res.details.update(group_by_s=scan, counters_s=fast, rows=n, unfinished=OPEN_ROWS)
        res.note += (
            f"the counts alone: {fast * 1000:.2f} ms (counters + {OPEN_ROWS} unfinished rows) "
            f"against {scan * 1000:.1f} ms for the GROUP BY /health ran before. "
        )

    guarded(ctx, [res], run)
    judge(res, res.godel is not None and res.godel.median <= HEALTH_TARGET_S * 1000)
    return res


def bench_health(ctx: Context) -> list[Result]:
    sqlite = _one(ctx, "12a", "sqlite", fresh_ledger)
    postgres = _one(ctx, "12b", "postgresql", lambda: fresh_pg_ledger(ctx.postgres()))
    return [sqlite, postgres]
