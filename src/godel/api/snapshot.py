"""What the dashboard shows, in one dict: the stream's `status` message and the page's
server-rendered first paint.

GET /health's report, plus counters, agents, the latest processed and retrying events, dead
letters per type (ledger), the fleet's workers, the event types no handler matched, the
newest history sample, and `attention`: every problem other than the Redis link (which has
its own banner), each with what to do and the runbook section that says more.
"""

from __future__ import annotations

from typing import Any

from godel import metrics
from godel.api.events import public
from godel.errors import LedgerUnavailable
from godel.event import Status
from godel.runtime import Runtime
from godel.store import agents, ledger

AGENTS_SHOWN = 25
PROCESSED_SHOWN = 10
RETRYING_SHOWN = 10  # the page's first page of retrying events
UNHANDLED_SHOWN = 20
AGENT_FIELDS = ("id", "name", "status", "last_event_type", "last_seen_at", "events_applied")
TREND_WINDOW_S = 60.0  # "growing": more than the oldest history sample of this window
MEMORY_HIGH = 0.8
DEAD_TYPES_REUSE_S = 15.0
REDIS_RUNBOOK = "REDIS_OUTAGE.md"
DATABASE_RUNBOOK = "DATABASE_FAILOVER.md"


def counters() -> dict[str, Any]:
    return {
        "transitions": metrics.read(metrics.FALLBACK_TRANSITIONS, "to"),
        "redis_errors": metrics.read(metrics.REDIS_ERRORS, "reason"),
        "accepted": metrics.read(metrics.EVENTS_ACCEPTED, "mode"),
        "processed": metrics.read(metrics.EVENTS_PROCESSED, "outcome"),
        "replayed_total": metrics.read(metrics.REPLAYED),
        "reconciled_total": metrics.read(metrics.RECONCILED),
        "replay_in_progress": bool(metrics.read(metrics.REPLAY_IN_PROGRESS)),
    }


async def build_snapshot(rt: Runtime, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, in one dict. `previous` (the last snapshot) lends its
    dead letters per type while the dead total has not moved (see `_dead_types`)."""
    snap = (await rt.health()).as_dict()
    try:
        agent_rows = await rt.db.read(agents.list_agents, None, AGENTS_SHOWN, None)
        done = await rt.db.read(ledger.latest_events, PROCESSED_SHOWN, Status.PROCESSED)
        retrying_query = ledger.EventQuery(status=Status.RETRYING, limit=RETRYING_SHOWN)
        retrying = await rt.db.read(ledger.list_events, retrying_query)
        dead_types = await _dead_types(rt, snap, previous)
        fleet: dict[str, Any] | None = await rt.roster.report()
    except LedgerUnavailable:
        agent_rows, done, retrying, dead_types, fleet = [], [], [], None, None
    snap["stats"] = counters()
    snap["agents"] = [{k: a.get(k) for k in AGENT_FIELDS} for a in agent_rows]
    snap["processed"] = [public(r, with_payload=False) for r in done]
    snap["retrying"] = [public(r, with_payload=False) for r in retrying]
    snap["dead_types"] = dead_types
    snap["fleet"] = fleet
    unhandled = sorted(rt.registry.unhandled.items(), key=lambda kv: (-kv[1], kv[0]))
    snap["unhandled"] = dict(unhandled[:UNHANDLED_SHOWN])
    snap["unhandled_types"] = len(unhandled)
    snap["sample"] = rt.history.latest()
    baseline = rt.history.baseline(TREND_WINDOW_S, snap["at"])
    snap["attention"] = attention(snap, baseline, rt.settings.runbook_base_url)
    return snap


async def _dead_types(
    rt: Runtime, snap: dict[str, Any], previous: dict[str, Any] | None
) -> dict[str, int] | None:
    """Dead letters per type. Counting them walks an index of the whole ledger, so while the
    dead total (from the counts the snapshot has anyway) stays put, the last answer stands,
    for DEAD_TYPES_REUSE_S at most (a replay and a death in one second keep the total)."""
    dead = (snap.get("events") or {}).get(Status.DEAD, 0)
    if (
        previous is not None
        and previous.get("dead_types") is not None
        and sum(previous["dead_types"].values()) == dead
        and snap["at"] - previous["dead_types_at"] < DEAD_TYPES_REUSE_S
    ):
        snap["dead_types_at"] = previous["dead_types_at"]
        reused: dict[str, int] = previous["dead_types"]
        return reused
    snap["dead_types_at"] = snap["at"]
    counted: dict[str, int] = await rt.db.read(ledger.count_dead)
    return counted


def _item(level: str, key: str, text: str, todo: str, runbook: str) -> dict[str, str]:
    return {"level": level, "key": key, "text": text, "todo": todo, "runbook": runbook}


def attention(
    snap: dict[str, Any], baseline: dict[str, Any] | None, runbook_base: str
) -> list[dict[str, str]]:
    """The problems the page turns amber (`warn`) or red (`down`) for, besides the link."""
    redis_book = f"{runbook_base}/{REDIS_RUNBOOK}"
    items: list[dict[str, str]] = []
    if snap["database"] != "ok":
        items.append(
            _item(
                "down",
                "ledger",
                "The ledger (SQL) is not answering: new events are refused with 503.",
                "Bring the database back; Godel reconnects on its own.",
                f"{runbook_base}/{DATABASE_RUNBOOK}#initial-assessment",
            )
        )
    items.extend(_growth(snap.get("events") or {}, baseline, redis_book))
    fleet = snap.get("fleet")
    counts = snap.get("events") or {}
    waiting = sum(counts.get(s, 0) for s in (Status.QUEUED, Status.RETRYING))
    if fleet is not None and not fleet["alive"] and waiting:
        items.append(
            _item(
                "warn",
                "workers",
                f"No live worker, and {waiting:,} events wait to be processed.",
                "Start workers (GODEL_WORKERS, or `godel worker`); see Workers below.",
                f"{redis_book}#workers-missing",
            )
        )
    ratio = (snap.get("redis_memory") or {}).get("ratio")
    if ratio is not None and ratio > MEMORY_HIGH:
        items.append(
            _item(
                "warn",
                "memory",
                f"Redis memory at {ratio:.0%} of maxmemory.",
                "Raise maxmemory or find what fills it before writes are refused.",
                f"{redis_book}#scenario-2-memory-exhaustion-oom",
            )
        )
    return items


# What "growing" says of each status, and what to do about it.
GROWTH_TEXT = {
    Status.DEAD: (
        "Dead letters growing: +{grown:,} in the last {window} ({now:,} in all).",
        "Read their last error below, fix the handler, then replay them.",
    ),
    Status.RETRYING: (
        "Retries growing: +{grown:,} retrying in the last {window} ({now:,} in all).",
        "See Retrying below: each shows its last error and next attempt.",
    ),
}


def _growth(
    counts: dict[str, int], baseline: dict[str, Any] | None, redis_book: str
) -> list[dict[str, str]]:
    """Dead letters or retrying events more numerous than TREND_WINDOW_S ago."""
    if baseline is None:
        return []
    items = []
    window = f"{TREND_WINDOW_S:.0f} s"
    for status, (text, todo) in GROWTH_TEXT.items():
        now, was = counts.get(status, 0), baseline.get(status.value)
        if was is not None and now > was:
            said = text.format(grown=now - was, window=window, now=now)
            items.append(_item("warn", status.value, said, todo, f"{redis_book}#dead-letters"))
    return items
