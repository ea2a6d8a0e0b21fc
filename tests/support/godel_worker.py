"""`godel worker` as a real subprocess (the console script), beside `start_serve`: how the
fleet tests and the scaling benchmark start workers, and read what each one did from its
/metrics (GODEL_WORKER_METRICS_PORT)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.support.godel_server import (
    GODEL_BIN,
    READY_TIMEOUT_S,
    Launch,
    StartProcess,
    godel_env,
)
from tests.support.process import LOOPBACK, ProcessRunner, free_port

PROCESSED = 'godel_events_processed_total{outcome="processed"}'


def sample(text: str, name: str) -> float:
    """The value of the sample `name` (labels included, as exposed) in a /metrics text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


class GodelWorker:
    """A running `godel worker`: its process, its metrics port, how to start it again."""

    def __init__(self, process: ProcessRunner, metrics_port: int, launch: Launch) -> None:
        self.process = process
        self.metrics_port = metrics_port
        self.launch = launch

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    def metrics(self) -> str:
        return httpx.get(self.metrics_url, timeout=5).text

    def metric(self, name: str) -> float:
        return sample(self.metrics(), name)

    def processed(self) -> float:
        """Events this process marked processed since it (re)started."""
        return self.metric(PROCESSED)

    def start_again(self, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the same command again (after it was killed or stopped); returns once its
        /metrics answers."""
        self.process.start(
            self.launch.args, self.launch.env, cwd=self.launch.cwd, inherit_env=False
        )
        self.wait_ready(ready_timeout_s)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        self.process.wait_http(self.metrics_url, timeout_s=timeout_s)


def start_worker(
    start_process: StartProcess,
    data_dir: Path,
    settings: Mapping[str, Any],
    *,
    name: str = "godel-worker",
    concurrency: int = 1,
    ready_timeout_s: float = READY_TIMEOUT_S,
    wait_ready: bool = True,
) -> GodelWorker:
    """`godel worker --concurrency N` configured by `settings` (Settings field names), its
    /metrics on a free port; returns once that answers (the worker is then starting its
    claim loops: the ledger may still be down, which it waits out), or at once with
    `wait_ready=False`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [str(GODEL_BIN), "worker", "--concurrency", str(concurrency)]
    env = {**godel_env(settings, data_dir), "GODEL_WORKER_METRICS_PORT": str(port)}
    process = start_process(args, env=env, name=name, cwd=data_dir, inherit_env=False)
    worker = GodelWorker(process, port, Launch(args, env, data_dir))
    if wait_ready:
        worker.wait_ready(ready_timeout_s)
    return worker
