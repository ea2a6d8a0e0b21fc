"""Running Godel for the benchmarks: in-process Producer, `godel serve` and `godel worker --burst`
as subprocesses, each against a fresh SQLite ledger in a temp dir, and reading the ledger back
to check that every event really was written (no shortcut for a benchmark).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.redis_server import free_port

ADMIN_TOKEN = "bench-admin-token"
EVENT_TYPE = "bench.noop"


class GodelUnavailable(RuntimeError):
    """The Godel side cannot run yet (module missing, CLI missing); the row says why."""


def require_producer() -> tuple[Any, Any]:
    """(Settings, Producer) classes, or GodelUnavailable naming what is missing."""
    try:
        from godel.config import Settings
        from godel.producer import Producer
    except Exception as exc:
        raise GodelUnavailable(
            f"godel.producer not importable: {type(exc).__name__}: {exc}"
        ) from exc
    return Settings, Producer


def godel_command() -> list[str]:
    """How to run the `godel` CLI from this interpreter (console script, else the module)."""
    try:
        found = importlib.util.find_spec("godel.cli") is not None
    except ImportError:
        found = False
    if not found:
        raise GodelUnavailable("godel.cli not importable: no `godel` command yet")
    script = Path(sys.executable).with_name("godel")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from godel.cli import main; sys.exit(main())"]


@dataclass
class Ledger:
    """A fresh SQLite ledger file in its own temp dir."""

    dir: Path

    @classmethod
    def fresh(cls) -> Ledger:
        return cls(Path(tempfile.mkdtemp(prefix="godel-bench-ledger-")))

    @property
    def path(self) -> Path:
        return self.dir / "godel.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def counts(self) -> dict[str, int]:
        """Rows in the events table: total, undispatched, and per status."""
        if not self.path.exists():
            return {"total": 0}
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            total, undispatched = db.execute(
                "SELECT count(*), coalesce(sum(dispatched = 0), 0) FROM events"
            ).fetchone()
            out = {"total": int(total), "undispatched": int(undispatched)}
            for status, n in db.execute("SELECT status, count(*) FROM events GROUP BY status"):
                out[str(status)] = int(n)
        return out

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def fresh_ledger() -> Iterator[Ledger]:
    ledger = Ledger.fresh()
    try:
        yield ledger
    finally:
        ledger.remove()


def settings(redis_url: str, ledger: Ledger, **extra: Any) -> Any:
    settings_cls, _ = require_producer()
    return settings_cls(redis_url=redis_url, database_url=ledger.url, data_dir=ledger.dir, **extra)


def godel_env(redis_url: str, ledger: Ledger, **extra: str) -> dict[str, str]:
    """The environment for a Godel subprocess: only our GODEL_* settings, none inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
    env.update(
        {
            "GODEL_REDIS_URL": redis_url,
            "GODEL_DATABASE_URL": ledger.url,
            "GODEL_DATA_DIR": str(ledger.dir),
            "GODEL_ADMIN_TOKEN": ADMIN_TOKEN,
            "GODEL_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


def run_cli(args: list[str], env: dict[str, str], timeout_s: float = 600) -> float:
    """Run a `godel` subcommand to completion; returns wall seconds from spawn to exit."""
    cmd = [*godel_command(), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"`godel {' '.join(args)}` exited {proc.returncode}: "
            f"{(proc.stderr or proc.stdout)[-800:]}"
        )
    return wall


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and all its descendants (from /proc)."""
    total = 0
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class GodelServe:
    """A `godel serve` subprocess on a free loopback port, with no workers inside."""

    def __init__(self, redis_url: str, ledger: Ledger, **extra_env: str) -> None:
        self.port = free_port()
        self.ledger = ledger
        self.env = godel_env(redis_url, ledger, GODEL_WORKERS="0", **extra_env)
        self.log_path = ledger.dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 60) -> None:
        cmd = [*godel_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"godel serve exited {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/health", timeout=1).status_code < 500:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"godel serve did not answer /health in {timeout_s}s: {self.log_tail()}")

    def log_tail(self, chars: int = 800) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.base_url + "/health", timeout=5).json())

    def recover(self) -> dict[str, Any]:
        resp = httpx.post(
            self.base_url + "/admin/recovery/redis",
            timeout=120,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        resp.raise_for_status()
        return dict(resp.json())

    def metrics(self) -> str:
        return httpx.get(self.base_url + "/metrics", timeout=5).text

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> GodelServe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def metric_value(text: str, name: str) -> float | None:
    """The value of an unlabelled Prometheus sample in /metrics text."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return None
