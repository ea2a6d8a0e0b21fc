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

import functools
import time
from collections.abc import Sequence
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from sqlalchemy import Connection, and_, func, select, update

from godel import ledger, queue
from godel.constants import QUEUE_DEAD_PREFIX, QUEUE_PENDING, dead_key
from godel.db import Database, events
from godel.errors import NotFound, RedisUnavailable
from godel.events import Status
from godel.link import Link

PURGED = Status.PURGED
BATCH = 1000
TIDY_MAX_IDS = 100_000  # per list and call; a longer dead list is synced over several calls
SETTLE_GRACE_S = 30.0  # a worker files a dead letter in Redis just after its ledger commit

# Remove every occurrence of the ARGV ids from the list KEYS[1], keeping the others in
# order: one pass, where LREM per id would be quadratic on long dead lists.
REMOVE_IDS = """
local drop = {}
for _, v in ipairs(ARGV) do drop[v] = true end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local keep = {}
for _, v in ipairs(items) do
  if not drop[v] then keep[#keep + 1] = v end
end
local removed = #items - #keep
if removed > 0 then
  redis.call('DEL', KEYS[1])
  for i = 1, #keep, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(keep, i, math.min(i + 999, #keep)))
  end
end
return removed
"""

DEAD_FIELDS = ("id", "seq", "type", "agent_id", "attempts", "last_error", "created_at")


def public_dead(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in DEAD_FIELDS}
    out["updated_at"] = row.get("updated_at")
    out["payload"] = orjson.loads(row["payload"])
    return out


def _dead(event_type: str | None) -> Any:
    cond = events.c.status == Status.DEAD
    return and_(cond, events.c.type == event_type) if event_type else cond


def count_dead(conn: Connection) -> dict[str, int]:
    stmt = select(events.c.type, func.count()).where(_dead(None)).group_by(events.c.type)
    return {str(t): int(n) for t, n in conn.execute(stmt).all()}


def take_dead(
    conn: Connection, event_type: str | None, after: int, limit: int, values: dict[str, Any]
) -> tuple[int, list[tuple[str, str]]]:
    """Set `values` on the oldest `limit` dead rows past seq `after`: (last seq, [(id, type)]).

    The seq cursor keeps one call finite: a replayed event that dies again at once (the bug
    is not fixed yet) is behind the cursor and waits for the next call."""
    want = and_(_dead(event_type), events.c.seq > after)
    inner = select(events.c.seq).where(want).order_by(events.c.seq).limit(limit)
    inner = inner.with_for_update(skip_locked=True)
    stmt = (
        update(events)
        .where(events.c.seq.in_(inner.scalar_subquery()), events.c.status == Status.DEAD)
        .values(**values)
        .returning(events.c.seq, events.c.id, events.c.type)
    )
    rows = sorted(conn.execute(stmt).all(), key=lambda r: r.seq)
    return (rows[-1].seq if rows else after), [(r.id, r.type) for r in rows]


def dead_ids(
    conn: Connection, event_type: str, after: int, limit: int, before: float
) -> list[tuple[int, str]]:
    """(seq, id) of dead rows of one type past `after`, last touched before `before`."""
    want = and_(_dead(event_type), events.c.seq > after, events.c.updated_at < before)
    stmt = select(events.c.seq, events.c.id).where(want).order_by(events.c.seq).limit(limit)
    return [(int(seq), str(i)) for seq, i in conn.execute(stmt).all()]


def statuses(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    stmt = select(events.c.id, events.c.status).where(events.c.id.in_(list(ids)))
    return {str(i): str(s) for i, s in conn.execute(stmt).all()}


def _by_type(batch: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for event_id, event_type in batch:
        grouped.setdefault(event_type, []).append(event_id)
    return grouped


async def _unlist(r: Redis, batch: Sequence[tuple[str, str]], push: bool) -> None:
    """Take ids off their dead lists and, for a replay, onto pending, in one MULTI."""
    async with r.pipeline(transaction=True) as pipe:
        for event_type, ids in _by_type(batch).items():
            pipe.eval(REMOVE_IDS, 1, dead_key(event_type), *ids)
        if push:
            pipe.lpush(QUEUE_PENDING, *[event_id for event_id, _ in batch])
        await pipe.execute()


async def _remove(r: Redis, key: str, ids: Sequence[str]) -> int:
    removed: int = await r.eval(REMOVE_IDS, 1, key, *ids)
    return removed


async def _append(r: Redis, key: str, ids: Sequence[str]) -> None:
    await r.rpush(key, *ids)


async def _head(r: Redis, key: str) -> list[str]:
    return cast(list[str], await r.lrange(key, 0, TIDY_MAX_IDS - 1))


async def _dead_keys(r: Redis) -> list[str]:
    return [k async for k in r.scan_iter(match=f"{QUEUE_DEAD_PREFIX}*", count=200)]


class DeadLetters:
    """The dead-letter operations behind /admin/dead and `godel dead`."""

    def __init__(self, db: Database, link: Link, batch: int = BATCH) -> None:
        self.db = db
        self.link = link
        self.batch = batch

    async def summary(self) -> dict[str, Any]:
        """Dead events per type from the ledger; the Redis list lengths when connected."""
        types = await self.db.read(count_dead)
        out: dict[str, Any] = {"types": types, "total": sum(types.values())}
        if self.link.connected:
            try:
                depths = await self.link.call(queue.depths)
            except RedisUnavailable:
                return out
            out["redis"] = depths["dead"]
        return out

    async def page(self, event_type: str | None, limit: int, cursor: int | None) -> dict[str, Any]:
        query = ledger.EventQuery(type=event_type, status=Status.DEAD, after=cursor, limit=limit)
        rows = await self.db.read(ledger.list_events, query)
        next_cursor = rows[-1]["seq"] if len(rows) == limit else None
        return {"events": [public_dead(r) for r in rows], "next_cursor": next_cursor}

    async def get(self, event_id: str) -> dict[str, Any]:
        row = await self.db.read(ledger.get_event, event_id)
        if row is None or row["status"] != Status.DEAD:
            raise NotFound(f"no dead event with id {event_id!r}")
        return public_dead(row)

    async def replay(self, event_type: str | None = None) -> dict[str, int]:
        """Give dead events a fresh set of attempts. `pushed` counts those sent to Redis now;
        the rest wait, undispatched, for the recovery replay."""
        replayed = pushed = cursor = 0
        while True:
            now = time.time()
            connected = self.link.connected
            values = {
                "status": Status.QUEUED,
                "attempts": 0,
                "available_at": now,
                "updated_at": now,
                "dispatched": connected,
                "claimed_by": None,
                "claimed_until": None,
            }
            cursor, batch = await self.db.write(take_dead, event_type, cursor, self.batch, values)
            if not batch:
                break
            replayed += len(batch)
            if connected and await self._requeue(batch):
                pushed += len(batch)
        await self._sync_quietly(event_type)
        return {"replayed": replayed, "pushed": pushed}

    async def _requeue(self, batch: Sequence[tuple[str, str]]) -> bool:
        try:
            await self.link.call(lambda r: _unlist(r, batch, push=True))
        except RedisUnavailable:
            # Committed as dispatched but never pushed: hand the batch to the replay.
            await self.db.write(ledger.mark_undispatched, [event_id for event_id, _ in batch])
            return False
        return True

    async def purge(self, event_type: str | None = None) -> dict[str, int]:
        """Throw dead events away: the rows stay, marked purged, and leave the Redis lists."""
        purged = cursor = 0
        while True:
            now = time.time()
            # dispatched=True: a purged event is never part of the undispatched backlog.
            values = {"status": PURGED, "dispatched": True, "updated_at": now}
            cursor, batch = await self.db.write(take_dead, event_type, cursor, self.batch, values)
            if not batch:
                break
            purged += len(batch)
            if self.link.connected:
                try:
                    await self.link.call(functools.partial(_unlist, batch=batch, push=False))
                except RedisUnavailable:
                    pass  # the ledger is settled; tidy() clears the lists once Redis is back
        await self._sync_quietly(event_type)
        return {"purged": purged}

    async def _sync_quietly(self, event_type: str | None) -> None:
        if not self.link.connected:
            return
        try:
            await self.sync(event_type)
        except RedisUnavailable:
            pass  # the Link is in fallback now; the next replay or purge syncs

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
            keys = await self.link.call(_dead_keys)
            listed_types = {k[len(QUEUE_DEAD_PREFIX) :] for k in keys}
            types = sorted(listed_types | set(await self.db.read(count_dead)))
        removed = restored = 0
        for name in types:
            key = dead_key(name)
            listed = await self.link.call(functools.partial(_head, key=key))
            removed += await self._drop_stale(key, sorted(set(listed)))
            if len(listed) < TIDY_MAX_IDS:  # else `listed` is partial: nothing is missing
                restored += await self._restore(name, set(listed), time.time() - settle_grace_s)
        return {"removed": removed, "restored": restored}

    async def _drop_stale(self, key: str, ids: Sequence[str]) -> int:
        removed = 0
        for start in range(0, len(ids), self.batch):
            chunk = ids[start : start + self.batch]
            known = await self.db.read(statuses, chunk)
            stale = [i for i in chunk if known.get(i) != Status.DEAD]
            if stale:
                removed += await self.link.call(functools.partial(_remove, key=key, ids=stale))
        return removed

    async def _restore(self, event_type: str, listed: set[str], before: float) -> int:
        restored = cursor = 0
        while True:
            rows = await self.db.read(dead_ids, event_type, cursor, self.batch, before)
            if not rows:
                return restored
            cursor = rows[-1][0]
            missing = [event_id for _, event_id in rows if event_id not in listed]
            if missing:
                # RPUSH: these are older than anything filed since, which LPUSH put left.
                await self.link.call(
                    functools.partial(_append, key=dead_key(event_type), ids=missing)
                )
                restored += len(missing)
