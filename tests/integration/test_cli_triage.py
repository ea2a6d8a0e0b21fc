"""`godel events list --status retrying` and `godel workers` against a real `godel serve`
subprocess and redis-server (the commands run in process through typer's CliRunner)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from godel.cli import app
from tests.integration.live_stack import (
    FAILING_TYPE,
    TOKEN,
    LiveStack,
    StartProcess,
    start_stack,
)
from tests.servers import RedisServer

# Five attempts a minute apart: a failing event stays retrying for the whole test.
RETRY_SLOWLY = {
    "GODEL_RETRY_MAX_ATTEMPTS": "5",
    "GODEL_RETRY_BACKOFF_BASE_MS": "60000",
    "GODEL_RETRY_BACKOFF_MAX_MS": "60000",
}


def ok(stack: LiveStack, *args: str) -> str:
    """Run a command in process as an operator's shell would, on a terminal wide enough that
    Rich's tables do not fold what the test looks for."""
    env = {"GODEL_URL": stack.url, "GODEL_ADMIN_TOKEN": TOKEN, "COLUMNS": "200"}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, f"godel {' '.join(args)}: {result.output}"
    return str(result.stdout)


@pytest.fixture
def stack(run_process: StartProcess, fresh_redis: RedisServer, tmp_path: Path) -> LiveStack:
    return start_stack(run_process, fresh_redis, tmp_path, env=RETRY_SLOWLY)


def test_retrying_events_with_their_next_attempt_and_last_error(stack: LiveStack) -> None:
    stack.post({"type": FAILING_TYPE, "id": "retry-me", "payload": {"n": 3}})
    stack.post({"type": "agent.status", "agent_id": "a-1"})
    stack.wait(lambda h: h["events"].get("retrying") == 1, "a retrying event")

    listed = ok(stack, "events", "list", "--status", "retrying")
    assert "Retrying events: 1 shown of 1" in listed
    assert "retry-me" in listed and "RuntimeError: boom 3" in listed
    assert "(in 5" in listed or "(in 1m" in listed  # about a minute from the failure

    body = json.loads(ok(stack, "events", "list", "--status", "retrying", "--json"))
    [row] = body["events"]
    assert row["attempts"] == 1 and row["lane"] == "redis"
    assert time.time() + 30 < row["available_at"] < time.time() + 61
    assert row["available_at_utc"].endswith(" UTC")

    shown = ok(stack, "events", "get", "retry-me")
    assert "Next attempt" in shown and "last tried via redis" in shown
    everything = ok(stack, "events", "list", "--limit", "1")
    assert "Events: 1 shown" in everything
    assert "more: godel events list --limit 1 --cursor" in everything


def test_workers_says_who_is_alive_and_what_each_holds(stack: LiveStack) -> None:
    table = ok(stack, "workers")
    assert "Workers: 1 alive of 1 worker listed" in table
    assert "alive" in table and "redis 0, ledger 0" in table
    body = json.loads(ok(stack, "workers", "--json"))
    [worker] = body["workers"]
    assert worker["status"] == "alive" and worker["pid"] == stack.process.pid
    assert worker["started_at_utc"].endswith(" UTC") and worker["stopped_at"] is None
