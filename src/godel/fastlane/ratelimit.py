"""Token buckets in Redis, shared by every API instance: one script call per request
takes from all of its buckets at once, or from none (`scripts.RATE_LIMIT`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from godel.errors import RedisUnavailable
from godel.fastlane import keys, scripts
from godel.fastlane.link import Link

log = logging.getLogger("godel.ratelimit")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket a request takes `cost` tokens from: `kind` agent or key, `name` whose;
    `extra`: how many more to take ahead if the bucket can spare them (a local lease)."""

    kind: str
    name: str
    rate_per_s: float
    burst: int
    cost: int
    extra: int = 0

    @property
    def key(self) -> str:
        return keys.ratelimit_key(self.kind, self.name)


@dataclass(frozen=True, slots=True)
class Shortfall:
    """The request was refused: `bucket` is the first one short; `wait_s` until all of
    the short ones would have enough."""

    bucket: Bucket
    wait_s: float
    # Each bucket's own wait, in the request's order (0: it had enough); empty when unknown.
    waits_s: tuple[float, ...] = ()


class RedisBuckets:
    """The shared buckets. `take` raises RedisUnavailable when Redis cannot decide (the
    Link is not connected, an outage, or an error of the script itself): the caller then
    decides with per-process buckets."""

    def __init__(self, link: Link) -> None:
        self.link = link

    async def take(self, buckets: Sequence[Bucket]) -> Shortfall | list[int]:
        """Take every bucket's cost, plus what it can spare of its `extra`: returns the
        extras granted, in order. Or the Shortfall, and nothing is taken."""
        names = [self.link.keys(b.key) for b in buckets]  # cluster: all in slot {godel}
        args: list[Any] = []
        for b in buckets:
            args += [repr(float(b.rate_per_s)), b.burst, b.cost, b.extra]

        async def run(r: Redis) -> Any:
            # EVAL, routed by its keys like every Godel script: EVALSHA's fallback, SCRIPT
            # LOAD, goes to every node of a cluster and fails while any one is down.
            return await r.eval(scripts.RATE_LIMIT, len(names), *names, *args)

        try:
            index, wait_ms, *granted = await self.link.call(run)
        except RedisUnavailable:
            raise
        except Exception as exc:  # not an outage: an ACL without HMGET, a client's bug
            # The limit must never make ingest depend on Redis: whatever went wrong, this
            # process decides alone, as while Redis is away.
            log.warning("rate limit script failed (%s); deciding per process", type(exc).__name__)
            raise RedisUnavailable("ratelimit", type(exc).__name__) from exc
        if int(index) == 0:
            return [int(n) for n in granted]
        waits = tuple(int(ms) / 1000 for ms in granted)  # a refusal: each bucket's wait
        return Shortfall(buckets[int(index) - 1], int(wait_ms) / 1000, waits)
