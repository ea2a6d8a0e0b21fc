"""A real `godel serve` subprocess (the console script) against a real redis-server and a
SQLite ledger, for tests that drive the CLI and the runbook the way an operator does."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.servers import ProcessRunner, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
GODEL_BIN = Path(sys.executable).parent / "godel"
TOKEN = "live-stack-admin-token"
FAILING_TYPE = "test.fail"  # tests/plugins/flaky.py: its handler always raises

# Short timeouts and periods so state changes show within a second (same spirit as
# tests/harness.py FAST). One attempt: a failing event is dead at once.
SERVE_ENV = {
    "GODEL_ADMIN_TOKEN": TOKEN,
    "GODEL_HANDLERS": "tests.plugins.flaky",
    "GODEL_RETRY_MAX_ATTEMPTS": "1",
    "GODEL_REDIS_SOCKET_TIMEOUT_S": "0.3",
    "GODEL_REDIS_CONNECT_TIMEOUT_S": "0.3",
    "GODEL_REDIS_BLOCK_TIMEOUT_S": "0.2",
    "GODEL_PROBE_BACKOFF_MIN_S": "0.05",
    "GODEL_PROBE_BACKOFF_MAX_S": "0.3",
    "GODEL_RECONCILE_INTERVAL_S": "0.3",
    "GODEL_RECONCILE_DEADLINE_S": "1.5",
    "GODEL_METRICS_INTERVAL_S": "0.3",
    "GODEL_REDIS_INFO_INTERVAL_S": "0.3",
    "GODEL_WORKER_LEASE_S": "2",
    "GODEL_EMBEDDED_REDIS": "false",
    "GODEL_LOG_LEVEL": "INFO",
}

StartProcess = Callable[..., ProcessRunner]


@dataclass
class LiveStack:
    url: str
    redis: RedisServer
    process: ProcessRunner

    def cli_env(self) -> dict[str, str]:
        """What an operator's shell has after the runbook's `export` lines."""
        path = f"{GODEL_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "PATH": path, "GODEL_URL": self.url, "GODEL_ADMIN_TOKEN": TOKEN}

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/health", timeout=5).json()
        return body

    def post(self, event: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/api/v1/events", json=event, timeout=10)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(
        self, check: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 20
    ) -> None:
        """Poll GET /health until `check(health)` holds."""
        deadline = time.monotonic() + timeout_s
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = self.health()
            if check(health):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last /health: {health}")

    def wait_state(self, state: str, reason: str | None = None) -> None:
        self.wait(
            lambda h: h["state"] == state and (reason is None or h["link"]["reason"] == reason),
            f"link state {state} ({reason})",
        )

    def make_dead_letter(self, event_id: str) -> None:
        self.post({"type": FAILING_TYPE, "id": event_id, "payload": {"n": 1}})
        self.wait(lambda h: h["events"].get("dead", 0) >= 1, "a dead letter")


def start_stack(
    run_process: StartProcess,
    redis: RedisServer,
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    name: str = "godel-serve",
) -> LiveStack:
    """`godel serve` on a free port; returns once GET /health/ready answers 200."""
    port = free_port()
    data_dir = tmp_path / name
    data_dir.mkdir()
    full_env = {
        **SERVE_ENV,
        "GODEL_REDIS_URL": redis.url,
        "GODEL_DATABASE_URL": f"sqlite:///{data_dir / 'godel.db'}",
        "GODEL_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),  # for GODEL_HANDLERS=tests.plugins.flaky
        **(env or {}),
    }
    args = [str(GODEL_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = run_process(args, env=full_env, name=name, cwd=data_dir)
    url = f"http://127.0.0.1:{port}"
    process.wait_http(f"{url}/health/ready", timeout_s=60)
    stack = LiveStack(url, redis, process)
    stack.wait_state("connected")
    return stack
