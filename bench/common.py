"""Pieces the row modules share: peer figures as Stats, Godel repetitions, ledger checks."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support.process import free_port

from bench import peers
from bench.context import Context
from bench.godel_side import GodelUnavailable, Ledger
from bench.stats import Result, Stat, Status, rates

RATE = "ev/s"
PENDING = "godel:queue:pending"


class BenchError(RuntimeError):
    """A benchmark saw something wrong (lost events, failed requests); the row says what."""


def peer_stat(
    ctx: Context,
    res: Result,
    label: str,
    peer: str,
    mode: str,
    n: int,
    extra: list[str] | None = None,
) -> Stat | None:
    """Run a peer's timed mode for all repetitions; on failure note it on the row."""
    try:
        line = peers.run_peer(peer, ctx.redis.url, mode, n, ctx.sizes.reps, extra)
    except (peers.PeerUnavailable, subprocess.TimeoutExpired) as exc:
        res.note += f"{label} unavailable: {exc}. "
        return None
    finally:
        ctx.redis.reset()
    stat = Stat.of(rates(line["reps"]), RATE)
    res.peers[label] = stat
    return stat


def arq_enqueue(ctx: Context) -> Stat | str:
    """arq's one-per-call enqueue rate, measured once per run (rows 1 and 3 compare to it)."""

    def measure() -> Stat | str:
        try:
            line = peers.run_peer(
                "arq", ctx.redis.url, "enqueue", ctx.sizes.ingest_n, ctx.sizes.reps
            )
        except (peers.PeerUnavailable, subprocess.TimeoutExpired) as exc:
            return str(exc)
        finally:
            ctx.redis.reset()
        return Stat.of(rates(line["reps"]), RATE)

    result: Stat | str = ctx.once("arq-enqueue", measure)
    return result


def guarded(ctx: Context, results: list[Result], fn: Callable[[], None]) -> None:
    """Run the Godel side of some rows; unavailability and failures become the rows' status and
    note instead of an exception (a failing Godel must not stop the other rows)."""
    try:
        fn()
    except GodelUnavailable as exc:
        for res in results:
            res.status, res.godel = Status.UNAVAILABLE, None
            res.note += f"godel unavailable: {exc}. "
    except Exception as exc:
        for res in results:
            res.status, res.godel = Status.ERROR, None
            res.note += f"godel failed: {type(exc).__name__}: {exc}. "
    finally:
        ctx.redis.reset()


def godel_reps(ctx: Context, res: Result, one_rep: Callable[[], float], unit: str = RATE) -> None:
    """Run one Godel repetition ctx.sizes.reps times into res.godel (guarded)."""

    def run() -> None:
        res.godel = Stat.of([one_rep() for _ in range(ctx.sizes.reps)], unit)

    guarded(ctx, [res], run)


def registry_fallbacks() -> float:
    """Link transitions into fallback so far in this process (an in-process Producer's)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("godel_redis_fallback_transitions_total", {"to": "fallback"})
    return value or 0.0


def check_ledger(
    ledger: Ledger, total: int, undispatched: int | None = None, processed: int | None = None
) -> dict[str, int]:
    counts = ledger.counts()
    if counts.get("total") != total:
        raise BenchError(f"ledger holds {counts.get('total')} events, expected {total}")
    if undispatched is not None and counts.get("undispatched") != undispatched:
        raise BenchError(
            f"ledger: {counts.get('undispatched')} undispatched, expected {undispatched}"
        )
    if processed is not None and counts.get("processed", 0) != processed:
        raise BenchError(f"ledger: {counts.get('processed', 0)} processed, expected {processed}")
    return counts


def check_pending(ctx: Context, expected: int) -> None:
    with contextlib.closing(ctx.redis.client()) as r:
        n = int(r.llen(PENDING))
    if n != expected:
        raise BenchError(f"{PENDING} holds {n} ids, expected {expected}")


def ratio(res: Result, peer: str) -> float | None:
    if res.godel is None or peer not in res.peers or res.peers[peer].median <= 0:
        return None
    value = res.godel.median / res.peers[peer].median
    res.ratios[peer] = value
    return value


def judge(res: Result, ok: bool) -> None:
    """Set pass/miss unless the row is already unavailable or in error."""
    if res.status in (Status.UNAVAILABLE, Status.ERROR) or res.godel is None:
        if res.status is Status.INFO:
            res.status = Status.UNAVAILABLE
        return
    res.status = Status.PASS if ok else Status.MISS


@contextlib.contextmanager
def null_server() -> Iterator[str]:
    """A do-nothing HTTP server (the client's ceiling); yields its base URL."""
    port = free_port()
    script = Path(__file__).with_name("null_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise BenchError("null server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
