"""The roster: which workers exist across the fleet, since when, when they last beat and what
each holds (GET /api/v1/workers, `godel workers`, the dashboard).

Each Worker writes its own row of the ledger's `workers` table: at start, every `beat_s`
from its claim loop, and when it stops. The ledger, not Redis, because the roster must work
in every mode: the Redis lease (godel:workers) vanishes with Redis, and a ledger-only fleet
has none. A heartbeat is one tiny UPDATE per worker every few seconds. It is written by the
claim loop itself, so a worker stuck inside a handler stops beating and shows as `silent`.

What a worker holds comes from where its claims are: the length of its processing list
(godel:queue:processing:<w>) while Redis answers, and its ledger claims (`claimed_by`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from godel.config import Settings
from godel.errors import LedgerUnavailable
from godel.fastlane.link import try_call
from godel.fastlane.queue import FastLane
from godel.store import ledger
from godel.store import workers as table
from godel.store.database import Database

log = logging.getLogger("godel.roster")
BEAT_MAX_S = 5.0
SILENT_AFTER_BEATS = 3  # no heartbeat for this many periods: silent (stuck, or killed)
RETAIN_S = 24 * 3600.0  # rows of workers not heard of for a day are deleted
LISTED_S = 3600.0  # stopped or silent workers stay listed this long


class Roster:
    """Heartbeats for the workers of this process, and the fleet's roster for readers."""

    def __init__(self, settings: Settings, *, db: Database, lane: FastLane) -> None:
        self.db = db
        self.lane = lane
        self.beat_s = min(BEAT_MAX_S, settings.worker_lease_s / 2)
        self.silent_after_s = self.beat_s * SILENT_AFTER_BEATS
        self._beats: dict[str, float] = {}

    async def _write(self, what: str, fn: Any, *args: Any) -> Any:
        """Best effort: a worker keeps working while the ledger is away; its row catches up
        with the next heartbeat."""
        try:
            return await self.db.write(fn, *args)
        except LedgerUnavailable as err:
            log.debug("roster %s: %s", what, err)
        except Exception as err:  # never stop a worker for its roster row (a schema behind?)
            log.warning("roster %s failed: %s: %s", what, type(err).__name__, err)
        return None

    async def join(self, name: str) -> None:
        now = time.time()
        self._beats[name] = time.monotonic()
        await self._write("prune", table.prune, now - RETAIN_S)
        await self._write("join", table.join, name, socket.gethostname(), os.getpid(), now)

    async def beat(self, name: str, processed: int) -> None:
        """Called on every claim loop; writes at most once per `beat_s`."""
        if time.monotonic() - self._beats.get(name, 0.0) < self.beat_s:
            return
        self._beats[name] = time.monotonic()
        if await self._write("beat", table.beat, name, time.time(), processed) is False:
            await self.join(name)

    async def leave(self, name: str, processed: int) -> None:
        self._beats.pop(name, None)
        await self._write("leave", table.leave, name, time.time(), processed)

    async def report(self, listed_s: float = LISTED_S) -> dict[str, Any]:
        """Every worker heard of in the last `listed_s`: status (`alive`, `silent`:
        no heartbeat for SILENT_AFTER_BEATS periods, `stopped`, or `leased`: a Redis lease
        without a roster row), times, and what it holds:
        `held_redis` (None while Redis does not answer) and `held_ledger`."""
        now = time.time()
        rows = await self.db.read(table.list_workers, now - listed_s)
        claims = await self.db.read(ledger.ledger_claims)
        in_redis = await try_call(self.lane.held(), None)
        out = [self._entry(row, now, claims, in_redis) for row in rows]
        known = {row["name"] for row in rows}
        for name, held in sorted((in_redis or {}).items()):
            if name not in known:  # a lease without a row (its ledger writes failed)
                out.append(_lease_only(name, held, claims.get(name, 0)))
        return {
            "workers": out,
            "alive": sum(1 for w in out if w["status"] == "alive"),
            "redis": in_redis is not None,
            "heartbeat_s": self.beat_s,
            "at": now,
        }

    def _entry(
        self,
        row: dict[str, Any],
        now: float,
        claims: dict[str, int],
        in_redis: dict[str, int] | None,
    ) -> dict[str, Any]:
        if row["stopped_at"] is not None:
            status = "stopped"
        elif now - row["heartbeat_at"] > self.silent_after_s:
            status = "silent"
        else:
            status = "alive"
        name = row["name"]
        return {
            **row,
            "status": status,
            "held_redis": None if in_redis is None else in_redis.get(name, 0),
            "held_ledger": claims.get(name, 0),
        }


def _lease_only(name: str, held: int, claims: int) -> dict[str, Any]:
    return {
        "name": name,
        "host": None,
        "pid": None,
        "started_at": None,
        "heartbeat_at": None,
        "stopped_at": None,
        "processed": None,
        "status": "leased",
        "held_redis": held,
        "held_ledger": claims,
    }
