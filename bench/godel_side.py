"""Running Godel for the benchmarks: in-process Producer, `godel serve` and `godel worker --burst`
as subprocesses, each against a fresh SQLite ledger in a temp dir, and reading the ledger back
to check that every event really was written (no shortcut for a benchmark).

`godel serve` is started and the ledger read the way the tests do (tests/support), but with
Godel's default settings, not the tests' FAST ones: the figures are about the defaults.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.godel_server import GodelServer, start_serve
from tests.support.godel_server import godel_env as process_env
from tests.support.ledger import ledger_counts, undispatched
from tests.support.postgres_server import PostgresServer
from tests.support.process import Processes

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
    kind = "sqlite"

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
        by_status = ledger_counts(self.url)
        return {"total": sum(by_status.values()), "undispatched": undispatched(self.url)} | {
            str(status): n for status, n in by_status.items()
        }

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def fresh_ledger() -> Iterator[Ledger]:
    ledger = Ledger.fresh()
    try:
        yield ledger
    finally:
        ledger.remove()


@dataclass
class PgLedger(Ledger):
    """A fresh database on the run's PostgreSQL, migrated as `godel db upgrade` does (Godel
    migrates only SQLite by itself), and a temp dir for the processes' data and logs."""

    server: PostgresServer | None = None
    name: str = ""
    kind = "postgresql"

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.database_url(self.name)

    def counts(self) -> dict[str, int]:
        by_status = ledger_counts(self.url)
        return {"total": sum(by_status.values()), "undispatched": undispatched(self.url)} | {
            str(status): n for status, n in by_status.items()
        }

    def remove(self) -> None:
        if self.server is not None:
            self.server.drop_database(self.name)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def fresh_pg_ledger(server: PostgresServer) -> Iterator[PgLedger]:
    from godel.store.database import Database
    from godel.store.migrate import upgrade

    url = server.create_database()
    directory = Path(tempfile.mkdtemp(prefix="godel-bench-ledger-"))
    ledger = PgLedger(directory, server, url.rsplit("/", 1)[1])
    try:
        db = Database(url)
        try:
            upgrade(db)
        finally:
            db.close()
        yield ledger
    finally:
        ledger.remove()


def settings(redis_url: str, ledger: Ledger, **extra: Any) -> Any:
    settings_cls, _ = require_producer()
    return settings_cls(redis_url=redis_url, database_url=ledger.url, data_dir=ledger.dir, **extra)


def serve_settings(redis_url: str, ledger: Ledger, **extra: Any) -> dict[str, Any]:
    """Godel's defaults (what the figures are about), plus where its servers are."""
    return {
        "redis_url": redis_url,
        "database_url": ledger.url,
        "admin_token": ADMIN_TOKEN,
        "log_level": "WARNING",
        **extra,
    }


def godel_env(redis_url: str, ledger: Ledger, **extra: Any) -> dict[str, str]:
    """The environment for a Godel subprocess: only our GODEL_* settings, none inherited."""
    return process_env(serve_settings(redis_url, ledger, **extra), ledger.dir)


def run_cli(
    args: list[str], env: dict[str, str], timeout_s: float = 600, logs: list[str] | None = None
) -> float:
    """Run a `godel` subcommand to completion; returns wall seconds from spawn to exit.
    Its output is appended to `logs` when given."""
    cmd = [*godel_command(), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - t0
    if logs is not None:
        logs.append(proc.stderr + proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"`godel {' '.join(args)}` exited {proc.returncode}: "
            f"{(proc.stderr or proc.stdout)[-800:]}"
        )
    return wall


def sum_samples(metrics_text: str, sample: str) -> float:
    """The value of one sample (name and labels as exposed) in a /metrics text; 0 if absent."""
    for line in metrics_text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def fallbacks_in_log(text: str) -> int:
    """Transitions into fallback a process logged (its contract line)."""
    return text.count("Entering fallback mode")


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
    """`godel serve` (tests/support's launcher) on a free loopback port with no workers
    inside unless `workers=` says otherwise (`GodelServe.default(...)`: the topology users
    run), Godel's default settings otherwise; logs in the ledger's directory."""

    def __init__(self, redis_url: str, ledger: Ledger, **extra: Any) -> None:
        self.ledger = ledger
        self.settings = serve_settings(redis_url, ledger, **{"workers": 0, **extra})
        self.server: GodelServer | None = None
        self._processes = Processes(ledger.dir)

    @property
    def running(self) -> GodelServer:
        if self.server is None:
            raise RuntimeError("godel serve is not running")
        return self.server

    @property
    def base_url(self) -> str:
        return self.running.url

    @property
    def pid(self) -> int:
        return self.running.process.pid

    def start(self) -> None:
        godel_command()  # GodelUnavailable when there is no CLI to run
        self.server = start_serve(self._processes, self.ledger.dir, self.settings, name="serve")

    def health(self) -> dict[str, Any]:
        return self.running.health()

    def fallbacks(self) -> int:
        """Link transitions into fallback since this process started (its /metrics)."""
        text = self.running.metrics()
        return int(sum_samples(text, 'godel_redis_fallback_transitions_total{to="fallback"}'))

    def recover(self) -> dict[str, Any]:
        return self.running.admin("/admin/recovery/redis", timeout_s=120)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> None:
        if self.server is not None:
            self.server.process.stop()
            self.server = None

    def __enter__(self) -> GodelServe:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
