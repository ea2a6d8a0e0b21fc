"""RQ peer (runs in bench/.venvs/rq).

Modes: `enqueue` = timed loop of Queue.enqueue, one job per call; `enqueue-concurrent` = --callers
threads (RQ has no asyncio API) sharing one Queue and connection pool, each calling Queue.enqueue
in a loop, N jobs in all; `fill` = enqueue N jobs untimed; `work` = one SimpleWorker (no fork per
job: RQ's fastest worker) drains the queue in burst mode.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import rq
from peer_common import emit, parser, rep
from redis import Redis
from rq import Queue, SimpleWorker

QUEUE = "bench"
FUNC = "peer_tasks.noop_sync"


def _enqueue(url: str, n: int) -> float:
    q = Queue(QUEUE, connection=Redis.from_url(url))
    q.enqueue(FUNC, {"n": -1})  # warm the connection
    t0 = time.perf_counter()
    for i in range(n):
        q.enqueue(FUNC, {"n": i})
    return time.perf_counter() - t0


def _enqueue_concurrent(url: str, n: int, callers: int) -> float:
    q = Queue(QUEUE, connection=Redis.from_url(url))
    queued = q.count
    start = threading.Barrier(callers + 1)
    errors: list[BaseException] = []

    def caller(k: int) -> None:
        try:
            # Warm: a first call in every thread, so the pool has connections before the clock.
            q.enqueue(FUNC, {"n": -1 - k})
        except BaseException as exc:
            errors.append(exc)
        start.wait()
        if errors:
            return
        try:
            for i in range(k, n, callers):
                q.enqueue(FUNC, {"n": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"rq: {len(errors)} callers failed, first: {errors[0]!r}")
    added = q.count - queued
    if added != n + callers:
        raise SystemExit(f"rq: {added} jobs queued, expected {n + callers}")
    return elapsed


def _fill(url: str, n: int) -> float:
    q = Queue(QUEUE, connection=Redis.from_url(url))
    t0 = time.perf_counter()
    with q.connection.pipeline() as pipe:
        jobs = [Queue.prepare_data(FUNC, args=({"n": i},)) for i in range(n)]
        q.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()
    return time.perf_counter() - t0


def _work(url: str) -> tuple[float, int]:
    conn = Redis.from_url(url)
    q = Queue(QUEUE, connection=conn)
    before = q.count
    worker = SimpleWorker([q], connection=conn)
    t0 = time.perf_counter()
    # WARNING: RQ logs two INFO lines per job by default; silence them as arq's are.
    worker.work(burst=True, logging_level="WARNING")
    elapsed = time.perf_counter() - t0
    return elapsed, before - q.count


def main() -> None:
    p = parser("RQ peer", ["enqueue", "enqueue-concurrent", "fill", "work"])
    p.add_argument("--callers", type=int, default=32, help="threads in enqueue-concurrent")
    a = p.parse_args()
    reps: list[dict[str, Any]] = []
    for _ in range(a.reps):
        if a.mode == "enqueue":
            reps.append(rep(a.n, _enqueue(a.redis_url, a.n)))
        elif a.mode == "enqueue-concurrent":
            elapsed = _enqueue_concurrent(a.redis_url, a.n, a.callers)
            reps.append(rep(a.n, elapsed, callers=a.callers))
        elif a.mode == "fill":
            reps.append(rep(a.n, _fill(a.redis_url, a.n)))
        else:
            elapsed, done = _work(a.redis_url)
            reps.append(rep(done, elapsed, jobs_complete=done))
    emit("rq", a.mode, rq.__version__, reps)


if __name__ == "__main__":
    main()
