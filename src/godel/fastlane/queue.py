"""The FastLane: every queue operation on the contract keys (see `keys`; the Link's `keys`
are those of its Redis mode), as methods.

Messages are event ids: the ledger holds the payloads, so Redis memory per event stays
small and a lost message can be found again by id (LPOS). Each operation is one round trip
(a command, a pipeline or a Lua script) through the Link, so an outage becomes
RedisUnavailable and fallback. `lane.recovering` is the same lane for the recovery, whose
writes go out while the Link is not yet connected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from redis.asyncio import Redis

from godel.fastlane import scripts
from godel.fastlane.link import Link
from godel.fastlane.topology import queue_node

T = TypeVar("T")
TIDY_MAX_IDS = 100_000  # dead-list ids read per call; a longer list is synced over several


@dataclass(slots=True)
class Outcome:
    """What to do in Redis once a claimed batch is settled in the ledger."""

    done: list[str] = field(default_factory=list)  # processed or duplicate: just ack
    retry: dict[str, float] = field(default_factory=dict)  # id -> run-at (epoch seconds)
    dead: list[tuple[str, str]] = field(default_factory=list)  # (id, event type)


@dataclass(frozen=True, slots=True)
class QueueDepths:
    """Lengths of the queues, for /health, the metrics and the dashboard."""

    pending: int
    processing: int
    delayed: int
    dead: dict[str, int]
    workers: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "processing": self.processing,
            "delayed": self.delayed,
            "dead": dict(self.dead),
            "workers": self.workers,
        }


def _by_type(batch: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for event_id, event_type in batch:
        grouped.setdefault(event_type, []).append(event_id)
    return grouped


class FastLane:
    """Queue operations for workers, ingest, recovery and dead letters."""

    def __init__(self, link: Link, *, during_recovery: bool = False) -> None:
        self.link = link
        self.keys = link.keys
        self._during_recovery = during_recovery
        self._recovering: FastLane | None = None

    @property
    def recovering(self) -> FastLane:
        """This lane for the recovery: its calls go out in any Link state."""
        if self._during_recovery:
            return self
        if self._recovering is None:
            self._recovering = FastLane(self.link, during_recovery=True)
        return self._recovering

    async def _call(self, fn: Callable[[Redis], Awaitable[T]], *, blocking: bool = False) -> T:
        if self._during_recovery:
            return await self.link.call_recovering(fn)
        return await self.link.call(fn, blocking=blocking)

    # -- ingest and workers ------------------------------------------------------------

    async def push(self, ids: Sequence[str]) -> None:
        """Push ids in ledger order: the first id is the first one a worker takes."""
        if ids:
            await self._call(lambda r: r.lpush(self.keys.pending, *ids))

    async def claim(self, worker: str, limit: int, lease_s: float) -> list[str]:
        """Up to `limit` ids into this worker's processing list, oldest first."""
        names = [self.keys.pending, self.keys.processing(worker), self.keys.workers]
        args = (limit, int(lease_s), worker)
        items = cast(list[str], await self._call(lambda r: r.eval(scripts.CLAIM, 3, *names, *args)))
        items.reverse()  # LRANGE gave newest..oldest
        return items

    async def ack_and_claim(
        self, worker: str, done: Sequence[str], limit: int, lease_s: float
    ) -> list[str]:
        """Ack `done` (all processed or duplicates), then claim as `claim` does."""
        names = [self.keys.pending, self.keys.processing(worker), self.keys.workers]
        args: list[str | int] = [limit, int(lease_s), worker, *done]
        reply = await self._call(lambda r: r.eval(scripts.ACK_CLAIM, 3, *names, *args))
        items = cast(list[str], reply)
        items.reverse()  # LRANGE gave newest..oldest
        return items

    async def claim_blocking(self, worker: str, timeout_s: float) -> str | None:
        def blmove(r: Redis) -> Awaitable[Any]:
            return r.blmove(
                self.keys.pending,
                self.keys.processing(worker),
                timeout_s,  # type: ignore[arg-type]  # BLMOVE takes fractional seconds
                "RIGHT",
                "LEFT",
            )

        return cast(str | None, await self._call(blmove, blocking=True))

    async def heartbeat(self, worker: str, lease_s: float) -> None:
        await self._call(
            lambda r: r.eval(scripts.HEARTBEAT, 1, self.keys.workers, int(lease_s), worker)
        )

    async def settle(self, worker: str, outcome: Outcome) -> None:
        """Ack a batch, schedule its retries and file its dead letters in one MULTI."""
        key = self.keys.processing(worker)

        async def run(r: Redis) -> None:
            async with r.pipeline(transaction=True) as pipe:
                for event_id in outcome.done:
                    pipe.lrem(key, 1, event_id)
                for event_id, run_at in outcome.retry.items():
                    pipe.lrem(key, 1, event_id)
                    pipe.zadd(self.keys.delayed, {event_id: run_at})
                for event_id, event_type in outcome.dead:
                    pipe.lrem(key, 1, event_id)
                    pipe.lpush(self.keys.dead(event_type), event_id)
                await pipe.execute()

        await self._call(run)

    async def requeue_own(self, worker: str) -> int:
        """Give back everything this worker holds (its ledger acks were refused)."""
        names = (self.keys.processing(worker), self.keys.pending)
        return int(await self._call(lambda r: r.eval(scripts.REQUEUE_OWN, 2, *names)))

    async def leave(self, worker: str) -> None:
        await self.requeue_own(worker)
        await self._call(lambda r: r.zrem(self.keys.workers, worker))

    async def promote_due(self, limit: int = 1000) -> int:
        """Move retries whose backoff has passed back to pending."""
        names = (self.keys.delayed, self.keys.pending)
        return int(await self._call(lambda r: r.eval(scripts.PROMOTE, 2, *names, limit)))

    async def reap(self) -> int:
        """Return the claims of workers whose lease expired to pending."""
        names = (self.keys.workers, self.keys.pending, self.keys.processing_prefix)
        return int(await self._call(lambda r: r.eval(scripts.REAP, 2, *names)))

    # -- recovery ---------------------------------------------------------------------

    async def schedule(
        self,
        pending: Sequence[str],
        delayed: Mapping[str, float],
        dead: Sequence[tuple[str, str]],
    ) -> None:
        """Replay/reconcile: put ledger events back where they belong, in one pipeline."""

        async def run(r: Redis) -> None:
            async with r.pipeline(transaction=False) as pipe:
                if pending:
                    pipe.lpush(self.keys.pending, *pending)
                if delayed:
                    pipe.zadd(self.keys.delayed, dict(delayed))
                for event_id, event_type in dead:
                    pipe.lpush(self.keys.dead(event_type), event_id)
                await pipe.execute()

        await self._call(run)

    async def present(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids Redis still holds anywhere (pending, processing, delayed)."""

        async def run(r: Redis) -> set[str]:
            workers = cast(list[str], await r.zrange(self.keys.workers, 0, -1))
            async with r.pipeline(transaction=False) as pipe:
                for event_id in ids:
                    pipe.lpos(self.keys.pending, event_id)
                    pipe.zscore(self.keys.delayed, event_id)
                    for w in workers:
                        pipe.lpos(self.keys.processing(w), event_id)
                replies = await pipe.execute()
            per_id = 2 + len(workers)
            return {
                event_id
                for i, event_id in enumerate(ids)
                if any(v is not None for v in replies[i * per_id : (i + 1) * per_id])
            }

        return await self._call(run)

    async def mark_dataset(self) -> bool:
        """Set the sentinel key; True when it was missing (a fresh or emptied Redis)."""
        was_set = await self._call(lambda r: r.set(self.keys.sentinel, "1", nx=True))
        return bool(was_set)

    # -- inspection ----------------------------------------------------------------------

    async def depths(self) -> QueueDepths:
        async def run(r: Redis) -> QueueDepths:
            workers = cast(list[str], await r.zrange(self.keys.workers, 0, -1))
            dead_keys = await self._dead_keys(r)
            async with r.pipeline(transaction=False) as pipe:
                pipe.llen(self.keys.pending)
                pipe.zcard(self.keys.delayed)
                for w in workers:
                    pipe.llen(self.keys.processing(w))
                for k in dead_keys:
                    pipe.llen(k)
                replies = await pipe.execute()
            held = replies[2 : 2 + len(workers)]
            dead = zip(dead_keys, replies[2 + len(workers) :], strict=True)
            return QueueDepths(
                pending=int(replies[0]),
                processing=sum(int(x) for x in held),
                delayed=int(replies[1]),
                dead={k[len(self.keys.dead_prefix) :]: int(n) for k, n in dead},
                workers=len(workers),
            )

        return await self._call(run)

    async def processing_holder(self, event_id: str) -> str | None:
        """The worker currently holding an event in its processing list, if any."""

        async def run(r: Redis) -> str | None:
            for w in cast(list[str], await r.zrange(self.keys.workers, 0, -1)):
                if await r.lpos(self.keys.processing(w), event_id) is not None:
                    return w
            return None

        return await self._call(run)

    async def held(self) -> dict[str, int]:
        """Per worker with a lease in godel:workers: the ids its processing list holds."""

        async def run(r: Redis) -> dict[str, int]:
            workers = cast(list[str], await r.zrange(self.keys.workers, 0, -1))
            async with r.pipeline(transaction=False) as pipe:
                for w in workers:
                    pipe.llen(self.keys.processing(w))
                replies = await pipe.execute()
            return {w: int(n) for w, n in zip(workers, replies, strict=True)}

        return await self._call(run)

    # -- dead lists --------------------------------------------------------------------

    async def _dead_keys(self, r: Redis) -> list[str]:
        # In a cluster every dead list is in slot {godel}: scan its node only (a SCAN of
        # every node would fail while a node Godel does not use is down).
        node = await queue_node(r, self.keys)
        match = f"{self.keys.dead_prefix}*"
        return [k async for k in r.scan_iter(match=match, count=200, **node)]

    async def dead_types(self) -> set[str]:
        """Event types that have a dead list in Redis."""

        async def run(r: Redis) -> set[str]:
            return {k[len(self.keys.dead_prefix) :] for k in await self._dead_keys(r)}

        return await self._call(run)

    async def dead_head(self, event_type: str) -> list[str]:
        """The first TIDY_MAX_IDS ids of a dead list."""
        key = self.keys.dead(event_type)
        return cast(list[str], await self._call(lambda r: r.lrange(key, 0, TIDY_MAX_IDS - 1)))

    async def remove_dead(self, event_type: str, ids: Sequence[str]) -> int:
        key = self.keys.dead(event_type)
        return int(await self._call(lambda r: r.eval(scripts.REMOVE_IDS, 1, key, *ids)))

    async def append_dead(self, event_type: str, ids: Sequence[str]) -> None:
        """RPUSH: older than anything filed since, which LPUSH put on the left."""
        key = self.keys.dead(event_type)
        await self._call(lambda r: r.rpush(key, *ids))

    async def unlist_dead(self, batch: Sequence[tuple[str, str]], *, requeue: bool) -> None:
        """Take ids off their dead lists and, with `requeue`, onto pending, in one MULTI."""

        async def run(r: Redis) -> None:
            async with r.pipeline(transaction=True) as pipe:
                for event_type, ids in _by_type(batch).items():
                    pipe.eval(scripts.REMOVE_IDS, 1, self.keys.dead(event_type), *ids)
                if requeue:
                    pipe.lpush(self.keys.pending, *[event_id for event_id, _ in batch])
                await pipe.execute()

        await self._call(run)
