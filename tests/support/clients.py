"""Clients that post events as the runbooks tell clients to: a batch answered `503` (or not
answered at all: the API process died) is sent again with the same ids until it gets `202`.
So every event a client made is acknowledged in the end, and the ledger must hold exactly
the acknowledged ones: an id is an idempotency key, a resent batch stores nothing twice.

Every answer is kept with its time, so a test can time an outage from the clients' side.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from tests.support.wait import wait_until_async

TRANSPORT_ERROR = 0  # the status recorded for a request that got no HTTP answer
# Sooner than the Retry-After (1 s) Godel sends: the tests time outages to a tenth of that.
RETRY_PAUSE_S = 0.05


@dataclass(frozen=True, slots=True)
class Answer:
    at: float  # time.monotonic() when the answer came
    status: int  # HTTP status, TRANSPORT_ERROR for none


class Posters:
    """`concurrency` tasks posting batches of `agent.ping` events (agent ids cycle through
    `agents`), each request to the next of `clients` in turn (several APIs: a dead one is
    skipped on the retry). Use as `async with Posters(...) as load:`; `stop()` lets every
    task finish the batch in hand (until 202) and raises a task's error."""

    def __init__(
        self,
        clients: Sequence[httpx.AsyncClient],
        prefix: str = "ev",
        *,
        batch: int = 5,
        agents: int = 4,
        concurrency: int = 3,
        pause_s: float = 0.01,
        give_up_s: float = 90.0,
    ) -> None:
        self.clients = list(clients)
        self.prefix = prefix
        self.batch = batch
        self.agents = agents
        self.concurrency = concurrency
        self.pause_s = pause_s
        self.give_up_s = give_up_s
        self.acked: set[str] = set()
        self.answers: list[Answer] = []
        self.last_error = ""  # the last request that got no answer, and why
        self._ids = itertools.count()
        self._turn = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks += [asyncio.create_task(self._run()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks)

    async def __aenter__(self) -> Posters:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _next_batch(self) -> list[dict[str, object]]:
        batch: list[dict[str, object]] = []
        for _ in range(self.batch):
            n = next(self._ids)
            batch.append(
                {
                    "type": "agent.ping",
                    "id": f"{self.prefix}-{n}",
                    "agent_id": f"a{n % self.agents}",
                }
            )
        return batch

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self._deliver(self._next_batch())
            await asyncio.sleep(self.pause_s)

    async def _deliver(self, batch: list[dict[str, object]]) -> None:
        deadline = time.monotonic() + self.give_up_s
        while True:
            client = self.clients[next(self._turn) % len(self.clients)]
            try:
                r = await client.post("/api/v1/events", json={"events": batch}, timeout=10)
                status = r.status_code
            except httpx.TransportError as err:
                status = TRANSPORT_ERROR
                self.last_error = f"{client.base_url}: {err!r}"
            self.answers.append(Answer(time.monotonic(), status))
            if status == 202:
                self.acked.update(r.json()["ids"])
                return
            if status not in (503, TRANSPORT_ERROR):
                raise AssertionError(f"unexpected answer {status}: {r.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {batch[0]['id']} not acknowledged in time")
            await asyncio.sleep(RETRY_PAUSE_S)

    async def until_acked(self, more: int, timeout_s: float = 30) -> None:
        target = len(self.acked) + more
        await wait_until_async(
            lambda: len(self.acked) >= target,
            timeout_s,
            f"{more} more acknowledged events",
            detail=lambda: f"answers: {self.statuses()}; last error: {self.last_error}",
        )

    async def until_answer(self, status: int, after: float, timeout_s: float = 30) -> float:
        """The time of the first answer `status` after `after` (waiting for it)."""
        await wait_until_async(
            lambda: self.first(status, after) is not None, timeout_s, f"an answer {status}"
        )
        found = self.first(status, after)
        assert found is not None
        return found

    def first(self, status: int, after: float) -> float | None:
        return next((a.at for a in self.answers if a.status == status and a.at >= after), None)

    def statuses(self, after: float = 0.0, before: float = float("inf")) -> Counter[int]:
        return Counter(a.status for a in self.answers if after <= a.at <= before)
