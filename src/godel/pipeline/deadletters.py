"""Dead letters: inspect, replay and purge events whose attempts ran out.

The ledger decides, Redis follows. A dead event is a ledger row with status `dead`; the
list `godel:queue:dead:<type>` mirrors those rows for `redis-cli llen` and the metrics.

    replay   dead -> queued (attempts 0, last_error kept); pushed onto pending when the link
             is connected, otherwise left undispatched for the recovery replay
    purge    dead -> purged (the row stays: the ledger keeps its history); nothing to push

Both work in SQL batches and are idempotent: a second call finds no dead rows. Replays and
purges done while Redis is down leave stale ids in the Redis lists, and a Redis restarted
without its data has lost the lists; `sync` repairs both and runs after every replay or
purge made while connected.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from godel.errors import NotFound, RedisUnavailable
from godel.event import Status
from godel.fastlane.link import try_call
from godel.fastlane.queue import TIDY_MAX_IDS, FastLane
from godel.store import ledger
from godel.store.database import Database

BATCH = 1000
SETTLE_GRACE_S = 30.0  # a worker files a dead letter in Redis just after its ledger commit
DEAD_FIELDS = (
    "id",
    "seq",
    "type",
    "agent_id",
    "attempts",
    "last_error",
    "last_traceback",
    "created_at",
)


def public_dead(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in DEAD_FIELDS}
    out["updated_at"] = row.get("updated_at")
    out["died_at"] = row.get("updated_at")  # a dead row is not touched again until replayed
    out["payload"] = orjson.loads(row["payload"])
    return out


class DeadLetters:
    """The dead-letter operations behind /admin/dead and `godel dead`."""

    def __init__(self, *, db: Database, lane: FastLane, batch: int = BATCH) -> None:
        self.db = db
        self.lane = lane
        self.batch = batch

    async def summary(self) -> dict[str, Any]:
        """Dead events per type from the ledger; the Redis list lengths when connected."""
        types = await self.db.read(ledger.count_dead)
        out: dict[str, Any] = {"types": types, "total": sum(types.values())}
        depths = await try_call(self.lane.depths(), None)
        if depths is not None:
            out["redis"] = depths.dead
        return out

    async def page(self, event_type: str | None, limit: int, cursor: int | None) -> dict[str, Any]:
        """One page, oldest first, with `total`: how many are dead (of this type) in all."""
        query = ledger.EventQuery(type=event_type, status=Status.DEAD, after=cursor, limit=limit)
        rows = await self.db.read(ledger.list_events, query)
        counts = await self.db.read(ledger.count_dead)
        total = counts.get(event_type, 0) if event_type else sum(counts.values())
        next_cursor = rows[-1]["seq"] if len(rows) == limit else None
        return {
            "events": [public_dead(r) for r in rows],
            "next_cursor": next_cursor,
            "total": total,
        }

    async def get(self, event_id: str) -> dict[str, Any]:
        row = await self.db.read(ledger.get_event, event_id)
        if row is None or row["status"] != Status.DEAD:
            raise NotFound(f"no dead event with id {event_id!r}")
        return public_dead(row)

    async def replay(
        self, event_type: str | None = None, event_id: str | None = None
    ) -> dict[str, int]:
        """Give dead events (all, of one type, or the one `event_id`) a fresh set of attempts.
        `pushed` counts those sent to Redis now; the rest wait, undispatched, for the
        recovery replay."""
        replayed = pushed = cursor = 0
        while True:
            now = time.time()
            connected = self.lane.link.connected
            values = {
                "status": Status.QUEUED,
                "attempts": 0,
                "available_at": now,
                "updated_at": now,
                "dispatched": connected,
                "claimed_by": None,
                "claimed_until": None,
            }
            cursor, batch = await self.db.write(
                ledger.take_dead, event_type, cursor, self.batch, values, event_id
            )
            if not batch:
                break
            replayed += len(batch)
            if connected and await self._requeue(batch):
                pushed += len(batch)
        self._found(event_id, replayed)
        await self._sync_quietly(event_type)
        return {"replayed": replayed, "pushed": pushed}

    @staticmethod
    def _found(event_id: str | None, taken: int) -> None:
        if event_id is not None and not taken:
            raise NotFound(f"no dead event with id {event_id!r}")

    async def _requeue(self, batch: Sequence[tuple[str, str]]) -> bool:
        try:
            await self.lane.unlist_dead(batch, requeue=True)
        except RedisUnavailable:
            # Committed as dispatched but never pushed: hand the batch to the replay.
            await self.db.write(ledger.mark_undispatched, [event_id for event_id, _ in batch])
            return False
        return True

    async def purge(
        self, event_type: str | None = None, event_id: str | None = None
    ) -> dict[str, int]:
        """Throw dead events away (all, of one type, or the one `event_id`): the rows stay,
        marked purged, and leave the Redis lists."""
        purged = cursor = 0
        while True:
            now = time.time()
            # dispatched=True: a purged event is never part of the undispatched backlog.
            values = {"status": Status.PURGED, "dispatched": True, "updated_at": now}
            cursor, batch = await self.db.write(
                ledger.take_dead, event_type, cursor, self.batch, values, event_id
            )
            if not batch:
                break
            purged += len(batch)
            # Best effort: the ledger is settled; sync() clears the lists once Redis is back.
            await try_call(self.lane.unlist_dead(batch, requeue=False), None)
        self._found(event_id, purged)
        await self._sync_quietly(event_type)
        return {"purged": purged}

    async def _sync_quietly(self, event_type: str | None) -> None:
        if self.lane.link.connected:
            await try_call(self.sync(event_type), None)  # else the next replay/purge syncs

    async def sync(
        self, event_type: str | None = None, settle_grace_s: float = SETTLE_GRACE_S
    ) -> dict[str, int]:
        """Make the Redis dead lists mirror the ledger: drop the ids it no longer calls dead
        (replayed or purged while Redis was down) and put back the dead ones Redis lost (it
        restarted without its data). Rows younger than `settle_grace_s` are left alone: their
        worker may not have filed them in Redis yet."""
        if event_type:
            types = [event_type]
        else:
            listed_types = await self.lane.dead_types()
            types = sorted(listed_types | set(await self.db.read(ledger.count_dead)))
        removed = restored = 0
        for name in types:
            listed = await self.lane.dead_head(name)
            removed += await self._drop_stale(name, sorted(set(listed)))
            if len(listed) < TIDY_MAX_IDS:  # else `listed` is partial: nothing is missing
                restored += await self._restore(name, set(listed), time.time() - settle_grace_s)
        return {"removed": removed, "restored": restored}

    async def _drop_stale(self, event_type: str, ids: Sequence[str]) -> int:
        removed = 0
        for start in range(0, len(ids), self.batch):
            chunk = ids[start : start + self.batch]
            known = await self.db.read(ledger.statuses, chunk)
            stale = [i for i in chunk if known.get(i) != Status.DEAD]
            if stale:
                removed += await self.lane.remove_dead(event_type, stale)
        return removed

    async def _restore(self, event_type: str, listed: set[str], before: float) -> int:
        restored = cursor = 0
        while True:
            rows = await self.db.read(ledger.dead_ids, event_type, cursor, self.batch, before)
            if not rows:
                return restored
            cursor = rows[-1][0]
            missing = [event_id for _, event_id in rows if event_id not in listed]
            if missing:
                await self.lane.append_dead(event_type, missing)
                restored += len(missing)
