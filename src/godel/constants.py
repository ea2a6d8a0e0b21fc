"""Every Redis key Godel uses. These names are contracts: the runbook greps them."""

from __future__ import annotations

PREFIX = "godel"
QUEUE_PENDING = "godel:queue:pending"
QUEUE_PROCESSING_PREFIX = "godel:queue:processing:"
QUEUE_DELAYED = "godel:queue:delayed"
QUEUE_DEAD_PREFIX = "godel:queue:dead:"
CACHE_PREFIX = "godel:cache:"
WORKERS = "godel:workers"
EVENTS_CHANNEL = "godel:events:stream"


def processing_key(worker: str) -> str:
    return f"{QUEUE_PROCESSING_PREFIX}{worker}"


def dead_key(event_type: str) -> str:
    return f"{QUEUE_DEAD_PREFIX}{event_type}"


def cache_key(kind: str, ident: str) -> str:
    return f"{CACHE_PREFIX}{kind}:{ident}"
