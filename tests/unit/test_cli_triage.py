"""`godel events list` and `godel workers` in process (typer's CliRunner), answered by
FakeGodel through an httpx.MockTransport: what they ask the API and what they print."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from godel.cli import app
from godel.cli.render import lane_text
from tests.unit.test_cli import NOW, FakeGodel, error_lines, health, runner


def wide(fake: FakeGodel, *args: str) -> Any:
    """Invoke with a wide terminal, so Rich's tables do not fold what the test looks for."""
    return runner.invoke(
        app,
        [*args, "--url", "http://godel.test", "--token", "t"],
        obj=fake.transport,
        env={"COLUMNS": "200"},
    )


def retrying_rows() -> list[dict[str, Any]]:
    """Two retrying events as GET /api/v1/events lists them, due in 90 s from now."""
    return [
        {"id": f"r-{i}", "seq": 10 + i, "type": "billing.charge", "status": "retrying",
         "attempts": 2, "last_error": "TimeoutError: upstream", "available_at": time.time() + 90,
         "created_at": NOW, "updated_at": NOW, "processed_at": None, "dispatched": True,
         "lane": "redis"}
        for i in range(2)
    ]  # fmt: skip


def workers_answer() -> dict[str, Any]:
    """GET /api/v1/workers, its times relative to now (the view prints ages)."""
    now = time.time()
    return {
        "workers": [
            {"name": "pod-a-1-0", "host": "pod-a", "pid": 1, "status": "alive",
             "started_at": now - 3700, "heartbeat_at": now - 2, "stopped_at": None,
             "processed": 1234, "held_redis": 3, "held_ledger": 0},
            {"name": "pod-b-1-0", "host": "pod-b", "pid": 1, "status": "silent",
             "started_at": NOW - 60, "heartbeat_at": now - 45, "stopped_at": None,
             "processed": 7, "held_redis": None, "held_ledger": 5},
        ],
        "alive": 1, "redis": False, "heartbeat_s": 5.0, "at": now,
    }  # fmt: skip


def page(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"events": retrying_rows(), "next_cursor": 11})


def test_events_list_retrying_shows_next_attempt_last_error_and_the_next_page() -> None:
    fake = FakeGodel(
        {
            ("GET", "/api/v1/events"): page,
            ("GET", "/health"): health(events={"retrying": 5, "processed": 9}),
        }
    )
    result = wide(fake, "events", "list", "--status", "retrying", "--limit", "2")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Retrying events: 2 shown of 5" in text
    assert "r-0" in text and "r-1" in text and "TimeoutError: upstream" in text
    assert "(in 1m 3" in text or "(in 1m 2" in text  # the next attempt, in about 90 s
    assert "more: godel events list --status retrying --limit 2 --cursor 11" in text
    asked = fake.requests[0].url.params
    assert (asked["status"], asked["limit"]) == ("retrying", "2") and "cursor" not in asked


def test_events_list_json_and_filters() -> None:
    answer = {"events": retrying_rows()[:1], "next_cursor": None}
    fake = FakeGodel({("GET", "/api/v1/events"): answer})
    result = fake.invoke("events", "list", "--type", "billing.charge", "--cursor", "9", "--json")
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    assert body["next_cursor"] is None and body["events"][0]["available_at_utc"].endswith(" UTC")
    asked = fake.requests[0].url.params
    assert (asked["type"], asked["cursor"]) == ("billing.charge", "9")
    assert fake.seen() == [("GET", "/api/v1/events")]  # no total asked without --status


def test_events_list_refuses_an_unknown_status_before_any_request() -> None:
    fake = FakeGodel({})
    result = wide(fake, "events", "list", "--status", "failed")
    assert result.exit_code == 2 and fake.requests == []
    assert "must be one of queued, processing, processed, retrying, dead, purged" in result.stderr


def test_workers_shows_who_is_alive_since_when_and_what_each_holds() -> None:
    fake = FakeGodel({("GET", "/api/v1/workers"): workers_answer()})
    result = wide(fake, "workers")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Workers: 1 alive of 2 workers listed" in text
    assert "pod-a-1-0" in text and "alive" in text and "silent" in text
    assert "redis 3, ledger 0" in text and "redis ?, ledger 5" in text
    assert "UTC (1h 1m ago)" in text
    assert "45s ago" in text or "46s ago" in text
    assert "1234" in text


def test_workers_json_adds_utc_times() -> None:
    answer = workers_answer()
    answer["workers"] = [{**answer["workers"][0], "started_at": NOW - 3700}]
    result = FakeGodel({("GET", "/api/v1/workers"): answer}).invoke("workers", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["workers"][0]["started_at_utc"] == "2026-11-30 05:38:53 UTC"
    assert body["workers"][0]["stopped_at_utc"] is None


def test_workers_error_is_one_line() -> None:
    fake = FakeGodel({("GET", "/api/v1/workers"): (403, {"detail": "lacks the read scope"})})
    result = fake.invoke("workers")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "HTTP 403" in lines[0] and "lacks the read scope" in lines[0]


def test_lane_text_says_what_is_true() -> None:
    assert lane_text({"status": "processed", "lane": "ledger"}) == "processed through ledger"
    assert lane_text({"status": "dead", "lane": "redis"}) == "last tried via redis"
    assert lane_text({"status": "queued", "dispatched": False}).startswith("waiting in the ledger")
    assert lane_text({"status": "queued", "dispatched": True}) == "waiting in redis"
    assert lane_text({"status": "processed", "dispatched": True}) == "-"  # before lanes
