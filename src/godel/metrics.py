"""Every Prometheus metric Godel exports, defined once. Names are contracts (the runbook greps
`redis_fallback`, `memory_cache_`, `queued_events`, `replayed_events`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

REDIS_UP = Gauge("godel_redis_up", "1 when the Redis link is connected")
FALLBACK_ACTIVE = Gauge(
    "godel_redis_fallback_active", "1 while the fast lane is closed (fallback or recovering)"
)
LINK_STATE = Gauge("godel_link_state", "1 for the Link's current state", ["state"])
FALLBACK_TRANSITIONS = Counter(
    "godel_redis_fallback_transitions_total", "Link state transitions", ["to"]
)
REDIS_ERRORS = Counter("godel_redis_errors_total", "Redis errors by classified reason", ["reason"])
REDIS_SLOW = Counter(
    "godel_redis_slow_answers_total",
    "Redis calls that timed out while Redis still answered a PING at once (a busy host, "
    "not an outage: no fallback)",
)
FALLBACK_QUEUED = Gauge(
    "godel_fallback_queued_events",
    "Events accepted in the ledger but not yet pushed to Redis (undispatched backlog)",
)
REPLAYED = Counter("godel_replayed_events_total", "Events replayed from the ledger into Redis")
RECONCILED = Counter(
    "godel_reconciled_events_total", "Events pushed again because Redis had lost them"
)
REPLAY_IN_PROGRESS = Gauge("godel_replay_in_progress", "1 while a replay is running")

MEMORY_CACHE_ENTRIES = Gauge("godel_memory_cache_entries", "Entries in the in-memory cache")
MEMORY_CACHE_BYTES = Gauge("godel_memory_cache_bytes", "Bytes held by the in-memory cache")
MEMORY_CACHE_MAX_BYTES = Gauge("godel_memory_cache_max_bytes", "Bound of the in-memory cache")
MEMORY_CACHE_HITS = Counter("godel_memory_cache_hits_total", "In-memory cache hits")
MEMORY_CACHE_MISSES = Counter("godel_memory_cache_misses_total", "In-memory cache misses")
MEMORY_CACHE_EVICTIONS = Counter(
    "godel_memory_cache_evictions_total", "In-memory cache evictions (size bounds or TTL)"
)
CACHE_REQUESTS = Counter(
    "godel_cache_requests_total", "Cache lookups by backend and result", ["backend", "result"]
)

QUEUE_DEPTH = Gauge("godel_queue_depth", "Redis queue depths", ["queue"])
DEAD_LETTERS = Gauge("godel_dead_letter_events", "Dead letters per event type", ["type"])
EVENTS_ACCEPTED = Counter("godel_events_accepted_total", "Events acknowledged (202)", ["mode"])
EVENTS_REFUSED = Counter(
    "godel_events_refused_total",
    "Events refused at ingest, by reason (a body refused unread counts as one)",
    ["reason"],
)
RATE_LIMIT_LOCAL = Counter(
    "godel_rate_limit_local_decisions_total",
    "Rate-limit decisions taken by per-process buckets because Redis was not usable",
)
EVENTS_PROCESSED = Counter("godel_events_processed_total", "Event processing outcomes", ["outcome"])
EVENTS_UNHANDLED = Counter(
    "godel_events_unhandled_total",
    "Events processed with no handler matching their type (marked processed, nothing ran)",
)
PROCESSING_SECONDS = Histogram(
    "godel_event_processing_seconds",
    "Handler time per event",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LEDGER_COMMIT_ROWS = Histogram(
    "godel_ledger_commit_rows", "Rows per group commit", buckets=(1, 2, 5, 10, 50, 100, 500, 2000)
)

REDIS_USED_MEMORY = Gauge("godel_redis_used_memory_bytes", "Redis used_memory from INFO")
REDIS_MAXMEMORY = Gauge("godel_redis_maxmemory_bytes", "Redis maxmemory from INFO (0 = none)")
REDIS_POLICY_SAFE = Gauge(
    "godel_redis_eviction_policy_safe", "1 when maxmemory-policy is noeviction"
)
REDIS_AOF_ENABLED = Gauge("godel_redis_aof_enabled", "1 when Redis appendonly is on")
REDIS_LAST_BGSAVE_OK = Gauge("godel_redis_last_bgsave_ok", "1 when the last background save worked")

HTTP_SECONDS = Histogram(
    "godel_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def read(metric: MetricWrapperBase, label: str | None = None) -> Any:
    """Current value of a counter or gauge (by `label` value when given), read through the
    public collect() API."""
    values: dict[str, float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            values[sample.labels.get(label, "") if label else ""] = sample.value
    return values if label else values.get("", 0.0)
