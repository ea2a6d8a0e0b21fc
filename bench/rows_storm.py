"""Rows 10a-10c: do the other agents keep their latency while one agent storms ingest?

The default `godel serve` (worker inside, SQLite) takes a probe: other agents, open loop
at a fixed rate, one event per request (bench/storm_load.py). Each repetition runs the
probe twice on the same serve: alone, then while one agent storms on several wrk
connections. Each storm is a fresh agent id, so it starts with a full bucket; the probe's
clock starts `storm_lead_s` after the storm, and with limits on not before the storming
agent was first refused: the window measures the limit at work, not the burst it grants
first (which looks like 10c, by design).

10a  the probe alone, default limits: its p99 (p50 and max in the note)
10b  the probe under the storm, default limits (GODEL_AGENT_RATE_PER_S 1000,
     GODEL_AGENT_BURST 5000): p99 and p50 against 10a's
10c  the same storm on a serve with GODEL_AGENT_RATE_PER_S=0 (limits off), against the
     probe alone on that serve

After every window the worker drains and the ledger must hold every accepted event (and at
most one more per connection that was mid-request when wrk stopped).
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import storm_load
from bench.common import BenchError, guarded, judge
from bench.context import Context
from bench.godel_side import GodelServe, fresh_ledger
from bench.serve_load import godel_drained, godel_stored
from bench.stats import Result, Stat
from bench.storm_load import ProbeRecord, StormPhase, StormRun, Watch

MS = "ms"
TARGET = "information: p50 and p99 against the probe alone on the same serve"
# 10b's target: under the default limits other agents keep their latency, within the noise
# of a 2-core machine that also runs the storm's wrk and the probe.
ON_P50_MAX = 2.0
ON_P99_MAX = 5.0
SHARED_CORES = (
    "The load generators (the probe in this process, wrk) share the machine's cores with "
    "godel serve and its worker: latencies include the probe's own scheduling delay. "
)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value at or above the q-th fraction of them."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def default_limits() -> tuple[float, int]:
    """(GODEL_AGENT_RATE_PER_S, GODEL_AGENT_BURST) as Godel ships them."""
    from godel.config import Settings

    fields = Settings.model_fields
    return float(fields["agent_rate_per_s"].default), int(fields["agent_burst"].default)


def probe_agents(n: int) -> list[str]:
    return [f"probe-agent-{k:02d}" for k in range(n)]


@dataclass(frozen=True)
class Window:
    """One probe window on a serve, with or without the storm."""

    timed: list[ProbeRecord]
    warm: list[ProbeRecord]
    storm: StormRun | None
    watch: Watch | None  # with limits on: the storming agent watched for its first 429
    gained: int  # events the ledger gained over the window, warm-up included

    def latency_s(self, q: float) -> float:
        return percentile([r.latency_s for r in self.timed], q)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.timed + self.warm if not r.ok)

    @property
    def accepted(self) -> int:
        storm = self.storm.accepted if self.storm else 0
        storm += self.watch.accepted if self.watch else 0
        return sum(1 for r in self.timed + self.warm if r.ok) + storm

    def to_json(self) -> dict[str, Any]:
        lags = [r.sent - r.scheduled for r in self.timed]
        return {
            "requests": len(self.timed),
            "p50_ms": self.latency_s(0.5) * 1e3,
            "p99_ms": self.latency_s(0.99) * 1e3,
            "max_ms": self.latency_s(1.0) * 1e3,
            "send_lag_p99_ms": percentile(lags, 0.99) * 1e3,
            "not_2xx": self.failed,
            "statuses": sorted({r.status for r in self.timed + self.warm}),
            "storm": self.storm.to_json() if self.storm else None,
            "storm_refused_after_s": self.watch.refused_after_s if self.watch else None,
            "ledger_gained": self.gained,
            "accepted": self.accepted,
        }


@dataclass
class ServeRuns:
    """Every repetition's two windows on one serve."""

    quiet: list[Window] = field(default_factory=list)
    stormy: list[Window] = field(default_factory=list)
    quiet_fallbacks: int = 0  # link transitions into fallback during each kind of window
    stormy_fallbacks: int = 0


def _check(window: Window, connections: int) -> None:
    """The ledger holds every accepted event; beyond those, at most the requests whose
    answer was lost (in flight when wrk stopped, a transport error)."""
    slack = sum(1 for r in window.timed + window.warm if r.status < 0)
    if window.storm is not None:
        slack += connections + window.storm.socket_errors
    if window.watch is not None:
        slack += window.watch.lost
    if window.gained < window.accepted:
        raise BenchError(f"ledger gained {window.gained} events; {window.accepted} were accepted")
    if window.gained > window.accepted + slack:
        raise BenchError(
            f"ledger gained {window.gained} events: more than the {window.accepted} accepted "
            f"and {slack} that may have been in flight"
        )


def _window(ctx: Context, serve: GodelServe, storm_agent: str | None, limits: bool) -> Window:
    """One probe window; with `storm_agent`, wrk storms as that agent from before the
    window (with limits on, until the agent was first refused) until after it."""
    s = ctx.sizes
    url = serve.base_url + "/api/v1/events"
    storm: StormPhase | None = None
    if storm_agent is not None:
        lead_s = (s.storm_lead_s, s.storm_lead_max_s)
        storm = StormPhase(url, storm_agent, s.storm_connections, lead_s, until_refused=limits)
    before, _ = godel_stored(serve)
    agents = probe_agents(s.storm_probe_agents)
    args = (url, agents, s.storm_probe_rate, s.storm_window_s, s.storm_warm_s)
    try:
        warm, timed = asyncio.run(storm_load.probe(*args, storm.lead if storm else None))
        run = storm.finish() if storm else None
    finally:
        if storm is not None:
            storm.kill()
    godel_drained(ctx, serve)
    after, _ = godel_stored(serve)
    window = Window(timed, warm, run, storm.watch if storm else None, after - before)
    _check(window, s.storm_connections)
    return window


def _serve_runs(ctx: Context, limits: bool) -> ServeRuns:
    extra: dict[str, Any] = {} if limits else {"agent_rate_per_s": 0}
    runs = ServeRuns()
    ctx.redis.reset()
    with fresh_ledger() as ledger, GodelServe(ctx.redis.url, ledger, workers=1, **extra) as serve:
        for rep in range(ctx.sizes.reps):
            seen = serve.fallbacks()
            runs.quiet.append(_window(ctx, serve, None, limits))
            runs.quiet_fallbacks += serve.fallbacks() - seen
            seen = serve.fallbacks()
            agent = f"storm-agent-{'on' if limits else 'off'}-{rep}"
            runs.stormy.append(_window(ctx, serve, agent, limits))
            runs.stormy_fallbacks += serve.fallbacks() - seen
    return runs


def _stat(windows: list[Window], q: float) -> Stat:
    return Stat.of([w.latency_s(q) * 1e3 for w in windows], MS)


def _probe_note(windows: list[Window]) -> str:
    p50, p99, top = (_stat(windows, q) for q in (0.5, 0.99, 1.0))
    failed = [w.failed for w in windows]
    text = (
        f"probe p50 {p50.median:.2f} ms ({p50.min:.2f}-{p50.max:.2f}), p99 {p99.median:.2f} ms, "
        f"max {top.median:.1f} ms ({top.min:.1f}-{top.max:.1f}); "
    )
    if any(failed):
        statuses = sorted({r.status for w in windows for r in w.timed + w.warm if not r.ok})
        text += f"PROBE REQUESTS NOT 2xx (warm-up and lead too): {failed} per repetition, "
        text += f"statuses {statuses}; "
    return text


def _storm_note(ctx: Context, windows: list[Window], limits: bool) -> str:
    runs = [(w.storm, w.watch) for w in windows if w.storm is not None]
    answered = statistics.median((r.accepted + r.refused) / r.duration_s for r, _ in runs)
    accepted = statistics.median(r.accepted / r.duration_s for r, _ in runs)
    refused = statistics.median(r.refused / r.duration_s for r, _ in runs)
    other = sum(r.other + r.socket_errors for r, _ in runs)
    secs = statistics.median(r.duration_s for r, _ in runs)
    text = (
        f"Storm ({ctx.sizes.storm_connections} wrk connections, one agent, one event per "
        f"request, {secs:.1f} s in all): {answered:,.0f} req/s answered, {accepted:,.0f} "
        f"ev/s accepted (202), {refused:,.0f} req/s refused (429), {other} other answers or "
        "socket errors"
    )
    if limits:
        rate, burst = default_limits()
        watched = [(r, w) for r, w in runs if w is not None and w.refused_after_s is not None]
        first = statistics.median(w.refused_after_s or 0.0 for _, w in watched)
        # Every 429 comes after the first one: the refusal rate once the burst was spent.
        steady = statistics.median(
            r.refused / max(1e-3, r.duration_s - (w.refused_after_s or 0.0)) for r, w in watched
        )
        over = max(
            r.accepted + (w.accepted if w else 0) - (burst + rate * r.duration_s) for r, w in runs
        )
        text += (
            f"; first refused {first:.1f} s after it began (the probe's clock starts then), "
            f"{steady:,.0f} req/s refused from then on; accepted within burst + rate x time "
            f"({burst:,} + {rate:,.0f}/s)"
        )
        if over > 0:
            text += f": NO, {over:,.0f} events over"
    return text + ". "


def _compare(res: Result, storm: list[Window], quiet: list[Window], label: str) -> None:
    res.godel = _stat(storm, 0.99)
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        base = _stat(quiet, q)
        res.peers[f"{label} {name}"] = base
        mine = _stat(storm, q)
        if base.median > 0:
            res.ratios[f"{name} vs {label}"] = mine.median / base.median


def _details(windows: list[Window]) -> list[dict[str, Any]]:
    return [w.to_json() for w in windows]


def _rows(ctx: Context) -> dict[str, Result]:
    s = ctx.sizes
    probe = f"{s.storm_probe_rate:.0f} req/s over {s.storm_probe_agents} agents"
    names = {
        "quiet": f"10a storm: other agents' latency ({probe}), no storm",
        "on": "10b storm: other agents' latency, one agent storming, default limits",
        "off": "10c storm: other agents' latency, one agent storming, limits off",
    }
    return {
        key: Result(
            "storm", name, TARGET, topology="default", ledger="sqlite", client="python-raw+wrk"
        )
        for key, name in names.items()
    }


def bench_storm(ctx: Context) -> list[Result]:
    rows = _rows(ctx)
    s = ctx.sizes
    rows["quiet"].target = "information (the baseline of 10b)"
    rows["on"].target = f"p50 ≤ {ON_P50_MAX:g}x and p99 ≤ {ON_P99_MAX:g}x the probe alone"

    def run() -> None:
        ctx.log("storm rows: default limits")
        on = _serve_runs(ctx, limits=True)
        ctx.log("storm rows: limits off (GODEL_AGENT_RATE_PER_S=0)")
        off = _serve_runs(ctx, limits=False)
        rows["quiet"].godel = _stat(on.quiet, 0.99)
        _compare(rows["on"], on.stormy, on.quiet, "no storm")
        _compare(rows["off"], off.stormy, off.quiet, "no storm, limits off")
        rows["quiet"].note += _probe_note(on.quiet)
        rows["on"].note += _probe_note(on.stormy) + _storm_note(ctx, on.stormy, limits=True)
        rows["off"].note += _probe_note(off.stormy) + _storm_note(ctx, off.stormy, limits=False)
        rows["off"].note += f"Limits off, probe alone: {_probe_note(off.quiet)}"
        rows["quiet"].details["windows"] = _details(on.quiet)
        rows["on"].details["windows"] = _details(on.stormy)
        rows["off"].details["windows"] = _details(off.stormy)
        rows["off"].details["quiet_windows"] = _details(off.quiet)
        rows["quiet"].saw_fallbacks(on.quiet_fallbacks)
        rows["on"].saw_fallbacks(on.stormy_fallbacks)
        rows["off"].saw_fallbacks(off.quiet_fallbacks + off.stormy_fallbacks)

    guarded(ctx, list(rows.values()), run)
    shape = (
        f"Probe: open loop, {s.storm_window_s:g} s per repetition, latency from each "
        f"request's scheduled send time. "
    )
    for res in rows.values():
        res.note = shape + res.note + SHARED_CORES
    on = rows["on"].ratios
    judge(
        rows["on"],
        len(on) == 2
        and on["p50 vs no storm"] <= ON_P50_MAX
        and on["p99 vs no storm"] <= ON_P99_MAX,
    )
    return list(rows.values())
