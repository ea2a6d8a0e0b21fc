"""What turns the dashboard amber or red besides the Redis link (godel.api.snapshot)."""

from __future__ import annotations

from typing import Any

from godel.api.dashboard import overall
from godel.api.snapshot import attention

BASE = "https://runbooks.example/godel"


def snap(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "link": {"state": "connected"},
        "database": "ok",
        "events": {"processed": 10, "dead": 2, "retrying": 1},
        "fleet": {"alive": 1},
        "redis_memory": {"ratio": 0.1},
    }
    return body | changes


def keys(items: list[dict[str, str]]) -> list[str]:
    return [i["key"] for i in items]


def test_nothing_wrong_is_green() -> None:
    s = snap()
    s["attention"] = attention(s, {"dead": 2, "retrying": 1}, BASE)
    assert s["attention"] == [] and overall(s) == "ok"
    assert attention(s, None, BASE) == []  # no history yet: no trend either


def test_dead_letters_or_retries_growing_are_amber_with_the_runbook() -> None:
    s = snap()
    s["attention"] = attention(s, {"dead": 0, "retrying": 0}, BASE)
    assert keys(s["attention"]) == ["dead", "retrying"] and overall(s) == "warn"
    dead = s["attention"][0]
    assert dead["text"] == "Dead letters growing: +2 in the last 60 s (2 in all)."
    assert dead["runbook"] == f"{BASE}/REDIS_OUTAGE.md#dead-letters"
    # Fewer than before (replayed, purged) or unknown then: not growing.
    assert attention(s, {"dead": 5, "retrying": None}, BASE) == []


def test_no_live_worker_while_events_wait() -> None:
    s = snap(fleet={"alive": 0}, events={"queued": 3})
    items = attention(s, None, BASE)
    assert keys(items) == ["workers"] and items[0]["runbook"].endswith("#workers-missing")
    assert attention(snap(fleet={"alive": 0}, events={"processed": 3}), None, BASE) == []


def test_the_ledger_away_is_red_and_memory_high_amber() -> None:
    s = snap(database="unavailable", redis_memory={"ratio": 0.93}, fleet=None)
    s["attention"] = attention(s, None, BASE)
    assert keys(s["attention"]) == ["ledger", "memory"] and overall(s) == "down"
    assert s["attention"][0]["runbook"] == f"{BASE}/DATABASE_FAILOVER.md#initial-assessment"
    assert s["attention"][1]["text"] == "Redis memory at 93% of maxmemory."


def test_the_link_down_is_red_whatever_else() -> None:
    s = snap(link={"state": "fallback"})
    s["attention"] = []
    assert overall(s) == "down"
