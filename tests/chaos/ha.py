"""What the Redis chaos tests (faults, Sentinel, Cluster) share: steady load through the
in-process app, the Link's state changes with their times, the Sentinels' +switch-master
announcements, and a registry whose workers can be held."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from godel.event import Event
from godel.fastlane.link import Link, LinkState
from godel.handlers import Registry, default_registry
from tests.harness import Harness
from tests.support.wait import wait_until_async


class Load:
    """Posts small agent events in batches until stopped; remembers what was acknowledged
    (202) and in which mode (redis or fallback)."""

    def __init__(self, h: Harness, prefix: str = "ev") -> None:
        self.h = h
        self.prefix = prefix
        self.acked: set[str] = set()
        self.modes: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._ids = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, concurrency: int = 3) -> None:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(concurrency)]

    async def _run(self) -> None:
        while not self._stop.is_set():
            batch = [
                {
                    "type": "agent.ping",
                    "id": f"{self.prefix}-{next(self._ids)}",
                    "agent_id": f"agent-{n % 4}",
                }
                for n in range(5)
            ]
            r = await self.h.post({"events": batch})
            self.statuses[r.status_code] += 1
            if r.status_code == 202:
                self.acked.update(r.json()["ids"])
                self.modes[r.json()["mode"]] += 1
            await asyncio.sleep(0.01)

    async def until_acked(self, more: int, timeout_s: float = 30) -> None:
        target = len(self.acked) + more
        await wait_until_async(
            lambda: len(self.acked) >= target, timeout_s, f"{more} more acknowledged events"
        )

    async def stop(self) -> None:
        """Stop posting (idempotent); a poster's error is raised here."""
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks)

    async def __aenter__(self) -> Load:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Also when the test failed: no poster outlives it (the app closes after this).
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class LinkTimeline:
    """Every state change of a Link from some moment on, with its monotonic time."""

    initial: LinkState  # the state when the timeline began
    changes: list[tuple[float, LinkState]] = field(default_factory=list)

    @classmethod
    def of(cls, link: Link) -> LinkTimeline:
        timeline = cls(link.state)
        link.subscribe(lambda old, new: timeline.changes.append((time.monotonic(), new)))
        return timeline

    def state_at(self, when: float) -> LinkState:
        state = self.initial
        for t, s in self.changes:
            if t > when:
                break
            state = s
        return state

    def down_between(self, start: float, end: float) -> bool:
        """Was the Link out of `connected` at some moment in [start, end]?"""
        if self.state_at(start) is not LinkState.CONNECTED:
            return True
        return any(start <= t <= end and s is not LinkState.CONNECTED for t, s in self.changes)

    def first(self, state: LinkState, after: float) -> float | None:
        return next((t for t, s in self.changes if s is state and t >= after), None)

    async def wait(self, state: LinkState, after: float, timeout_s: float = 30) -> float:
        await wait_until_async(
            lambda: self.first(state, after) is not None, timeout_s, f"link {state.value}"
        )
        found = self.first(state, after)
        assert found is not None
        return found


class SwitchWatch:
    """The test's own subscription to +switch-master on one Sentinel: when the Sentinels
    announced the new master (the start of the clock for "Godel writes to it")."""

    def __init__(self, sentinel_port: int) -> None:
        self.client = aioredis.Redis(host="127.0.0.1", port=sentinel_port, decode_responses=True)
        self.switches: list[tuple[float, str]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SwitchWatch:
        pubsub = self.client.pubsub()
        await pubsub.subscribe("+switch-master")
        self._task = asyncio.create_task(self._listen(pubsub))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        async with pubsub:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self.switches.append((time.monotonic(), str(message["data"])))

    async def next_switch(self, after: float, timeout_s: float = 30) -> tuple[float, int]:
        """(monotonic time, new master port) of the first switch announced after `after`."""

        def found() -> tuple[float, str] | None:
            return next(((t, d) for t, d in self.switches if t >= after), None)

        await wait_until_async(lambda: found() is not None, timeout_s, "+switch-master")
        at, data = found()  # type: ignore[misc]
        return at, int(data.split()[4])


def gated_registry(gate: asyncio.Event, *, failing: str | None = None) -> Registry:
    """The built-in handlers, plus one that holds `agent.*` events while `gate` is clear
    (workers stop consuming: what they would have taken stays in Redis), and, with
    `failing`, a handler that always raises for that event type (dead letters)."""
    registry = default_registry()

    async def wait_for_gate(event: Event) -> None:
        await gate.wait()

    registry.add("agent.*", wait_for_gate)
    if failing is not None:

        async def fail(event: Event) -> None:
            raise RuntimeError(f"{event.type} always fails")

        registry.add(failing, fail)
    return registry


RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbooks" / "REDIS_OUTAGE.md"


def runbook_block(index: int) -> list[tuple[str, str | None]]:
    """The commands of the `index`th ```sh block of the runbook's "Cluster and Sentinel"
    section, each with the text its `# shows:` comment promises (None: no promise)."""
    section = RUNBOOK.read_text().split("## Cluster and Sentinel", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n")[index + 1].split("```", 1)[0]
    steps: list[tuple[str, str | None]] = []
    for line in block.strip().splitlines():
        if line.startswith("# shows:"):
            steps[-1] = (steps[-1][0], line.removeprefix("# shows:").strip())
        elif line.strip():
            steps.append((line, None))
    return steps


def run_runbook_block(index: int, replace: dict[str, str]) -> None:
    """Run the block in one bash (its exports carry over), with `replace` applied to each
    line (the runbook's hosts and names -> the test's); every `# shows:` must hold."""
    steps = runbook_block(index)
    script = ["set -euo pipefail"]
    for n, (command, _) in enumerate(steps):
        for old, new in replace.items():
            command = command.replace(old, new)
        script += [f"echo '@@@ {n}'", command]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    outputs = done.stdout.split("@@@ ")[1:]
    assert len(outputs) == len(steps), done.stdout
    for (command, shows), output in zip(steps, outputs, strict=True):
        if shows is not None:
            assert shows in output, f"{command!r} printed {output!r}, not {shows!r}"
