"""arq peer (runs in bench/.venvs/arq, because arq pins redis<6).

Modes: `enqueue` = timed loop of enqueue_job, one job per call; `enqueue-concurrent` = --callers
asyncio tasks on one pool, each awaiting enqueue_job in a loop, N jobs in all; `fill` = enqueue N
jobs untimed (setup for a drain); `work` = one Worker in burst mode drains the queue, then exits.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import arq
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import default_queue_name
from arq.worker import Worker
from peer_common import emit, parser, rep
from peer_tasks import noop


async def _enqueue(url: str, n: int) -> float:
    pool = await create_pool(RedisSettings.from_dsn(url))
    await pool.enqueue_job("noop", {"n": -1})  # warm the connection
    t0 = time.perf_counter()
    for i in range(n):
        await pool.enqueue_job("noop", {"n": i})
    elapsed = time.perf_counter() - t0
    await pool.aclose()
    return elapsed


async def _enqueue_concurrent(url: str, n: int, callers: int) -> float:
    pool = await create_pool(RedisSettings.from_dsn(url))
    queued = await pool.zcard(default_queue_name)
    # Warm: one round of concurrent calls, so the pool holds its connections before the clock.
    await asyncio.gather(*(pool.enqueue_job("noop", {"n": -1 - k}) for k in range(callers)))

    async def caller(k: int) -> None:
        for i in range(k, n, callers):
            await pool.enqueue_job("noop", {"n": i})

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    elapsed = time.perf_counter() - t0
    added = await pool.zcard(default_queue_name) - queued
    await pool.aclose()
    if added != n + callers:
        raise SystemExit(f"arq: {added} jobs queued, expected {n + callers}")
    return elapsed


async def _fill(url: str, n: int) -> float:
    pool = await create_pool(RedisSettings.from_dsn(url))
    t0 = time.perf_counter()
    # Concurrent enqueues only to make setup quick; the drain is what is measured.
    for start in range(0, n, 200):
        await asyncio.gather(
            *(pool.enqueue_job("noop", {"n": i}) for i in range(start, min(n, start + 200)))
        )
    elapsed = time.perf_counter() - t0
    await pool.aclose()
    return elapsed


def _work(url: str, poll_delay: float | None, max_jobs: int | None) -> tuple[float, int]:
    kwargs: dict[str, Any] = {}
    if poll_delay is not None:
        kwargs["poll_delay"] = poll_delay
    if max_jobs is not None:
        kwargs["max_jobs"] = max_jobs
    worker = Worker(
        functions=[noop],
        redis_settings=RedisSettings.from_dsn(url),
        burst=True,
        handle_signals=False,
        **kwargs,
    )
    t0 = time.perf_counter()
    worker.run()
    return time.perf_counter() - t0, worker.jobs_complete


def main() -> None:
    p = parser("arq peer", ["enqueue", "enqueue-concurrent", "fill", "work"])
    p.add_argument("--callers", type=int, default=32, help="tasks in enqueue-concurrent")
    p.add_argument("--poll-delay", type=float, default=None)
    p.add_argument("--max-jobs", type=int, default=None)
    a = p.parse_args()
    reps: list[dict[str, Any]] = []
    for _ in range(a.reps):
        if a.mode == "enqueue":
            reps.append(rep(a.n, asyncio.run(_enqueue(a.redis_url, a.n))))
        elif a.mode == "enqueue-concurrent":
            elapsed = asyncio.run(_enqueue_concurrent(a.redis_url, a.n, a.callers))
            reps.append(rep(a.n, elapsed, callers=a.callers))
        elif a.mode == "fill":
            reps.append(rep(a.n, asyncio.run(_fill(a.redis_url, a.n))))
        else:
            elapsed, done = _work(a.redis_url, a.poll_delay, a.max_jobs)
            reps.append(rep(done, elapsed, jobs_complete=done))
    emit("arq", a.mode, arq.VERSION, reps, poll_delay=a.poll_delay, max_jobs=a.max_jobs)


if __name__ == "__main__":
    main()
