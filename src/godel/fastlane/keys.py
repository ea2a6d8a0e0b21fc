"""Every Redis key Godel uses. These names are contracts: the runbook greps them.

godel:queue:pending            LIST  LPUSH new ids; workers take from the right (FIFO)
godel:queue:processing:<w>     LIST  what worker <w> has claimed and not yet acked
godel:queue:delayed            ZSET  id -> time it may run again (retry backoff)
godel:queue:dead:<type>        LIST  ids whose attempts are exhausted
godel:workers                  ZSET  worker -> lease expiry (Redis server time)
godel:cache:<kind>:<id>        STR   cached JSON (agents), with a TTL
godel:link:sentinel            STR   set once per dataset: missing = Redis lost its data
godel:link:probe               STR   the probe's test write (expires)
"""

from __future__ import annotations

QUEUE_PENDING = "godel:queue:pending"
QUEUE_PROCESSING_PREFIX = "godel:queue:processing:"
QUEUE_DELAYED = "godel:queue:delayed"
QUEUE_DEAD_PREFIX = "godel:queue:dead:"
WORKERS = "godel:workers"
CACHE_PREFIX = "godel:cache:"
SENTINEL = "godel:link:sentinel"
PROBE = "godel:link:probe"


def processing_key(worker: str) -> str:
    return f"{QUEUE_PROCESSING_PREFIX}{worker}"


def dead_key(event_type: str) -> str:
    return f"{QUEUE_DEAD_PREFIX}{event_type}"


def cache_key(kind: str, ident: str) -> str:
    return f"{CACHE_PREFIX}{kind}:{ident}"
