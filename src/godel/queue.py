"""Redis queue operations on the contract keys. Each is one round trip (a command, a
pipeline or a Lua script). Messages are event ids: the ledger holds the payloads, so
Redis memory per event stays small and a lost message can be found again by id (LPOS).

    godel:queue:pending            LIST  LPUSH new ids; workers take from the right (FIFO)
    godel:queue:processing:<w>     LIST  what worker <w> has claimed and not yet acked
    godel:queue:delayed            ZSET  id -> time it may run again (retry backoff)
    godel:queue:dead:<type>        LIST  ids whose attempts are exhausted
    godel:workers                  ZSET  worker -> lease expiry (Redis server time)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis

from godel.constants import (
    QUEUE_DEAD_PREFIX,
    QUEUE_DELAYED,
    QUEUE_PENDING,
    QUEUE_PROCESSING_PREFIX,
    WORKERS,
    dead_key,
    processing_key,
)

# Claim up to ARGV[1] ids from the right of pending and renew this worker's lease.
CLAIM = """
local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], 0, -#items - 1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[3], tonumber(now[1]) + tonumber(ARGV[2]), ARGV[3])
return items
"""

# Renew a lease (idle workers blocked in BLMOVE still need to look alive).
HEARTBEAT = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(ARGV[1]), ARGV[2])
return 1
"""

# Move due retries back to pending.
PROMOTE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t, 'LIMIT', 0, tonumber(ARGV[1]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('LPUSH', KEYS[2], unpack(due))
end
return #due
"""

# Return the claims of workers whose lease expired to the consuming end of pending.
REAP = """
local now = redis.call('TIME')
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(now[1]))
local moved = 0
for _, w in ipairs(dead) do
  local key = ARGV[1] .. w
  local items = redis.call('LRANGE', key, 0, -1)
  if #items > 0 then
    redis.call('RPUSH', KEYS[2], unpack(items))
    moved = moved + #items
  end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], w)
end
return moved
"""

# Give back everything this worker holds (graceful stop, or the ledger refused its acks).
REQUEUE_OWN = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
if #items > 0 then redis.call('RPUSH', KEYS[2], unpack(items)) end
redis.call('DEL', KEYS[1])
return #items
"""


async def push(r: Redis, ids: Sequence[str]) -> None:
    """Push ids in ledger order: the first id is the first one a worker takes."""
    if ids:
        await r.lpush(QUEUE_PENDING, *ids)


async def claim(r: Redis, worker: str, limit: int, lease_s: float) -> list[str]:
    keys = [QUEUE_PENDING, processing_key(worker), WORKERS]
    items: list[str] = await r.eval(CLAIM, 3, *keys, limit, int(lease_s), worker)
    items.reverse()  # LRANGE gave newest..oldest; process oldest first
    return items


async def claim_blocking(r: Redis, worker: str, timeout_s: float) -> str | None:
    item = await r.blmove(
        QUEUE_PENDING,
        processing_key(worker),
        timeout_s,  # type: ignore[arg-type]  # BLMOVE takes fractional seconds
        "RIGHT",
        "LEFT",
    )
    return cast(str | None, item)


async def heartbeat(r: Redis, worker: str, lease_s: float) -> None:
    await r.eval(HEARTBEAT, 1, WORKERS, int(lease_s), worker)


@dataclass(slots=True)
class Outcome:
    """What to do in Redis once a claimed batch is settled in the ledger."""

    done: list[str] = field(default_factory=list)  # processed or duplicate: just ack
    retry: dict[str, float] = field(default_factory=dict)  # id -> run-at (epoch seconds)
    dead: list[tuple[str, str]] = field(default_factory=list)  # (id, event type)


async def settle(r: Redis, worker: str, outcome: Outcome) -> None:
    """Ack a batch, schedule its retries and file its dead letters in one MULTI."""
    key = processing_key(worker)
    async with r.pipeline(transaction=True) as pipe:
        for event_id in outcome.done:
            pipe.lrem(key, 1, event_id)
        for event_id, run_at in outcome.retry.items():
            pipe.lrem(key, 1, event_id)
            pipe.zadd(QUEUE_DELAYED, {event_id: run_at})
        for event_id, event_type in outcome.dead:
            pipe.lrem(key, 1, event_id)
            pipe.lpush(dead_key(event_type), event_id)
        await pipe.execute()


async def promote_due(r: Redis, limit: int = 1000) -> int:
    moved: int = await r.eval(PROMOTE, 2, QUEUE_DELAYED, QUEUE_PENDING, limit)
    return moved


async def reap(r: Redis) -> int:
    moved: int = await r.eval(REAP, 2, WORKERS, QUEUE_PENDING, QUEUE_PROCESSING_PREFIX)
    return moved


async def requeue_own(r: Redis, worker: str) -> int:
    moved: int = await r.eval(REQUEUE_OWN, 2, processing_key(worker), QUEUE_PENDING)
    return moved


async def leave(r: Redis, worker: str) -> None:
    await requeue_own(r, worker)
    await r.zrem(WORKERS, worker)


async def schedule(
    r: Redis, pending: Sequence[str], delayed: dict[str, float], dead: Sequence[tuple[str, str]]
) -> None:
    """Replay/reconcile: put ledger events back where they belong, in one pipeline."""
    async with r.pipeline(transaction=False) as pipe:
        if pending:
            pipe.lpush(QUEUE_PENDING, *pending)
        if delayed:
            pipe.zadd(QUEUE_DELAYED, delayed)
        for event_id, event_type in dead:
            pipe.lpush(dead_key(event_type), event_id)
        await pipe.execute()


async def present(r: Redis, ids: Sequence[str]) -> set[str]:
    """Which of these ids Redis still holds anywhere (pending, processing, delayed)."""
    workers = cast(list[str], await r.zrange(WORKERS, 0, -1))
    async with r.pipeline(transaction=False) as pipe:
        for event_id in ids:
            pipe.lpos(QUEUE_PENDING, event_id)
            pipe.zscore(QUEUE_DELAYED, event_id)
            for w in workers:
                pipe.lpos(processing_key(w), event_id)
        replies = await pipe.execute()
    per_id = 2 + len(workers)
    found: set[str] = set()
    for i, event_id in enumerate(ids):
        if any(v is not None for v in replies[i * per_id : (i + 1) * per_id]):
            found.add(event_id)
    return found


async def depths(r: Redis) -> dict[str, object]:
    """Queue depths for /health, metrics and the dashboard."""
    workers = cast(list[str], await r.zrange(WORKERS, 0, -1))
    dead_keys = [k async for k in r.scan_iter(match=f"{QUEUE_DEAD_PREFIX}*", count=200)]
    async with r.pipeline(transaction=False) as pipe:
        pipe.llen(QUEUE_PENDING)
        pipe.zcard(QUEUE_DELAYED)
        for w in workers:
            pipe.llen(processing_key(w))
        for k in dead_keys:
            pipe.llen(k)
        replies = await pipe.execute()
    pending, delayed = int(replies[0]), int(replies[1])
    processing = sum(int(x) for x in replies[2 : 2 + len(workers)])
    dead = {
        k[len(QUEUE_DEAD_PREFIX) :]: int(n)
        for k, n in zip(dead_keys, replies[2 + len(workers) :], strict=True)
    }
    return {
        "pending": pending,
        "processing": processing,
        "delayed": delayed,
        "dead": dead,
        "workers": len(workers),
    }


async def dead_ids(r: Redis, event_type: str, limit: int) -> list[str]:
    ids = cast(list[str], await r.lrange(dead_key(event_type), 0, limit - 1))
    return ids


async def processing_holder(r: Redis, event_id: str) -> str | None:
    """The worker currently holding an event in its processing list, if any."""
    workers = cast(list[str], await r.zrange(WORKERS, 0, -1))
    for w in workers:
        if await r.lpos(processing_key(w), event_id) is not None:
            return w
    return None
