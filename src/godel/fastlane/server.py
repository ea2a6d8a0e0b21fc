"""What the Redis server says about itself (INFO, CONFIG GET): memory, eviction policy and
persistence, exported as gauges, with a warning where queue keys are at risk."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rex
from redis.asyncio import Redis

from godel import metrics
from godel.fastlane.link import Link
from godel.fastlane.topology import queue_node

log = logging.getLogger("godel.link")


@dataclass(frozen=True, slots=True)
class ServerFacts:
    used_memory: int
    maxmemory: int
    maxmemory_policy: str
    aof_enabled: bool
    last_bgsave_ok: bool


async def _config_get(r: Redis, name: str, node: dict[str, Any]) -> str | None:
    try:
        reply = await r.config_get(name, **node)
    except rex.ResponseError:
        return None  # CONFIG is often disabled on managed Redis; INFO still tells us
    value = reply.get(name)
    return str(value) if value is not None else None


async def read_facts(link: Link) -> ServerFacts:
    """INFO and the eviction policy (in a cluster, of the node holding the queue); the
    gauges follow. Raises RedisUnavailable."""

    async def run(r: Redis) -> ServerFacts:
        node = await queue_node(r, link.keys)
        info = await r.info(**node)
        policy = await _config_get(r, "maxmemory-policy", node)
        return ServerFacts(
            used_memory=int(info.get("used_memory", 0)),
            maxmemory=int(info.get("maxmemory", 0)),
            maxmemory_policy=policy or str(info.get("maxmemory_policy", "unknown")),
            aof_enabled=bool(int(info.get("aof_enabled", 0))),
            last_bgsave_ok=info.get("rdb_last_bgsave_status", "ok") == "ok",
        )

    facts = await link.call(run)
    metrics.REDIS_USED_MEMORY.set(facts.used_memory)
    metrics.REDIS_MAXMEMORY.set(facts.maxmemory)
    metrics.REDIS_POLICY_SAFE.set(1 if facts.maxmemory_policy == "noeviction" else 0)
    metrics.REDIS_AOF_ENABLED.set(1 if facts.aof_enabled else 0)
    metrics.REDIS_LAST_BGSAVE_OK.set(1 if facts.last_bgsave_ok else 0)
    return facts


def warn_if_unsafe(facts: ServerFacts) -> None:
    """At start and after each recovery: say so loudly when Redis may lose queue keys."""
    if facts.maxmemory_policy != "noeviction":
        log.warning(
            "Redis maxmemory-policy is %s: Redis may evict queue keys under memory "
            "pressure (the ledger still has every event; set noeviction)",
            facts.maxmemory_policy,
        )
    if not facts.aof_enabled:
        log.info(
            "Redis appendonly is off: a Redis restart empties the fast lane "
            "(the reconciler re-pushes from the ledger)"
        )
    if not facts.last_bgsave_ok:
        log.warning("Redis reports its last background save failed")
