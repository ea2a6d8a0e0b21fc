"""A fleet as production runs it: N `godel serve` (GODEL_WORKERS=0) and M `godel worker`
processes on one PostgreSQL database and one Redis, each reachable only by its own port.
The fleet tests and the scaling benchmark start it; it kills (-9) and restarts members and
reads their /metrics."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.godel_server import GodelServer, StartProcess, start_serve
from tests.support.godel_worker import GodelWorker, sample, start_worker

REPLAYED = "godel_replayed_events_total"
RECONCILED = "godel_reconciled_events_total"


@dataclass
class Fleet:
    """The running members; `restarts` counts kill -9 + start per member name.

    A restarted member dies with the thread that started it (PR_SET_PDEATHSIG follows the
    thread): restart from the test's thread or from a pool that outlives the member, as
    asyncio's default executor does until the loop closes."""

    apis: list[GodelServer]
    workers: list[GodelWorker]
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [api.url for api in self.apis]

    def clients(self, token: str | None) -> list[httpx.AsyncClient]:
        """One client per API; the caller closes them."""
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return [httpx.AsyncClient(base_url=url, headers=auth) for url in self.urls]

    def kill_api(self, index: int) -> None:
        """kill -9 an API process and start it again (same port, same settings)."""
        api = self.apis[index]
        assert api.launch is not None
        api.process.kill9()
        api.process.start(api.launch.args, api.launch.env, cwd=api.launch.cwd, inherit_env=False)
        api.process.wait_http(f"{api.url}/health/live")
        self._restarted(api.process.name)

    def kill_worker(self, index: int) -> None:
        worker = self.workers[index]
        worker.process.kill9()
        worker.start_again()
        self._restarted(worker.process.name)

    def _restarted(self, name: str) -> None:
        self.restarts[name] = self.restarts.get(name, 0) + 1

    def metrics_texts(self) -> list[str]:
        """/metrics of every member, APIs first."""
        texts = [httpx.get(f"{api.url}/metrics", timeout=5).text for api in self.apis]
        return texts + [worker.metrics() for worker in self.workers]

    def total(self, name: str) -> float:
        """The sum of sample `name` over every member (counters since each one started)."""
        return sum(sample(text, name) for text in self.metrics_texts())

    def pushed_by_recovery(self) -> dict[str, float]:
        return {name: self.total(name) for name in (REPLAYED, RECONCILED)}


def start_fleet(
    start_process: StartProcess,
    base_dir: Path,
    settings: Mapping[str, Any],
    *,
    apis: int,
    workers: int,
    concurrency: int = 1,
) -> Fleet:
    """Start `apis` API and `workers` worker processes with `settings` (the ledger must be
    migrated already: `godel db upgrade`); returns when every one answers.

    All are started from this thread (a child's PDEATHSIG fires when the *thread* that
    started it ends), then waited for together."""
    api_settings = {**settings, "workers": 0}
    fleet = Fleet(
        [
            start_serve(
                start_process, base_dir / f"api-{i}", api_settings, name=f"api-{i}",
                wait_ready=False,
            )
            for i in range(apis)
        ],
        [
            start_worker(
                start_process, base_dir / f"worker-{i}", settings, name=f"worker-{i}",
                concurrency=concurrency, wait_ready=False,
            )
            for i in range(workers)
        ],
    )  # fmt: skip
    waits = [lambda a=api: a.process.wait_http(f"{a.url}/health/ready") for api in fleet.apis]
    waits += [worker.wait_ready for worker in fleet.workers]
    with ThreadPoolExecutor(max_workers=len(waits)) as pool:
        for done in [pool.submit(wait) for wait in waits]:
            done.result()
    return fleet
