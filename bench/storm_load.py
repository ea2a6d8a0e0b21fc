"""The two clients of the storm rows (10a-10c, bench/rows_storm.py).

- The probe: the other agents. Open loop at a fixed rate, one event per request, rotating
  over `agents` agent ids, from the harness process (the raw asyncio client of
  http_load). Each request's latency runs from the time it was *scheduled*, not the time a
  connection was free to send it, so a stall shows in full instead of delaying the
  requests behind it (no coordinated omission). A request finds an idle keep-alive
  connection, or opens another (at most MAX_CONNECTIONS), as independent agents would.
  The schedule runs without a break from its warm-up, through the storm's lead, to the end
  of the timed window; only the requests scheduled within the window are timed.
- The storm: one agent id on several wrk connections, each sending one event per request
  as fast as answers come back; a Lua `response` hook counts 202s, 429s and the rest.
  With limits on, the timed window waits until the storm has spent its burst: a watcher
  sends as the same agent, one request every 50 ms, until one is refused (429).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import wrk
from bench.godel_side import ADMIN_TOKEN, EVENT_TYPE
from bench.http_load import RawConn
from bench.wrk import WrkUnavailable

MAX_CONNECTIONS = 256  # the probe's; beyond it a request waits (its latency still counts)
TAIL_S = 0.2  # the storm goes on this long after the probe's last answer
WRK_SPARE_S = 60.0  # wrk's -d beyond the lead: it is stopped (SIGINT) long before

_STORM_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local threads = {}
local n = 0
setup = function(thread) table.insert(threads, thread) end
init = function(args) accepted, refused, other = 0, 0, 0 end
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil,
    '{"type":"%(type)s","agent_id":"%(agent)s","payload":{"n":' .. n .. '}}')
end
response = function(status, headers, body)
  if status == 202 then accepted = accepted + 1
  elseif status == 429 then refused = refused + 1
  else other = other + 1 end
end
done = function(summary, latency, requests)
  local a, r, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted"); r = r + t:get("refused"); o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"accepted":%%d,"refused":%%d,"other":%%d,' ..
    '"socket_errors":%%d,"latency_p50_us":%%d,"latency_p99_us":%%d,"latency_max_us":%%d}\\n',
    summary.requests, summary.duration, a, r, o, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class StormRun:
    """wrk's account of the storm: answers by kind (202 accepted, 429 refused, other),
    socket errors, and the storm's own latency (closed loop: for information)."""

    agent: str
    connections: int
    requests: int
    duration_s: float
    accepted: int
    refused: int
    other: int
    socket_errors: int
    latency_p50_s: float
    latency_p99_s: float
    latency_max_s: float

    def to_json(self) -> dict[str, Any]:
        rate = self.accepted / self.duration_s if self.duration_s > 0 else 0.0
        return {**asdict(self), "accepted_rate": rate}


@dataclass(frozen=True)
class Storm:
    proc: subprocess.Popen[str]
    agent: str
    connections: int
    started_at: float  # monotonic


def start_storm(url: str, agent: str, connections: int, max_duration_s: float) -> Storm:
    """Start wrk storming `url` as `agent`; `finish_storm` stops it (SIGINT: wrk then
    prints its summary), at the latest it stops itself after `max_duration_s`."""
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkUnavailable("wrk is not installed (scripts/setup-dev.sh installs it)")
    lua = Path(tempfile.gettempdir()) / f"godel-bench-storm-{agent}.lua"
    lua.write_text(_STORM_LUA % {"token": ADMIN_TOKEN, "type": EVENT_TYPE, "agent": agent})
    seconds = max(1, math.ceil(max_duration_s))
    argv = [binary, f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--timeout", "10s", "-s", str(lua), url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Storm(proc, agent, connections, time.monotonic())


class BurstNotSpent(RuntimeError):
    """With limits on, the storming agent was never refused: the limit did not hold."""


class StormEnded(RuntimeError):
    """wrk stopped by itself before it was told to: the storm did not cover the probe."""


def finish_storm(storm: Storm, timeout_s: float = 60) -> StormRun:
    """Stop the storm now and read wrk's summary."""
    if storm.proc.poll() is not None:
        raise StormEnded(f"wrk ended after {time.monotonic() - storm.started_at:.1f} s by itself")
    storm.proc.send_signal(signal.SIGINT)
    s = wrk.summary(storm.proc, timeout_s)
    return StormRun(
        agent=storm.agent,
        connections=storm.connections,
        requests=int(s["requests"]),
        duration_s=s["duration_us"] / 1e6,
        accepted=int(s["accepted"]),
        refused=int(s["refused"]),
        other=int(s["other"]),
        socket_errors=int(s["socket_errors"]),
        latency_p50_s=s["latency_p50_us"] / 1e6,
        latency_p99_s=s["latency_p99_us"] / 1e6,
        latency_max_s=s["latency_max_us"] / 1e6,
    )


def kill_storm(storm: Storm) -> None:
    """For an error path: end wrk at once (its summary is not wanted)."""
    if storm.proc.poll() is None:
        storm.proc.kill()
    storm.proc.communicate(timeout=30)


@dataclass(frozen=True)
class Watch:
    """The storming agent's own requests, one at a time, until the first 429: when its
    burst ran out, and what it had stored meanwhile (for the ledger check)."""

    refused_after_s: float | None  # None: never refused within the time allowed
    accepted: int
    lost: int  # transport errors (may have been stored)


async def first_refusal(url: str, agent: str, max_s: float, interval_s: float = 0.05) -> Watch:
    conn = RawConn(url)
    t0 = time.monotonic()
    accepted = lost = 0
    try:
        while time.monotonic() - t0 < max_s:
            status = await conn.post(storm_body(agent))
            if status == 429:
                return Watch(time.monotonic() - t0, accepted, lost)
            accepted += 200 <= status < 300
            lost += status < 0
            await asyncio.sleep(interval_s)
    finally:
        await conn.aclose()
    return Watch(None, accepted, lost)


def storm_body(agent: str) -> bytes:
    return orjson.dumps({"type": EVENT_TYPE, "agent_id": agent, "payload": {"watch": True}})


class StormPhase:
    """The storm around one probe window. `lead` (the probe's hook) starts wrk and returns
    after `min_lead_s` and, with `until_refused`, once the storming agent has been refused
    (its burst spent; BurstNotSpent after `max_lead_s`); `finish` stops wrk `TAIL_S` later
    and reads its summary; `kill` ends it on an error path."""

    def __init__(
        self,
        url: str,
        agent: str,
        connections: int,
        lead_s: tuple[float, float],  # (min, max)
        until_refused: bool,
    ) -> None:
        self.url, self.agent, self.connections = url, agent, connections
        self.min_lead_s, self.max_lead_s = lead_s
        self.until_refused = until_refused
        self.storm: Storm | None = None
        self.watch: Watch | None = None

    async def lead(self) -> None:
        wrk_s = self.max_lead_s + WRK_SPARE_S  # wrk's own end, long after it is stopped
        self.storm = start_storm(self.url, self.agent, self.connections, wrk_s)
        t0 = time.monotonic()
        if self.until_refused:
            self.watch = await first_refusal(self.url, self.agent, self.max_lead_s)
            if self.watch.refused_after_s is None:
                raise BurstNotSpent(f"the storm was not refused within {self.max_lead_s:g} s")
        await asyncio.sleep(max(0.0, t0 + self.min_lead_s - time.monotonic()))

    def finish(self) -> StormRun:
        if self.storm is None:
            raise RuntimeError("the storm never started")
        time.sleep(TAIL_S)
        return finish_storm(self.storm)

    def kill(self) -> None:
        if self.storm is not None and self.storm.proc.returncode is None:
            kill_storm(self.storm)


@dataclass(frozen=True)
class ProbeRecord:
    scheduled: float  # monotonic: when the open-loop schedule said to send it
    sent: float  # when a connection was in hand and the request went out
    end: float
    status: int  # HTTP status, or -1 for a transport error or timeout

    @property
    def latency_s(self) -> float:
        return self.end - self.scheduled

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Pool:
    """Idle keep-alive connections; one more is opened when none is idle."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[RawConn] = []
        self.idle: asyncio.Queue[RawConn] = asyncio.Queue()

    async def acquire(self) -> RawConn:
        if self.idle.empty() and len(self.opened) < MAX_CONNECTIONS:
            conn = RawConn(self.url)
            self.opened.append(conn)
            return conn
        return await self.idle.get()

    async def post(self, body: bytes) -> tuple[float, int]:
        """(when it was sent, status)."""
        conn = await self.acquire()
        try:
            return time.monotonic(), await conn.post(body)
        finally:
            self.idle.put_nowait(conn)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.opened))


def probe_body(agents: Sequence[str], i: int) -> bytes:
    event = {"type": EVENT_TYPE, "agent_id": agents[i % len(agents)], "payload": {"n": i}}
    return orjson.dumps(event)


class OpenLoop:
    """Requests at `rate_per_s` on a fixed schedule, each sent when its time comes whatever
    the ones before it are doing, until `stop_at`."""

    def __init__(self, pool: Pool, agents: Sequence[str], rate_per_s: float) -> None:
        self.pool = pool
        self.agents = agents
        self.rate_per_s = rate_per_s
        self.stop_at = math.inf
        self.records: list[ProbeRecord] = []
        self.in_flight: set[asyncio.Task[None]] = set()

    async def _one(self, i: int, at: float) -> None:
        sent, status = await self.pool.post(probe_body(self.agents, i))
        self.records.append(ProbeRecord(at, sent, time.monotonic(), status))

    async def run(self, first: int) -> None:
        t0 = time.monotonic()
        for k in itertools.count():
            at = t0 + k / self.rate_per_s
            if at >= self.stop_at:
                break
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(first + k, at))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        await asyncio.gather(*self.in_flight)


async def probe(
    url: str,
    agents: Sequence[str],
    rate_per_s: float,
    window_s: float,
    warm_s: float,
    lead: Callable[[], Awaitable[None]] | None = None,
) -> tuple[list[ProbeRecord], list[ProbeRecord]]:
    """(untimed records, timed records). One request per agent at once opens a connection
    each; then the schedule runs: `warm_s`, then for as long as `lead` takes (it starts the
    storm and waits until the storm is what should be measured), then the timed window of
    `window_s`: the requests scheduled within it."""
    pool = Pool(url)
    loop = OpenLoop(pool, agents, rate_per_s)
    start = math.inf
    try:
        opened = await asyncio.gather(
            *(pool.post(probe_body(agents, i)) for i in range(len(agents)))
        )
        running = asyncio.create_task(loop.run(len(agents)))
        try:
            await asyncio.sleep(warm_s)
            if lead is not None:
                await lead()
            start = time.monotonic()
        finally:  # on an error in `lead`, stop at once (what is in flight is awaited)
            loop.stop_at = start + window_s if start < math.inf else time.monotonic()
            await running
    finally:
        await pool.aclose()
    untimed = [ProbeRecord(t, t, t, status) for t, status in opened]
    untimed += [r for r in loop.records if r.scheduled < start]
    return untimed, [r for r in loop.records if r.scheduled >= start]
