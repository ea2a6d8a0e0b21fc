"""RQ peer (runs in bench/.venvs/rq).

Modes: `enqueue` = timed loop of Queue.enqueue, one job per call; `fill` = enqueue N jobs untimed;
`work` = one SimpleWorker (no fork per job: RQ's fastest worker) drains the queue in burst mode.
"""

from __future__ import annotations

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
    a = parser("RQ peer", ["enqueue", "fill", "work"]).parse_args()
    reps: list[dict[str, Any]] = []
    for _ in range(a.reps):
        if a.mode == "enqueue":
            reps.append(rep(a.n, _enqueue(a.redis_url, a.n)))
        elif a.mode == "fill":
            reps.append(rep(a.n, _fill(a.redis_url, a.n)))
        else:
            elapsed, done = _work(a.redis_url)
            reps.append(rep(done, elapsed, jobs_complete=done))
    emit("rq", a.mode, rq.__version__, reps)


if __name__ == "__main__":
    main()
