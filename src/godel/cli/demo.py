"""`godel demo`: the five-minute tour of why Godel exists.

A private stack (a redis-server when one is installed, `godel serve` on a temp SQLite
ledger), a steady stream of `agent.*` events, and Redis SIGKILLed on a timer and started
again. It prints what the system does, then checks the promise against the ledger:
every acknowledged event processed, none lost, none applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import signal
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from godel.cli.processes import Stack
from godel.cli.render import STATE_STYLE, banner, fmt_duration, fmt_number, plural
from godel.errors import GodelError

AGENTS = 20
TYPES = ("agent.heartbeat", "agent.status", "agent.task")
STATUSES = ("idle", "busy", "running")
LOG_MARKERS = ("fallback mode", "lost", "Reconciled")
NO_REDIS = (
    "redis-server is not installed: the demo runs Godel in fallback mode only (every event "
    "through the SQL ledger). Install redis-server to see it killed and recovered."
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float = 300.0
    rate: float = 50.0
    cycle_s: float = 15.0
    down_s: float = 5.0
    port: int = 0


@dataclass(slots=True)
class Verdict:
    acknowledged: int
    processed: int
    lost: int
    duplicates: int
    unprocessed: int
    kills: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.unprocessed == 0

    def __str__(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, processed {self.processed}, lost {self.lost}, "
            f"duplicates {self.duplicates}, unprocessed {self.unprocessed} "
            f"(Redis killed {plural(self.kills, 'time')})"
        )


@dataclass
class LoadGenerator:
    """Posts `rate` events a second, each with its own id; a 503 or a connection error is
    retried with the same id, so a lost answer can never make a second event."""

    client: httpx.AsyncClient
    rate: float
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    acked: set[str] = field(default_factory=set)
    modes: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    last_mode: str = "-"
    _next: int = 0
    _again: deque[dict[str, Any]] = field(default_factory=deque)

    def _new_event(self) -> dict[str, Any]:
        n = self._next
        self._next += 1
        return {
            "id": f"demo-{self.run_id}-{n:07d}",
            "type": random.choice(TYPES),
            "agent_id": f"agent-{n % AGENTS:02d}",
            "payload": {"n": n, "status": random.choice(STATUSES)},
        }

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        sends: set[asyncio.Task[None]] = set()
        due = loop.time()
        while not stop.is_set():
            event = self._again.popleft() if self._again else self._new_event()
            if len(sends) < 500:  # bounded: a stuck server must not grow us without limit
                task = loop.create_task(self._send(event))
                sends.add(task)
                task.add_done_callback(sends.discard)
            else:
                self._again.append(event)
            due = max(due + 1 / self.rate, loop.time() - 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
        if sends:
            await asyncio.wait(sends, timeout=15)
        deadline = loop.time() + 30  # what never got a 202: resend with its id, for a while
        while self._again and loop.time() < deadline:
            await self._send(self._again.popleft())
            await asyncio.sleep(0.05)

    async def _send(self, event: dict[str, Any]) -> None:
        try:
            response = await self.client.post("/api/v1/events", json=event, timeout=10)
        except httpx.HTTPError:
            response = None
        if response is None or response.status_code != 202:
            self.retries += 1
            self._again.append(event)
            return
        body = response.json()
        self.acked.add(event["id"])
        self.last_mode = body["mode"]
        self.modes[body["mode"]] += 1


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class Demo:
    def __init__(self, stack: Stack, options: DemoOptions, console: Console) -> None:
        self.stack = stack
        self.options = options
        self.console = console
        # The watcher and the verdict read as admin; the load publishes with its own key.
        self.client = httpx.AsyncClient(base_url=stack.url, timeout=10, headers=bearer(stack.token))
        self.publisher = httpx.AsyncClient(
            base_url=stack.url, timeout=10, headers=bearer(stack.publish_key)
        )
        self.load = LoadGenerator(self.publisher, options.rate)
        self.health: dict[str, Any] = {}
        self.kills = 0
        self.started = time.monotonic()
        self.stop = asyncio.Event()
        self._log_offset = 0

    def note(self, message: str, style: str = "") -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(Text(f"[{elapsed:6.1f}s] ", style="dim") + Text(message, style=style))

    async def chaos(self) -> None:
        opts = self.options
        if self.stack.redis is None:
            return
        while not self.stop.is_set():
            if await self._sleep(opts.cycle_s - opts.down_s):
                return
            self.stack.kill_redis()
            self.kills += 1
            self.note("killed redis-server (SIGKILL)", "bold red")
            if await self._sleep(opts.down_s):
                return
            await asyncio.to_thread(self.stack.start_redis)
            self.note("started redis-server again (same port, AOF reloaded)", "green")

    async def _sleep(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()

    async def watch(self, live: Live) -> None:
        while True:
            try:
                health = (await self.client.get("/health", timeout=5)).json()
            except (httpx.HTTPError, ValueError):
                health = self.health
            old, new = self.health.get("state"), health.get("state")
            if old is not None and old != new:
                reason = (health.get("link") or {}).get("reason")
                note = f"link {old} -> {new}" + (f" ({reason})" if new == "fallback" else "")
                self.note(note, STATE_STYLE.get(str(new), ""))
            self.health = health
            self._relay_log()
            live.update(self.view())
            await asyncio.sleep(0.5)

    def _relay_log(self) -> None:
        """Show the server's own words for the transitions (the runbook's log lines)."""
        with self.stack.log_path.open("rb") as f:
            f.seek(self._log_offset)
            chunk = f.read()
        cut = chunk.rfind(b"\n") + 1
        self._log_offset += cut
        for line in chunk[:cut].decode(errors="replace").splitlines():
            if any(marker in line for marker in LOG_MARKERS):
                self.note("server log: " + line.split(": ", 1)[-1], "yellow")

    def view(self) -> RenderableType:
        h, p = self.health, self.load
        replay = h.get("replay") or {}
        events = h.get("events") or {}
        table = Table(show_header=False, box=None, padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("elapsed", fmt_duration(round(time.monotonic() - self.started)))
        table.add_row("redis-server", "running" if self.stack.redis_running else "DOWN")
        table.add_row("link", str(h.get("state", "?")))
        table.add_row(
            "accepted",
            f"{len(p.acked)} (redis {p.modes['redis']}, fallback {p.modes['fallback']}; "
            f"last mode {p.last_mode}); retried sends {p.retries}",
        )
        table.add_row("undispatched", str(h.get("undispatched", "?")))
        reconciled = replay.get("reconciled_total", 0)
        table.add_row("replayed", f"{replay.get('replayed_total', 0)}; reconciled {reconciled}")
        table.add_row("processed", str(events.get("processed", 0)))
        return Group(banner(h) if h else Text("starting"), table)

    async def settle(self, timeout_s: float = 120.0) -> None:
        """After the load stops: Redis up, link connected, every ledger event processed."""
        await asyncio.to_thread(self.stack.start_redis)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                # Fresh, not the watcher's snapshot: that may predate the last acks.
                self.health = h = (await self.client.get("/health", timeout=5)).json()
                done = set(h.get("events") or {}) <= {"processed"} and h["undispatched"] == 0
                if done and (h.get("state") == "connected" or self.stack.redis is None):
                    return
            await asyncio.sleep(0.5)
        self.note(f"not settled after {timeout_s:.0f}s; judging what is there", "red")

    async def verdict(self) -> Verdict:
        statuses: dict[str, str] = {}
        cursor: int | None = None
        while True:
            params = {"limit": 1000} | ({"cursor": cursor} if cursor is not None else {})
            page = (await self.client.get("/api/v1/events", params=params)).json()
            statuses.update({e["id"]: e["status"] for e in page["events"]})
            cursor = page["next_cursor"]
            if cursor is None:
                break
        agents = (await self.client.get("/api/v1/agents", params={"limit": 1000})).json()
        applied = sum(a.get("events_applied", 0) for a in agents["agents"])
        acked = self.load.acked
        processed = sum(1 for i in acked if statuses.get(i) == "processed")
        lost = sum(1 for i in acked if i not in statuses)
        # Every demo event names an agent, and the agent.* handler counts each application:
        # more applications than processed events means something ran twice.
        processed_all = sum(1 for status in statuses.values() if status == "processed")
        return Verdict(
            acknowledged=len(acked),
            processed=processed,
            lost=lost,
            duplicates=max(0, applied - processed_all),
            unprocessed=len(acked) - lost - processed,
            kills=self.kills,
        )

    async def run(self) -> Verdict:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None

        def interrupt() -> None:
            if self.stop.is_set():
                main.cancel()
                return
            self.stop.set()
            self.note("Ctrl-C: stopping the load, then the verdict (Ctrl-C again: quit now)")

        loop.add_signal_handler(signal.SIGINT, interrupt)
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
        loop.call_later(self.options.duration_s, self.stop.set)
        try:
            with Live(self.view(), console=self.console, refresh_per_second=4) as live:
                watcher = loop.create_task(self.watch(live))
                await asyncio.gather(self.load.run(self.stop), self.chaos())
                self.note("load stopped; waiting for every accepted event to be processed")
                await self.settle()
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
                live.update(self.view())
            if not self.console.is_terminal:
                self.console.line()  # Live leaves its last frame without a newline here
            return await self.verdict()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)
            # Until run_demo has stopped every process, a further Ctrl-C must not cut the
            # cleanup short (it would leave redis-server running on a deleted directory).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            await self.client.aclose()
            await self.publisher.aclose()


def run_demo(options: DemoOptions, console: Console) -> Verdict:
    """Run the tour; every process it started is stopped before this returns or raises."""
    if options.down_s >= options.cycle_s:
        raise GodelError("--down must be shorter than --cycle")
    with tempfile.TemporaryDirectory(prefix="godel-demo-") as tmp:
        stack = Stack(Path(tmp), options.port)
        if stack.redis is None:
            console.print(NO_REDIS, style="yellow")
        try:
            stack.start()
            console.print(
                f"Godel API on {stack.url} (admin token {stack.token}); events at "
                f"{fmt_number(options.rate)}/s; Redis killed every "
                f"{fmt_duration(options.cycle_s)} for {fmt_duration(options.down_s)}; "
                f"{fmt_duration(options.duration_s)} in all. Ctrl-C ends early."
            )
            verdict = asyncio.run(Demo(stack, options, console).run())
        except asyncio.CancelledError:
            raise GodelError("interrupted; the demo's processes are stopped") from None
        finally:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                stack.stop()
            finally:
                ignored = previous in (signal.SIG_IGN, None)
                signal.signal(signal.SIGINT, signal.default_int_handler if ignored else previous)
    console.print(str(verdict), style="bold green" if verdict.ok else "bold red")
    if verdict.ok:
        console.print("Every acknowledged event was processed exactly once.", style="green")
    return verdict
