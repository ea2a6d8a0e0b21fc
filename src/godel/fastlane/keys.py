"""Every Redis key Godel uses. These names are contracts: the runbook greps them.

godel:queue:pending            LIST  LPUSH new ids; workers take from the right (FIFO)
godel:queue:processing:<w>     LIST  what worker <w> has claimed and not yet acked
godel:queue:delayed            ZSET  id -> time it may run again (retry backoff)
godel:queue:dead:<type>        LIST  ids whose attempts are exhausted
godel:workers                  ZSET  worker -> lease expiry (Redis server time)
godel:cache:<kind>:<id>        STR   cached JSON (agents), with a TTL
godel:link:sentinel            STR   set once per dataset: missing = Redis lost its data
godel:link:probe               STR   the probe's test write (expires)
godel:ratelimit:<kind>:<name>  HASH  a token bucket (tokens, at ms), kind agent|key; expires
                                     once it would be full again

Standalone and Sentinel use these names as they are. In cluster mode every key is the same
name with its leading `godel` in braces — `{godel}:queue:pending`, `{godel}:cache:agent:a-1`
— so all of them hash to one slot (11626, the slot of "godel"): each Lua script, MULTI and
multi-key DEL touches one slot, REAP's processing keys built from ARGV included. Names are
written once, here, in their standalone form; `Keys` (the Link's `link.keys`) gives the name
of the mode in use: `link.keys(cache_key("agent", "a-1"))`, `link.keys.pending`.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "godel"
CLUSTER_ROOT = "{godel}"  # one hash tag: every key in one cluster slot

QUEUE_PENDING = "godel:queue:pending"
QUEUE_PROCESSING_PREFIX = "godel:queue:processing:"
QUEUE_DELAYED = "godel:queue:delayed"
QUEUE_DEAD_PREFIX = "godel:queue:dead:"
WORKERS = "godel:workers"
CACHE_PREFIX = "godel:cache:"
SENTINEL = "godel:link:sentinel"
PROBE = "godel:link:probe"
RATELIMIT_PREFIX = "godel:ratelimit:"


def processing_key(worker: str) -> str:
    return f"{QUEUE_PROCESSING_PREFIX}{worker}"


def dead_key(event_type: str) -> str:
    return f"{QUEUE_DEAD_PREFIX}{event_type}"


def cache_key(kind: str, ident: str) -> str:
    return f"{CACHE_PREFIX}{kind}:{ident}"


def ratelimit_key(kind: str, name: str) -> str:
    return f"{RATELIMIT_PREFIX}{kind}:{name}"


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one Redis mode. `keys(name)` maps a name of this module (standalone
    form) to the mode's; the properties are the queue's keys, already mapped."""

    root: str = ROOT

    @classmethod
    def for_cluster(cls, cluster: bool) -> Keys:
        return cls(CLUSTER_ROOT if cluster else ROOT)

    def __call__(self, name: str) -> str:
        if not name.startswith(ROOT + ":"):
            raise ValueError(f"not a Godel key: {name!r}")
        return self.root + name[len(ROOT) :]

    @property
    def pending(self) -> str:
        return self(QUEUE_PENDING)

    @property
    def processing_prefix(self) -> str:
        return self(QUEUE_PROCESSING_PREFIX)

    @property
    def delayed(self) -> str:
        return self(QUEUE_DELAYED)

    @property
    def dead_prefix(self) -> str:
        return self(QUEUE_DEAD_PREFIX)

    @property
    def workers(self) -> str:
        return self(WORKERS)

    @property
    def sentinel(self) -> str:
        return self(SENTINEL)

    @property
    def probe(self) -> str:
        return self(PROBE)

    @property
    def cache_prefix(self) -> str:
        return self(CACHE_PREFIX)

    def processing(self, worker: str) -> str:
        return self(processing_key(worker))

    def dead(self, event_type: str) -> str:
        return self(dead_key(event_type))
