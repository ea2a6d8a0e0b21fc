"""`godel serve` as a real subprocess (the console script), the one way tests, chaos tests,
the dashboard's e2e test and the benchmarks start it, and drive it over HTTP."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from tests.support.process import LOOPBACK, ProcessRunner, free_port
from tests.support.settings import settings_env
from tests.support.wait import wait_until

GODEL_BIN = Path(sys.executable).with_name("godel")
REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0  # a cold interpreter on a loaded 2-core machine

Health = dict[str, Any]


class StartProcess(Protocol):
    """Starts a ProcessRunner and owns its stop: the `run_process` fixture, or the bench's."""

    def __call__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        name: str = "proc",
        cwd: Path | None = None,
        inherit_env: bool = True,
    ) -> ProcessRunner: ...


def godel_env(settings: Mapping[str, Any], data_dir: Path | None = None) -> dict[str, str]:
    """The whole environment of a `godel` process: ours without any GODEL_* variable (a
    developer's exports must not leak in), plus `settings` as GODEL_*, and the repository on
    PYTHONPATH so GODEL_HANDLERS can name test plugins (tests.plugins.flaky)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
    env.update(settings_env(settings))
    if data_dir is not None:
        env["GODEL_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass(frozen=True)
class Launch:
    args: list[str]
    env: dict[str, str]
    cwd: Path


class GodelServer:
    """A running `godel serve`: its URL, its process, and what tests ask of it."""

    def __init__(
        self,
        url: str,
        process: ProcessRunner,
        token: str | None = None,
        launch: Launch | None = None,
    ) -> None:
        self.url = url
        self.process = process
        self.token = token
        self.launch = launch  # how start_serve started it: restart() does the same again

    def restart(self, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        """SIGTERM (a graceful stop, as Kubernetes does) and start again: same port, same
        settings, same ledger; returns once it is ready."""
        if self.launch is None:
            raise RuntimeError("not started by start_serve: nothing to restart with")
        self.process.terminate()
        self.process.start(
            self.launch.args, self.launch.env, cwd=self.launch.cwd, inherit_env=False
        )
        self.process.wait_http(f"{self.url}/health/ready", timeout_s=ready_timeout_s)

    @property
    def auth(self) -> dict[str, str]:
        """The admin token as a header: every route but liveness, readiness and /metrics
        needs a credential."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def health(self) -> Health:
        body: Health = httpx.get(f"{self.url}/health", headers=self.auth, timeout=5).json()
        return body

    def wait(self, check: Callable[[Health], bool], what: str, timeout_s: float = 20) -> None:
        """Poll GET /health until `check(health)` holds."""
        seen: list[Health] = [{}]

        def holds() -> bool:
            seen[0] = self.health()
            return check(seen[0])

        wait_until(holds, timeout_s, what, interval_s=0.1, detail=lambda: f"/health: {seen[0]}")

    def wait_state(self, state: str, reason: str | None = None, timeout_s: float = 20) -> None:
        self.wait(
            lambda h: h["state"] == state and (reason is None or h["link"]["reason"] == reason),
            f"link state {state} ({reason})",
            timeout_s,
        )

    def post(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """POST one event (or {"events": [...]}); it must be acknowledged (202)."""
        response = httpx.post(
            f"{self.url}/api/v1/events", json=event, headers=self.auth, timeout=10
        )
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    def admin(self, path: str, timeout_s: float = 120) -> dict[str, Any]:
        """POST an admin endpoint with the admin token; it must answer 200."""
        response = httpx.post(f"{self.url}{path}", headers=self.auth, timeout=timeout_s)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def metric(self, name: str) -> float:
        """The value of the unlabelled sample `name` on /metrics (0 when absent)."""
        for line in self.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0


def start_serve(
    start_process: StartProcess,
    data_dir: Path,
    settings: Mapping[str, Any],
    *,
    name: str = "godel-serve",
    ready_timeout_s: float = READY_TIMEOUT_S,
    wait_ready: bool = True,
) -> GodelServer:
    """`godel serve` on a free loopback port, configured by `settings` (Settings field
    names; tests pass `fast_settings(...)`), run in `data_dir`; returns once
    GET /health/ready answers 200 (a ledger that takes writes: Redis may be down), or at
    once with `wait_ready=False` (start several, then wait for each)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [str(GODEL_BIN), "serve", "--host", LOOPBACK, "--port", str(port)]
    env = godel_env(settings, data_dir)
    process = start_process(args, env=env, name=name, cwd=data_dir, inherit_env=False)
    launch = Launch(args, env, data_dir)
    server = GodelServer(f"http://{LOOPBACK}:{port}", process, settings.get("admin_token"), launch)
    if wait_ready:
        process.wait_http(f"{server.url}/health/ready", timeout_s=ready_timeout_s)
    return server
