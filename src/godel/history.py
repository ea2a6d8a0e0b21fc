"""The dashboard's history: one bounded in-process ring per series, sampled every
GODEL_HISTORY_INTERVAL_S (5 s: 720 samples are the last hour) by the API's upkeep loop.

A new tab asks for it (GET /api/v1/history) and draws the last hour at once; the stream's
status messages carry each new sample. It lives in the API process's memory only: a restart
starts it empty, and every API instance keeps its own (the counts come from the shared
ledger, so the instances draw the same fleet-wide figures).

Per sample, fleet-wide from the ledger: `accepted` (rows), `processed`, `failed` (the sum
of every row's attempts: failed attempts recorded so far; a replayed dead letter starts
again from 0), `queued`, `retrying`, `dead`, `undispatched`; from Redis while it answers
(else null): `pending`, `delayed`; and `down` (1 while the link is not connected).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from godel.errors import LedgerUnavailable
from godel.event import Status
from godel.fastlane.link import try_call
from godel.fastlane.queue import FastLane
from godel.store import counts, ledger
from godel.store.database import Database

KEEP = 720  # samples per series: one hour at the default 5 s
SERIES = (
    "accepted",
    "processed",
    "failed",
    "queued",
    "retrying",
    "dead",
    "undispatched",
    "pending",
    "delayed",
    "down",
)
Sample = dict[str, Any]


class History:
    """The rings, and what the dashboard asks of them."""

    def __init__(
        self, *, db: Database, lane: FastLane, interval_s: float = 5.0, keep: int = KEEP
    ) -> None:
        self.db = db
        self.lane = lane
        self.interval_s = interval_s
        self.keep = keep
        self._t: deque[float] = deque(maxlen=keep)
        self._series: dict[str, deque[float | None]] = {s: deque(maxlen=keep) for s in SERIES}

    async def sample(self) -> None:
        """Read the figures once and append them (the upkeep loop calls this)."""
        values: Sample = dict.fromkeys(SERIES)
        try:
            totals = await self.db.read(counts.totals)  # O(unfinished), not O(ledger)
            values["undispatched"] = await self.db.read(ledger.count_undispatched)
        except LedgerUnavailable:
            totals = None
        if totals is not None:
            values["accepted"] = sum(n for n, _ in totals.values())
            values["failed"] = sum(tried for _, tried in totals.values())
            for status in (Status.PROCESSED, Status.QUEUED, Status.RETRYING, Status.DEAD):
                values[status.value] = totals.get(status, (0, 0))[0]
        connected = self.lane.link.connected
        depths = await try_call(self.lane.depths(), None) if connected else None
        if depths is not None:
            values["pending"], values["delayed"] = depths.pending, depths.delayed
        values["down"] = 0 if connected else 1
        self.add(time.time(), values)

    def add(self, t: float, values: Sample) -> None:
        self._t.append(t)
        for name, ring in self._series.items():
            ring.append(values.get(name))

    def __len__(self) -> int:
        return len(self._t)

    def as_dict(self, since: float | None = None) -> dict[str, Any]:
        """Columns: `t` (epoch seconds) and one list per series, oldest first."""
        start = 0
        if since is not None:
            start = next((i for i, t in enumerate(self._t) if t > since), len(self._t))
        return {
            "interval_s": self.interval_s,
            "keep": self.keep,
            "t": list(self._t)[start:],
            "series": {name: list(ring)[start:] for name, ring in self._series.items()},
        }

    def latest(self) -> Sample | None:
        if not self._t:
            return None
        return {"t": self._t[-1], **{name: ring[-1] for name, ring in self._series.items()}}

    def baseline(self, window_s: float, now: float | None = None) -> Sample | None:
        """The oldest sample of the last `window_s`: what "growing" is measured against."""
        cutoff = (now if now is not None else time.time()) - window_s
        for i, t in enumerate(self._t):
            if t >= cutoff:
                return {"t": t, **{name: ring[i] for name, ring in self._series.items()}}
        return None
