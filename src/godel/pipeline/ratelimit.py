"""Rate limits on ingest, counted in events: a token bucket per agent id
(GODEL_AGENT_RATE_PER_S, GODEL_AGENT_BURST) and per API key (GODEL_KEY_RATE_PER_S,
GODEL_KEY_BURST). A request takes from every bucket it touches, or from none: a batch is
accepted or refused whole.

The buckets live in Redis, so every API instance shares them: one script call per
request, whatever the number of agents in it, and most requests need none: each call also
takes a small lease of tokens ahead (LEASE_OF_BURST of the burst, at most LEASE_OF_RATE_S
of the rate), which this process spends without a round trip for up to LEASE_TTL_S.
Leased tokens come out of the shared bucket, so the limit is never exceeded; unspent ones
lapse (the instances together may admit up to one lease each less than the limit). A
refusal is remembered (Refusals): the agent's next requests are refused here until the
bucket can have refilled enough, without a round trip.

When Redis cannot answer, each process decides with buckets of its own: the limit then
holds per process (N instances let N times the rate through), and ingest never waits
for Redis.
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from godel import metrics
from godel.config import Settings
from godel.errors import InvalidEvent, RateLimited, RedisUnavailable
from godel.event import Event
from godel.fastlane.link import Link
from godel.fastlane.ratelimit import Bucket, RedisBuckets, Shortfall

LOCAL_MAX_BUCKETS = 100_000  # a forgotten bucket is a full one: the bound only forgives
LEASE_OF_BURST = 0.02
LEASE_OF_RATE_S = 0.05
LEASE_TTL_S = 0.5
LEASES_MAX = 10_000


class Leases:
    """Tokens taken from the shared buckets ahead of need, spent here until they lapse."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, float]] = {}  # key -> (tokens, lapses at)

    def spend(self, buckets: Sequence[Bucket], now: float) -> bool:
        """Take every bucket's cost from the leases, or nothing (False)."""
        for b in buckets:
            tokens, lapses = self._held.get(b.key, (0.0, 0.0))
            if lapses <= now or tokens < b.cost:
                return False
        for b in buckets:
            tokens, lapses = self._held[b.key]
            self._held[b.key] = (tokens - b.cost, lapses)
        return True

    def keep(self, buckets: Sequence[Bucket], granted: Sequence[int], now: float) -> None:
        for b, extra in zip(buckets, granted, strict=False):
            tokens, lapses = self._held.pop(b.key, (0.0, 0.0))
            left = tokens if lapses > now else 0.0
            if extra > 0 or left > 0:
                self._held[b.key] = (left + extra, now + LEASE_TTL_S)
        if len(self._held) > LEASES_MAX:
            self._held = {k: v for k, v in self._held.items() if v[1] > now}


class Refusals:
    """Buckets the shared script found short, remembered with how many tokens they had
    then, so that an agent that keeps sending is refused here, without a round trip: a
    refusal must cost less than an acceptance, or a storm of them still slows everyone.

    Exact, not a guess: a shared bucket refills at its rate and only loses tokens otherwise
    (other instances take; lapsed leases are not given back), so its level now is at most
    the level it had plus the refill since. What that bound cannot pay for, Redis would
    refuse as well; anything else goes to Redis. The level is taken from the script's wait,
    rounded up to a millisecond (so read as the most it can have been) and dated from
    before the call (so the refill counted is the most there can have been). One case
    escapes the bound: Redis losing the bucket (a restart without data), which makes it
    full again; this process then refuses for at most the refill time it had computed."""

    def __init__(self, max_buckets: int = LEASES_MAX) -> None:
        self.max_buckets = max_buckets
        self._short: dict[str, tuple[float, float]] = {}  # key -> (at most these tokens, at)

    def note(self, buckets: Sequence[Bucket], short: Shortfall, asked_at: float) -> None:
        for b, wait_s in zip(buckets, short.waits_s, strict=False):
            if wait_s > 0:
                self._short.pop(b.key, None)  # the newest last: the oldest go first
                self._short[b.key] = (b.cost - (wait_s - 0.001) * b.rate_per_s, asked_at)
        while len(self._short) > self.max_buckets:  # a forgotten one is asked of Redis
            del self._short[next(iter(self._short))]

    def check(self, buckets: Sequence[Bucket], now: float) -> Shortfall | None:
        """The refusal Redis would give, when this bound alone proves it; else None."""
        if not self._short:
            return None
        first: Bucket | None = None
        wait_s = 0.0
        for b in buckets:
            noted = self._short.get(b.key)
            if noted is None:
                continue
            most, at = noted
            tokens = most + (now - at) * b.rate_per_s
            if tokens >= b.burst:
                del self._short[b.key]  # full again: nothing left to prove
            elif tokens < b.cost:
                first = first or b
                wait_s = max(wait_s, (b.cost - tokens) / b.rate_per_s)
        return None if first is None else Shortfall(first, wait_s)


def lease_size(b: Bucket) -> int:
    return int(min(b.burst * LEASE_OF_BURST, b.rate_per_s * LEASE_OF_RATE_S))


class LocalBuckets:
    """The same buckets in this process's memory (monotonic clock), LRU-bounded."""

    def __init__(self, max_buckets: int = LOCAL_MAX_BUCKETS) -> None:
        self.max_buckets = max_buckets
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, buckets: Sequence[Bucket], now: float | None = None) -> Shortfall | None:
        now = time.monotonic() if now is None else now
        levels: list[float] = []
        short: Bucket | None = None
        wait_s = 0.0
        for b in buckets:
            tokens, at = self._levels.get(b.key, (float(b.burst), now))
            tokens = min(float(b.burst), tokens + max(0.0, now - at) * b.rate_per_s)
            if tokens < b.cost:
                short = short or b
                wait_s = max(wait_s, (b.cost - tokens) / b.rate_per_s)
            levels.append(tokens - b.cost)
        if short is not None:
            return Shortfall(short, wait_s)
        for b, level in zip(buckets, levels, strict=True):
            self._levels[b.key] = (level, now)
            self._levels.move_to_end(b.key)
        while len(self._levels) > self.max_buckets:
            self._levels.popitem(last=False)
        return None


class RateLimiter:
    """Admits or refuses one request's events (see the module docstring)."""

    def __init__(self, settings: Settings, link: Link) -> None:
        self.agent_rate = settings.agent_rate_per_s if settings.agent_burst > 0 else 0.0
        self.agent_burst = settings.agent_burst
        self.key_rate = settings.key_rate_per_s
        self.key_burst = settings.key_burst
        self.shared = RedisBuckets(link)
        self.local = LocalBuckets()
        self.leases = Leases()
        self.refusals = Refusals()

    @property
    def enabled(self) -> bool:
        return self.agent_rate > 0 or self.key_rate > 0

    def buckets(self, events: Sequence[Event], key_name: str | None) -> list[Bucket]:
        """The buckets a request takes from; 413 when one request alone exceeds a burst
        (waiting could never help it)."""
        found: list[Bucket] = []
        if self.agent_rate > 0:
            per_agent = Counter(ev.agent_id for ev in events if ev.agent_id)
            for agent, n in per_agent.items():
                found.append(Bucket("agent", agent, self.agent_rate, self.agent_burst, n))
        if self.key_rate > 0 and key_name is not None:
            found.append(Bucket("key", key_name, self.key_rate, self.key_burst, len(events)))
        for b in found:
            if b.cost > b.burst:
                raise InvalidEvent(
                    f"{b.cost} events for {b.kind} {b.name!r} in one request; its burst is "
                    f"{b.burst}: send fewer at once",
                    413,
                )
        return found

    async def admit(self, events: Sequence[Event], key_name: str | None) -> None:
        """Take the request's tokens, or raise RateLimited (nothing is taken then)."""
        if not self.enabled:
            return
        buckets = self.buckets(events, key_name)
        if not buckets:
            return
        now = time.monotonic()
        if self.leases.spend(buckets, now):
            return
        known = self.refusals.check(buckets, now)
        if known is not None:
            raise refusal(known)
        try:
            taken = await self.shared.take([replace(b, extra=lease_size(b)) for b in buckets])
        except RedisUnavailable:
            metrics.RATE_LIMIT_LOCAL.inc()
            short = self.local.take(buckets)
            if short is not None:
                raise refusal(short) from None
            return
        if isinstance(taken, Shortfall):
            self.refusals.note(buckets, taken, now)
            raise refusal(taken)
        self.leases.keep(buckets, taken, now)


def refusal(short: Shortfall) -> RateLimited:
    b = short.bucket
    retry_after_s = max(1, math.ceil(short.wait_s))
    detail = (
        f"{b.kind} {b.name!r} is over its rate limit of {b.rate_per_s:g} events/s "
        f"(burst {b.burst}); retry after {retry_after_s} s"
    )
    return RateLimited(b.kind, b.name, detail, retry_after_s)
