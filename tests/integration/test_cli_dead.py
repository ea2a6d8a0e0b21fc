"""Dead-letter triage one letter at a time, and pages with totals: the API and `godel dead`
against a real `godel serve` subprocess."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.live_stack import (
    FAILING_TYPE,
    TOKEN,
    LiveStack,
    StartProcess,
    start_stack,
)
from tests.integration.test_cli import godel, ok
from tests.servers import RedisServer


@pytest.fixture
def stack(run_process: StartProcess, fresh_redis: RedisServer, tmp_path: Path) -> LiveStack:
    return start_stack(run_process, fresh_redis, tmp_path)


def make_dead(stack: LiveStack, n: int) -> list[str]:
    ids = [f"doomed-{i}" for i in range(n)]
    for event_id in ids:
        stack.post({"type": FAILING_TYPE, "id": event_id, "payload": {"n": 1}})
    stack.wait(lambda h: h["events"].get("dead", 0) == n, f"{n} dead letters")
    return ids


def test_pages_say_how_many_exist_and_where_the_next_page_starts(stack: LiveStack) -> None:
    make_dead(stack, 3)
    first = ok(stack, "dead", "list", "--type", FAILING_TYPE, "--limit", "2")
    assert f"Dead letters of type {FAILING_TYPE}: 2 shown of 3" in first
    assert "doomed-0" in first and "doomed-1" in first and "doomed-2" not in first
    more = next(line for line in first.splitlines() if line.startswith("more: "))
    cursor = more.rsplit(" ", 1)[1]
    second = ok(stack, "dead", "list", "--type", FAILING_TYPE, "--limit", "2", "--cursor", cursor)
    assert "1 shown of 3" in second and "doomed-2" in second and "more:" not in second


def test_one_letter_is_replayed_or_purged_alone(stack: LiveStack) -> None:
    make_dead(stack, 3)
    replayed = ok(stack, "dead", "replay", "--id", "doomed-0")
    assert replayed.strip() == "replayed 1 dead event (doomed-0)"
    # The handler always fails: the replayed letter dies again; the two others never moved.
    stack.wait(lambda h: h["events"].get("dead") == 3, "doomed-0 to die again")
    purged = ok(stack, "dead", "purge", "--id", "doomed-1")
    assert purged.strip() == "purged 1 dead event (doomed-1)"
    stack.wait(lambda h: h["events"].get("purged") == 1 and h["events"].get("dead") == 2, "purge")
    assert "2 shown of 2" in ok(stack, "dead", "list", "--type", FAILING_TYPE)

    for command in ("replay", "purge"):
        missing = godel(stack, "dead", command, "--id", "doomed-1")  # purged: not dead now
        assert missing.exit_code == 1, missing.output
        assert "HTTP 404" in missing.stderr and "no dead event with id 'doomed-1'" in missing.stderr


def test_the_api_reports_time_of_death_and_totals(stack: LiveStack) -> None:
    make_dead(stack, 2)
    page = httpx.get(
        f"{stack.url}/admin/dead/events",
        params={"type": FAILING_TYPE, "limit": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).json()
    assert page["total"] == 2 and len(page["events"]) == 1 and page["next_cursor"] is not None
    letter = page["events"][0]
    assert letter["died_at"] >= letter["created_at"]
