"""`godel serve` as an operator runs it (tests.support.godel_server), with the runbook's
plugin handlers, against a real redis-server and a SQLite ledger: for the tests that drive
the CLI and the runbook."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.servers import GODEL_BIN, GodelServer, ProcessRunner, RedisServer, start_serve
from tests.support.godel_server import REPO_ROOT, StartProcess
from tests.support.settings import FAST, TOKEN, settings_env

ROOT = REPO_ROOT
FAILING_TYPE = "test.fail"  # tests/plugins/flaky.py: its handler always raises
# FAST, plus the plugins; one attempt: a failing event is dead at once.
STACK: Mapping[str, Any] = {
    **FAST,
    "handlers": "tests.plugins.flaky",
    "retry_max_attempts": 1,
    "log_level": "INFO",
}
SERVE_ENV = settings_env(STACK)  # the same, as the environment of a `godel serve`
AUTH = {"Authorization": f"Bearer {TOKEN}"}  # the admin token, for direct HTTP calls

__all__ = [
    "AUTH",
    "FAILING_TYPE",
    "GODEL_BIN",
    "ROOT",
    "SERVE_ENV",
    "STACK",
    "TOKEN",
    "LiveStack",
    "StartProcess",
    "start_stack",
]


class LiveStack(GodelServer):
    """A running `godel serve` and the redis-server it uses."""

    def __init__(self, url: str, redis: RedisServer, process: ProcessRunner) -> None:
        super().__init__(url, process, TOKEN)
        self.redis = redis

    def cli_env(self) -> dict[str, str]:
        """What an operator's shell has after the runbook's `export` lines."""
        path = f"{GODEL_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "PATH": path, "GODEL_URL": self.url, "GODEL_ADMIN_TOKEN": TOKEN}

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
    """`godel serve` on a free port with a SQLite ledger in `tmp_path/name`, configured by
    STACK and `env` (GODEL_* overrides); returns once the link is connected."""
    data_dir = tmp_path / name
    overrides = {key.removeprefix("GODEL_").lower(): value for key, value in (env or {}).items()}
    settings = {
        **STACK,
        "redis_url": redis.url,
        "database_url": f"sqlite:///{data_dir / 'godel.db'}",
        **overrides,
    }
    server = start_serve(run_process, data_dir, settings, name=name)
    stack = LiveStack(server.url, redis, server.process)
    stack.wait_state("connected")
    return stack
