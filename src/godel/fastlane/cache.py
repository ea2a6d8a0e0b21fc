"""The agent cache: Redis first (`godel:cache:…` keys with a TTL), a bounded in-memory LRU
with TTL while the Link is down. The database is the truth, so the in-memory copy is
dropped on recovery, never written back.

Callers name entries with `keys.cache_key` (the standalone form); in Redis an entry lives
under the Link's name for it (`{godel}:cache:…` in cluster mode, with the queue's keys)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import OrderedDict
from typing import Any

import orjson
from redis.asyncio import Redis

from godel import metrics
from godel.config import Settings
from godel.fastlane.link import Link, LinkState, try_call
from godel.fastlane.topology import queue_node

# The tuple, the float, and the OrderedDict's share per key (hash slot, entry, link node):
# 160 bytes was measured here (bench row 7b) against tracemalloc and RSS.
_MISSING: Any = object()  # a Redis answer that never came
_ENTRY_OVERHEAD = sys.getsizeof((0.0, b"")) + sys.getsizeof(0.0) + 160


class MemoryLRU:
    """An LRU bounded by entries and by bytes, with a TTL per entry."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        metrics.MEMORY_CACHE_MAX_BYTES.set(max_bytes)
        self._export()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            metrics.MEMORY_CACHE_MISSES.inc()
            return None
        expires, value = item
        if expires <= time.monotonic():
            self._drop(key)
            metrics.MEMORY_CACHE_EVICTIONS.inc()
            metrics.MEMORY_CACHE_MISSES.inc()
            return None
        self._data.move_to_end(key)
        metrics.MEMORY_CACHE_HITS.inc()
        return value

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        # orjson's bytes keep their generous first allocation (~4 KiB); a copy is exact, so
        # the byte bound holds in real memory, not just in our arithmetic.
        value = bytes(memoryview(value))
        size = self._cost(key, value)
        if size > self.max_bytes:
            return  # one entry may never take the whole budget
        if key in self._data:
            self._drop(key)
        self._data[key] = (time.monotonic() + ttl_s, value)
        self.bytes += size
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)
            metrics.MEMORY_CACHE_EVICTIONS.inc()
        self._export()

    def delete(self, key: str) -> None:
        if key in self._data:
            self._drop(key)
            self._export()

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0
        self._export()

    @staticmethod
    def _cost(key: str, value: bytes) -> int:
        # The objects themselves plus the tuple, the float and the ordered-dict slot.
        return sys.getsizeof(key) + sys.getsizeof(value) + _ENTRY_OVERHEAD

    def _drop(self, key: str) -> None:
        _, value = self._data.pop(key)
        self.bytes -= self._cost(key, value)

    def _export(self) -> None:
        metrics.MEMORY_CACHE_ENTRIES.set(len(self._data))
        metrics.MEMORY_CACHE_BYTES.set(self.bytes)


class Cache:
    """JSON values by key; Redis when connected, memory otherwise."""

    def __init__(self, settings: Settings, link: Link) -> None:
        self.link = link
        self.ttl_s = settings.cache_ttl_s
        self.memory = MemoryLRU(settings.memory_cache_max_entries, settings.memory_cache_max_bytes)
        self._tasks: set[asyncio.Task[int]] = set()
        link.subscribe(self._on_link_change)

    def _on_link_change(self, old: LinkState, new: LinkState) -> None:
        if new is LinkState.CONNECTED:
            # Writes during the outage could not invalidate Redis entries: drop both copies.
            self.memory.clear()
            task = asyncio.get_running_loop().create_task(self.invalidate_redis())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def invalidate_redis(self) -> int:
        async def drop(r: Redis) -> int:
            node = await queue_node(r, self.link.keys)  # a cluster keeps them in one slot
            match = f"{self.link.keys.cache_prefix}*"
            keys = [k async for k in r.scan_iter(match=match, count=500, **node)]
            return int(await r.delete(*keys)) if keys else 0

        return await try_call(self.link.call(drop), 0)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def get(self, key: str) -> dict[str, Any] | None:
        if self.link.connected:
            name = self.link.keys(key)
            raw = await try_call(self.link.call(lambda r: r.get(name)), _MISSING)
            if raw is not _MISSING:
                metrics.CACHE_REQUESTS.labels("redis", "hit" if raw else "miss").inc()
                return orjson.loads(raw) if raw else None
        value = self.memory.get(key)
        metrics.CACHE_REQUESTS.labels("memory", "hit" if value else "miss").inc()
        return orjson.loads(value) if value else None

    async def set(self, key: str, value: dict[str, Any]) -> None:
        data = orjson.dumps(value)
        if self.link.connected:
            name = self.link.keys(key)
            stored = await try_call(
                self.link.call(lambda r: r.set(name, data, ex=self.ttl_s)), None
            )
            if stored is not None:
                return
        self.memory.set(key, data, self.ttl_s)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self.memory.delete(key)
        if keys and self.link.connected:
            names = [self.link.keys(key) for key in keys]
            await try_call(self.link.call(lambda r: r.delete(*names)), 0)

    async def set_many(self, items: dict[str, dict[str, Any]]) -> int:
        """Warm: write many entries in one pipeline."""

        async def write(r: Redis) -> int:
            async with r.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(self.link.keys(key), orjson.dumps(value), ex=self.ttl_s)
                await pipe.execute()
            return len(items)

        return await self.link.call(write)
