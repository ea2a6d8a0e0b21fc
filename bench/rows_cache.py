"""Row 7b: the in-memory cache (used while Redis is down) against its byte bound.

The LRU counts a cost per entry; this row fills it well past its bound with agent-shaped
entries and measures what the entries really hold in memory (tracemalloc), so the bound is
checked in real bytes, not only in the LRU's own accounting.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import orjson

from bench.common import guarded, judge
from bench.context import Context
from bench.godel_side import GodelUnavailable
from bench.stats import Result, Stat

MAX_BYTES = 4 * 1024 * 1024


def _agent(i: int) -> bytes:
    # The shape of an agents row as the API caches it (see godel.agents.agent_dict).
    return orjson.dumps(
        {
            "id": f"agent-{i:08d}",
            "name": f"planner-{i}",
            "status": "running",
            "metadata": {"team": "search", "model": "m-large", "region": "eu-1"},
            "created_at": 1.7e9 + i,
            "updated_at": 1.7e9 + i,
            "last_event_id": f"{i:032x}",
            "last_event_type": "agent.heartbeat",
            "last_seen_at": 1.7e9 + i,
            "events_applied": i,
        }
    )


def _fill(max_entries: int, max_bytes: int, count: int) -> dict[str, float]:
    try:
        from godel.fastlane.cache import MemoryLRU
    except Exception as exc:
        raise GodelUnavailable(f"godel.cache.MemoryLRU not importable: {exc}") from exc
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        lru: Any = MemoryLRU(max_entries, max_bytes)
        for i in range(count):
            lru.set(f"godel:cache:agent:agent-{i:08d}", _agent(i), 300)
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    entries = len(lru)
    return {
        "entries": entries,
        "real_bytes": real,
        "accounted_bytes": lru.bytes,
        "max_bytes": max_bytes,
        "max_entries": max_entries,
        "real_per_entry": real / entries,
        "accounted_per_entry": lru.bytes / entries,
    }


def bench_cache(ctx: Context) -> list[Result]:
    res = Result(
        "memory",
        f"7b in-memory cache: real bytes/entry ({MAX_BYTES // 2**20} MiB bound)",
        "real bytes ≤ max_bytes when full",
    )
    runs: list[dict[str, float]] = []

    def run() -> None:
        for _ in range(ctx.sizes.reps):
            # Bounded by bytes only (entries unbounded), filled far past the bound.
            runs.append(_fill(10**9, MAX_BYTES, ctx.sizes.cache_fill))
        res.godel = Stat.of([r["real_per_entry"] for r in runs], "B/entry")
        res.peers["accounted by LRU"] = Stat.of([r["accounted_per_entry"] for r in runs], "B/entry")
        res.ratios["accounted by LRU"] = res.godel.median / res.peers["accounted by LRU"].median
        worst = max(r["real_bytes"] for r in runs)
        res.note += (
            f"{runs[0]['entries']:,.0f} entries held; real {worst / 2**20:.2f} MiB "
            f"vs bound {MAX_BYTES / 2**20:.0f} MiB. "
        )
        res.details["runs"] = runs

    guarded(ctx, [res], run)
    judge(res, bool(runs) and max(r["real_bytes"] for r in runs) <= MAX_BYTES)
    return [res]
