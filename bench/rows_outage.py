"""Rows 5-7a: Redis dies under a running `godel serve`.

5a  ingest rate with Redis down (ledger only) against the connected rate, same process
5b  latency of the first answer after redis-server is SIGKILLed mid-stream; failed requests
6   replay: time from Redis answering again until every undispatched event is in Redis
7a  RSS of the serve process before and after N events accepted in fallback

Each repetition gets its own redis-server, ledger and serve process, since it kills Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until

from bench import http_load
from bench.common import (
    PENDING,
    RATE,
    BenchError,
    check_ledger,
    guarded,
    judge,
)
from bench.context import Context, own_redis
from bench.godel_side import GodelServe, Ledger, fresh_ledger
from bench.stats import Result, Stat

MIB = 1024 * 1024
REPLAY_TARGET = 50_000  # ev/s (issue 11; it was 20,000)


@contextlib.contextmanager
def _serve_with_own_redis(
    ledgers: Callable[[], AbstractContextManager[Ledger]] = fresh_ledger,
) -> Iterator[tuple[RedisServer, GodelServe]]:
    with own_redis() as redis, ledgers() as ledger, GodelServe(redis.url, ledger) as serve:
        yield redis, serve


def _kill(redis: RedisServer) -> float:
    """SIGKILL redis-server (an outage, not a shutdown); returns the time of the kill."""
    killed_at = time.monotonic()
    redis.kill9()
    return killed_at


def _measure(
    ctx: Context, url: str, body: Callable[[int], bytes], per: int, requests: int
) -> tuple[float, int, int]:
    """(rate, events accepted including warm-up, failed requests)."""
    rate, records, warm = asyncio.run(
        http_load.measure(ctx.http_client, url, body, per, ctx.sizes.concurrency, requests)
    )
    failed = sum(1 for r in records if not http_load.ok(r))
    return rate, warm + http_load.accepted(records), failed


async def _kill_stream(
    ctx: Context, url: str, redis: RedisServer
) -> tuple[float, list[http_load.Record], int]:
    """One-per-request load for 2 windows; redis-server is SIGKILLed between them.
    Returns (kill time, records, events accepted in the warm-up)."""
    n, window_s = ctx.sizes.concurrency, ctx.sizes.kill_window_s
    async with http_load.connections(ctx.http_client, url, n) as conns:
        warm = await http_load.load(conns, http_load.one_body, 1, count=n)
        until = time.monotonic() + 2 * window_s
        stream = asyncio.ensure_future(http_load.load(conns, http_load.one_body, 1, until=until))
        await asyncio.sleep(window_s)
        killed_at = _kill(redis)
        records = await stream
    return killed_at, records, http_load.accepted(warm)


def _kill_figures(killed_at: float, records: list[http_load.Record]) -> dict[str, float]:
    after = [r for r in records if r.start >= killed_at and http_load.ok(r)]
    if not after:
        raise BenchError("no request succeeded after redis-server was killed")
    overlapping = [r for r in records if r.end >= killed_at]
    return {
        "first_answer_s": min(r.end for r in after) - killed_at,
        "max_latency_after_kill_s": max(r.end - r.start for r in overlapping),
        "failed": float(sum(1 for r in records if not http_load.ok(r))),
        "requests": float(len(records)),
    }


def _fallback_rep(ctx: Context, out: dict[str, list[Any]]) -> None:
    s = ctx.sizes
    one, batch = http_load.one_body, http_load.batch_body(s.batch_size)
    with _serve_with_own_redis() as (redis, serve):
        url = serve.base_url + "/api/v1/events"
        total = failed = 0
        rates: dict[str, float] = {}
        for phase in ("connected", "fallback"):
            if phase == "fallback":
                killed_at, records, warm = asyncio.run(_kill_stream(ctx, url, redis))
                out["kill"].append(_kill_figures(killed_at, records))
                total += warm + http_load.accepted(records)
                state = serve.health().get("state")
                if state != "fallback":
                    raise BenchError(f"/health says state={state!r} after the kill")
            for name, body, per, requests in (
                ("one", one, 1, s.fallback_one_requests),
                ("batch", batch, s.batch_size, s.fallback_batch_requests),
            ):
                rate, accepted, bad = _measure(ctx, url, body, per, requests)
                rates[f"{name}_{phase}"] = rate
                total += accepted
                failed += bad
        out["rates"].append(rates)
        out["failed"].append(failed)
        check_ledger(serve.ledger, total=total)


def bench_fallback(ctx: Context) -> list[Result]:
    rate_row = Result(
        "fallback",
        f"5a fallback ingest (HTTP, batches of {ctx.sizes.batch_size})",
        "≥ 0.8x connected rate",
        **_topology(ctx),
    )
    kill_row = Result(
        "fallback",
        "5b first answer after redis-server is killed mid-stream",
        "≤ 0.5 s, zero failed requests",
        **_topology(ctx),
    )
    out: dict[str, list[Any]] = {"rates": [], "kill": [], "failed": []}

    def run() -> None:
        for _ in range(ctx.sizes.reps):
            ctx.log("fallback: repetition")
            _fallback_rep(ctx, out)
        rates = out["rates"]
        rate_row.godel = Stat.of([r["batch_fallback"] for r in rates], RATE)
        rate_row.peers["godel connected"] = Stat.of([r["batch_connected"] for r in rates], RATE)
        one_ratio = Stat.of([r["one_fallback"] / r["one_connected"] for r in rates], "x")
        rate_row.details["one_per_request"] = {
            "fallback": Stat.of([r["one_fallback"] for r in rates], RATE).to_json(),
            "connected": Stat.of([r["one_connected"] for r in rates], RATE).to_json(),
            "ratio": one_ratio.to_json(),
        }
        rate_row.note += f"one per request: fallback/connected {one_ratio.median:.2f}x. "
        kills = out["kill"]
        kill_row.godel = Stat.of([k["first_answer_s"] for k in kills], "s")
        kill_row.peers["max latency after kill"] = Stat.of(
            [k["max_latency_after_kill_s"] for k in kills], "s"
        )
        kill_row.details["kills"] = kills

    guarded(ctx, [rate_row, kill_row], run)
    if rate_row.godel is not None:
        value = rate_row.godel.median / rate_row.peers["godel connected"].median
        rate_row.ratios["godel connected"] = value
        judge(
            rate_row,
            value >= 0.8 and min(rate_row.details["one_per_request"]["ratio"]["values"]) > 0,
        )
    failed = sum(out["failed"]) + sum(int(k["failed"]) for k in out["kill"])
    if failed:
        kill_row.note += f"{failed} failed requests. "
    judge(kill_row, kill_row.godel is not None and kill_row.godel.median <= 0.5 and not failed)
    return [rate_row, kill_row]


def _replay_rep(
    ctx: Context,
    out: dict[str, list[float]],
    ledgers: Callable[[], AbstractContextManager[Ledger]] = fresh_ledger,
    n: int | None = None,
) -> None:
    s = ctx.sizes
    batch = http_load.batch_body(s.batch_size)
    with _serve_with_own_redis(ledgers) as (redis, serve):
        url = serve.base_url + "/api/v1/events"
        _kill(redis)  # before any event: every event below is accepted in fallback
        # Requests: a warm-up phase (allocator and connections settle before the first RSS
        # reading), then the measured phase; each _measure adds `concurrency` warm-up requests.
        requests = (n or s.replay_n) // s.batch_size
        warm_phase = max(s.concurrency, requests // 10)
        _, total, failed = _measure(ctx, url, batch, s.batch_size, warm_phase - s.concurrency)
        if serve.health().get("state") != "fallback":
            raise BenchError("serve is not in fallback after redis-server was killed")
        rss_before = serve.rss()
        main_phase = requests - warm_phase - s.concurrency
        rate, accepted, bad = _measure(ctx, url, batch, s.batch_size, main_phase)
        rss_after = serve.rss()
        total += accepted
        if failed or bad:
            raise BenchError(f"{failed + bad} requests failed in fallback")
        check_ledger(serve.ledger, total=total, undispatched=total)
        redis.restart(keep_data=False)
        up_at = redis.up_since  # PING first answered: the probe may start replaying now
        answer = serve.recover()
        with redis.client() as client:
            done_at = wait_until(
                lambda: int(client.llen(PENDING)) >= total,
                600,
                f"{total} events in {PENDING}",
                interval_s=0.005,
            )
        check_ledger(serve.ledger, total=total, undispatched=0)
    out["replay_rate"].append(total / (done_at - up_at))
    out["replay_s"].append(done_at - up_at)
    out["events"].append(total)
    out["fallback_ingest_rate"].append(rate)
    out["rss_before"].append(rss_before / MIB)
    out["rss_growth"].append((rss_after - rss_before) / MIB)
    out["bytes_per_event"].append((rss_after - rss_before) / accepted)
    out.setdefault("recover_answers", []).append(answer)  # type: ignore[arg-type]


REPLAY_FIGURES = (
    "replay_rate",
    "replay_s",
    "events",
    "fallback_ingest_rate",
    "rss_before",
    "rss_growth",
    "bytes_per_event",
)


def replay_reps(
    ctx: Context,
    label: str,
    ledgers: Callable[[], AbstractContextManager[Ledger]] = fresh_ledger,
    n: int | None = None,
) -> dict[str, list[float]]:
    """The repetitions of row 6 (P6 on PostgreSQL): each figure of each repetition."""
    out: dict[str, list[float]] = {k: [] for k in REPLAY_FIGURES}
    for _ in range(ctx.sizes.reps):
        ctx.log(f"{label}: replay repetition")
        _replay_rep(ctx, out, ledgers, n)
    return out


def replay_figures(res: Result, out: dict[str, list[float]], n: int) -> None:
    """Row 6's (and P6's) figure, details and note from `replay_reps`."""
    res.godel = Stat.of(out["replay_rate"], RATE)
    res.details = {k: out[k] for k in ("replay_s", "events", "fallback_ingest_rate")}
    res.details["recover_answers"] = out.get("recover_answers", [])
    t100k = 100_000 / res.godel.median
    res.note += (
        f"{statistics_median(out['replay_s']):.2f} s for {n:,}; projected {t100k:.2f} s for 100k. "
    )


def bench_replay(ctx: Context) -> list[Result]:
    n = ctx.sizes.replay_n
    replay = Result(
        "replay",
        f"6 replay {n:,} undispatched events into Redis after recovery",
        "≥ 50,000 ev/s (100k in ≤ 2 s)",
        **_topology(ctx),
    )
    memory = Result(
        "memory",
        f"7a RSS growth of godel serve over {n:,} events in fallback",
        "flat: ≤ 16 MiB growth",
        **_topology(ctx),
    )

    def run() -> None:
        out = replay_reps(ctx, "replay")
        replay_figures(replay, out, n)
        memory.godel = Stat.of(out["rss_growth"], "MiB")
        memory.peers["RSS before"] = Stat.of(out["rss_before"], "MiB")
        memory.note += f"{statistics_median(out['bytes_per_event']):.0f} B/event. "

    guarded(ctx, [replay, memory], run)
    judge(replay, replay.godel is not None and replay.godel.median >= REPLAY_TARGET)
    judge(memory, memory.godel is not None and memory.godel.median <= 16)
    return [replay, memory]


def _topology(ctx: Context, ledger: str = "sqlite") -> dict[str, str]:
    return {"topology": "api-only", "ledger": ledger, "client": f"python-{ctx.http_client}"}


def statistics_median(values: list[float]) -> float:
    return Stat.of(values, "").median
