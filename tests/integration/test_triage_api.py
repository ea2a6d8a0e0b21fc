"""The triage routes and what the dashboard's snapshot carries, in process against a real
redis-server and a SQLite ledger: GET /api/v1/workers, GET /api/v1/history, retrying
events with their next attempt, and the page's colour and runbook links."""

from __future__ import annotations

import os
import time
from typing import Any

from godel.api.snapshot import build_snapshot
from godel.event import Event
from godel.handlers import Registry
from tests.harness import make_settings, running, wait_until_async


def failing_registry() -> Registry:
    async def boom(event: Event) -> None:
        raise RuntimeError(f"boom {event.id}")

    async def fine(event: Event) -> None:
        return None

    reg = Registry()
    reg.add("t.fail", boom)
    reg.add("t.ok", fine)
    return reg


async def test_workers_lists_every_worker_alive_with_what_it_holds(
    sqlite_url: str, redis_url: str
) -> None:
    settings = make_settings(sqlite_url, redis_url)
    async with running(settings, workers=2) as h:

        async def both_alive() -> bool:
            return bool((await h.client.get("/api/v1/workers")).json()["alive"] == 2)

        await wait_until_async(both_alive, 20, "both workers to join")  # their tasks start them
        body = (await h.client.get("/api/v1/workers")).json()
        assert body["redis"] is True and len(body["workers"]) == 2
        assert body["heartbeat_s"] == 1.0  # FAST's lease of 2 s / 2
        for w in body["workers"]:
            assert w["status"] == "alive" and w["pid"] == os.getpid()
            assert w["name"].endswith(("-0", "-1")) and w["held_ledger"] == 0
            assert isinstance(w["held_redis"], int)
            assert w["started_at"] <= w["heartbeat_at"] <= time.time()
        names = {w["name"] for w in body["workers"]}
        assert (await h.client.get("/api/v1/workers", params={"listed_s": 0})).status_code == 422
    async with running(settings, workers=0) as h:  # the same ledger, restarted without workers
        body = (await h.client.get("/api/v1/workers")).json()
        assert body["alive"] == 0
        assert {w["name"]: w["status"] for w in body["workers"]} == dict.fromkeys(names, "stopped")


async def test_history_serves_the_samples_as_columns(sqlite_url: str, redis_url: str) -> None:
    settings = make_settings(sqlite_url, redis_url, history_interval_s=0.05)
    async with running(settings, workers=1, registry=failing_registry()) as h:
        await h.post({"events": [{"type": "t.ok"} for _ in range(4)]})

        async def sampled() -> bool:
            body = (await h.client.get("/api/v1/history")).json()
            return bool(body["series"]["processed"]) and body["series"]["processed"][-1] == 4

        await wait_until_async(sampled, 20, "a sample with the 4 events processed")
        body = (await h.client.get("/api/v1/history")).json()
        assert body["interval_s"] == 0.05 and body["keep"] == 720
        assert len(body["t"]) >= 2 and body["t"] == sorted(body["t"])
        assert {len(v) for v in body["series"].values()} == {len(body["t"])}
        assert body["series"]["down"][-1] == 0 and body["series"]["accepted"][-1] == 4
        later = (await h.client.get("/api/v1/history", params={"since": body["t"][-2]})).json()
        assert later["t"][0] == body["t"][-1]
        assert (await h.client.get("/api/v1/history", params={"since": -1})).status_code == 422


async def test_retrying_events_say_when_they_run_next_and_why(
    sqlite_url: str, redis_url: str
) -> None:
    settings = make_settings(
        sqlite_url, redis_url, retry_backoff_base_ms=60_000, retry_backoff_max_ms=60_000
    )
    async with running(settings, workers=1, registry=failing_registry()) as h:
        sent = time.time()
        event_id = (await h.post({"type": "t.fail", "id": "r-1"})).json()["id"]

        async def retrying() -> list[dict[str, Any]]:
            r = await h.client.get("/api/v1/events", params={"status": "retrying"})
            events: list[dict[str, Any]] = r.json()["events"]
            return events

        await wait_until_async(retrying, 20, "the event to be retrying")
        [row] = await retrying()
        assert row["id"] == event_id and row["attempts"] == 1 and row["lane"] == "redis"
        assert row["last_error"] == "RuntimeError: boom r-1"
        assert sent + 59 < row["available_at"] < time.time() + 61

        snap = await build_snapshot(h.rt)
        assert [e["id"] for e in snap["retrying"]] == ["r-1"]
        assert snap["retrying"][0]["available_at"] == row["available_at"]


async def test_the_snapshot_and_page_show_problems_workers_and_unhandled_types(
    sqlite_url: str, redis_url: str
) -> None:
    base = "https://wiki.example/ops/godel"
    settings = make_settings(
        sqlite_url, redis_url, retry_max_attempts=1, runbook_base_url=base + "/"
    )
    async with running(settings, workers=1, registry=failing_registry()) as h:
        await h.rt.history.sample()  # the baseline "growing" is measured against
        await h.post({"events": [{"type": "t.fail"}, {"type": "nobody.listens"}]})

        async def settled() -> bool:
            counts = await h.counts()
            return counts.get("dead") == 1 and counts.get("processed") == 1

        await wait_until_async(settled, 20, "one dead letter and one unhandled event")
        snap = await build_snapshot(h.rt)
        assert [a["key"] for a in snap["attention"]] == ["dead"]
        assert snap["attention"][0]["runbook"] == f"{base}/REDIS_OUTAGE.md#dead-letters"
        assert snap["unhandled"] == {"nobody.listens": 1} and snap["unhandled_types"] == 1
        assert snap["dead_types"] == {"t.fail": 1}
        assert snap["fleet"]["alive"] == 1 and snap["sample"] is not None
        page = (await h.client.get("/")).text
        assert 'data-overall="warn"' in page and "Dead letters growing: +1" in page
        assert f'href="{base}/REDIS_OUTAGE.md#initial-assessment"' in page
