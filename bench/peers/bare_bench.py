"""Bare redis-py: the floor of what any Python client can do against the same redis-server.

Modes: `one` = one LPUSH per call (a loop), `pipeline` = non-transactional pipelines of
--batch LPUSH commands, `one-concurrent` = --callers asyncio tasks on one client (its connection
pool), each awaiting one LPUSH per call in a loop, N in all (asyncio client only).
--client sync|async picks redis-py's blocking or asyncio client; the harness reports the faster.
Each pushed value is a small JSON event (Godel itself pushes only 32-character ids).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aredis
from peer_common import emit, parser, rep

KEY = "bench:bare:pending"


def _values(n: int) -> list[bytes]:
    # Serialised up front: the figure is the Redis round trips, not json.dumps.
    return [
        json.dumps({"id": uuid.uuid4().hex, "type": "bench.noop", "payload": {"n": i}}).encode()
        for i in range(n)
    ]


def _sync_rep(url: str, mode: str, values: list[bytes], batch: int) -> float:
    r = redis.Redis.from_url(url)
    r.delete(KEY)
    t0 = time.perf_counter()
    if mode == "one":
        for v in values:
            r.lpush(KEY, v)
    else:
        for start in range(0, len(values), batch):
            pipe = r.pipeline(transaction=False)
            for v in values[start : start + batch]:
                pipe.lpush(KEY, v)
            pipe.execute()
    elapsed = time.perf_counter() - t0
    if r.llen(KEY) != len(values):
        raise SystemExit("bare: LLEN mismatch")
    r.delete(KEY)
    r.close()
    return elapsed


async def _async_rep(url: str, mode: str, values: list[bytes], batch: int) -> float:
    r = aredis.Redis.from_url(url)
    await r.delete(KEY)
    t0 = time.perf_counter()
    if mode == "one":
        for v in values:
            await r.lpush(KEY, v)
    else:
        for start in range(0, len(values), batch):
            pipe = r.pipeline(transaction=False)
            for v in values[start : start + batch]:
                pipe.lpush(KEY, v)
            await pipe.execute()
    elapsed = time.perf_counter() - t0
    if await r.llen(KEY) != len(values):
        raise SystemExit("bare: LLEN mismatch")
    await r.delete(KEY)
    await r.aclose()
    return elapsed


async def _concurrent_rep(url: str, values: list[bytes], callers: int) -> float:
    r = aredis.Redis.from_url(url)
    await r.delete(KEY)
    # Warm: one round of concurrent calls, so the pool holds its connections before the clock.
    await asyncio.gather(*(r.lpush(KEY, b"warm") for _ in range(callers)))

    async def caller(share: list[bytes]) -> None:
        for v in share:
            await r.lpush(KEY, v)

    shares = [values[k::callers] for k in range(callers)]
    t0 = time.perf_counter()
    await asyncio.gather(*(caller(share) for share in shares))
    elapsed = time.perf_counter() - t0
    if await r.llen(KEY) != len(values) + callers:
        raise SystemExit("bare: LLEN mismatch")
    await r.delete(KEY)
    await r.aclose()
    return elapsed


def main() -> None:
    p = parser("bare redis-py LPUSH", ["one", "pipeline", "one-concurrent"])
    p.add_argument("--client", choices=["sync", "async"], default="sync")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--callers", type=int, default=32, help="tasks in one-concurrent")
    a = p.parse_args()
    if a.mode == "one-concurrent" and a.client != "async":
        p.error("one-concurrent runs on the asyncio client only (--client async)")
    reps: list[dict[str, Any]] = []
    for _ in range(a.reps):
        values = _values(a.n)
        if a.mode == "one-concurrent":
            elapsed = asyncio.run(_concurrent_rep(a.redis_url, values, a.callers))
        elif a.client == "sync":
            elapsed = _sync_rep(a.redis_url, a.mode, values, a.batch)
        else:
            elapsed = asyncio.run(_async_rep(a.redis_url, a.mode, values, a.batch))
        reps.append(rep(a.n, elapsed))
    emit("bare-" + a.client, a.mode, redis.__version__, reps, batch=a.batch, callers=a.callers)


if __name__ == "__main__":
    main()
