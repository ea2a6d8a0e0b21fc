"""A throwaway PostgreSQL cluster on a free loopback port, tuned for speed, not durability
(`durable=True`: PostgreSQL's own defaults, for the benchmarks)."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Self

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from tests.support.process import LOOPBACK, ProcessRunner, free_port, port_is_free
from tests.support.wait import wait_until

DB_SUPERUSER = "godel"
# Used only when tests run as root: initdb and postgres refuse to run as root.
OS_USER_FALLBACK = "godeltest"
START_TIMEOUT_S = 30.0
_DIR_PREFIX = "godel-pg-"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Durability off: tests recreate everything, and fsync dominates their runtime.
_FAST = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
}


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    digits = re.findall(r"\d+", bin_dir.parent.name)
    return tuple(int(d) for d in digits)


def find_postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb and postgres, else the one on PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bin_dir in candidates:
        if (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file():
            return bin_dir
    initdb = shutil.which("initdb")
    if initdb is None:
        return None
    bin_dir = Path(initdb).resolve().parent
    return bin_dir if (bin_dir / "postgres").is_file() else None


def _os_user_for_server() -> tuple[int, int] | None:
    """(uid, gid) to run the server as, or None to run as ourselves (we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", OS_USER_FALLBACK):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            OS_USER_FALLBACK,
        ],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(OS_USER_FALLBACK)
    return entry.pw_uid, entry.pw_gid


def _owner_alive(base_dir: Path) -> bool:
    try:
        pid = int((base_dir / "owner.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _sweep_orphaned_dirs() -> None:
    # A SIGKILLed test run takes its postgres down (PDEATHSIG) but cannot delete the cluster
    # directory; the next run does, once the run that made it is gone.
    for base_dir in Path(tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*"):
        if not _owner_alive(base_dir):
            shutil.rmtree(base_dir, ignore_errors=True)


class PostgresServer:
    """initdb + postgres in a fresh directory under /tmp, trust auth, superuser `godel`.

    The directory is made with mkdtemp and chowned to the server's OS user (pytest's own
    tmp dirs are root-only, so a non-root postgres could not use them); stop() removes it.
    `durable` keeps fsync and synchronous commit on; `options` are more `-c name=value`.
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        durable: bool = False,
        options: Mapping[str, str] | None = None,
    ) -> None:
        found = bin_dir or find_postgres_bin_dir()
        if found is None:
            raise FileNotFoundError("PostgreSQL binaries (initdb, postgres) not found")
        self.bin_dir = found
        self.host = LOOPBACK
        self.port = 0
        self.user = DB_SUPERUSER
        self.durable = durable
        self.options = dict(options or {})
        self._run_as = _os_user_for_server()
        _sweep_orphaned_dirs()
        self.base_dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX))
        (self.base_dir / "owner.pid").write_text(str(os.getpid()))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self._runner = ProcessRunner(self.base_dir, "postgres")

    def start(self, port: int | None = None) -> Self:
        self.socket_dir.mkdir()
        if self._run_as is not None:
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, *self._run_as)
        self._initdb()
        self.port = port or free_port()
        self._runner.start(self._argv(), {"LC_ALL": "C"}, cwd=self.base_dir, run_as=self._run_as)
        try:
            wait_until(self._accepts_or_died, START_TIMEOUT_S, f"postgres on port {self.port}")
        except TimeoutError:
            self._runner.kill9()
            raise
        if not self.is_running():
            raise RuntimeError(f"postgres exited on start; log:\n{self._runner.log_tail()}")
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it hangs; then delete the cluster directory."""
        with contextlib.suppress(TimeoutError, RuntimeError):
            self._runner.terminate(signal.SIGINT, timeout_s=15.0)
        self._runner.kill9()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def halt(self) -> None:
        """A database outage: fast shutdown (clients are cut off), keeping the data."""
        self._runner.terminate(signal.SIGINT, timeout_s=15.0)

    def crash(self) -> None:
        """SIGKILL the postmaster and every process it started at once (a lost host);
        restart() recovers. Each child of the postmaster leads a process group of its own
        (it calls setsid), so signalling the postmaster's group would miss them."""
        self._signal_family(signal.SIGKILL)
        self._runner.kill9()

    def _signal_family(self, sig: signal.Signals) -> None:
        if not self.is_running():
            return
        postmaster = self.pid
        children = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def restart(self) -> None:
        """Start again after halt(): same port, same data (a database that came back)."""
        if self.is_running():
            self.halt()
        wait_until(lambda: port_is_free(self.port), START_TIMEOUT_S, f"port {self.port} to free")
        self._runner.start(self._argv(), {"LC_ALL": "C"}, cwd=self.base_dir, run_as=self._run_as)
        wait_until(self._accepts_or_died, START_TIMEOUT_S, f"postgres on port {self.port}")
        if not self.is_running():
            raise RuntimeError(f"postgres exited on restart; log:\n{self._runner.log_tail()}")

    def is_running(self) -> bool:
        return self._runner.is_running()

    @property
    def pid(self) -> int:
        """The postmaster's (its backends are its children)."""
        return self._runner.pid

    def log_text(self) -> str:
        return self._runner.log_text()

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database `postgres`."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{name}"

    def connect(self, dbname: str = "postgres", timeout_s: int = 5) -> psycopg.Connection[TupleRow]:
        """A plain psycopg connection in autocommit mode (CREATE DATABASE needs that)."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname,
            connect_timeout=timeout_s,
            autocommit=True,
        )

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name when None) and return its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not _DB_NAME.match(name):
            raise ValueError(f"not a plain lower-case identifier: {name!r}")
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop it even while a leaked connection still uses it (WITH FORCE, PostgreSQL 13+)."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def _initdb(self) -> None:
        argv = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", self.user,
            "--auth=trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",  # a test cluster need not survive a power cut
            "--no-instructions",
        ]  # fmt: skip
        self._run_tool(argv)

    def _run_tool(self, argv: list[str]) -> None:
        """Run a PostgreSQL program (initdb, pg_basebackup) to its end, as the server's user;
        raise with its log when it fails."""
        # A ProcessRunner, not subprocess.run: the tool too must die with a killed test run.
        name = Path(argv[0]).name
        tool = ProcessRunner(self.base_dir, name)
        tool.start(argv, {"LC_ALL": "C"}, cwd=self.base_dir, run_as=self._run_as)
        try:
            code = tool.wait(START_TIMEOUT_S)
        finally:
            tool.kill9()
        if code != 0:
            raise RuntimeError(f"{name} failed ({code}):\n{tool.log_tail()}")

    def _argv(self) -> list[str]:
        argv = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-k", str(self.socket_dir),
            "-c", f"listen_addresses={self.host}",
        ]  # fmt: skip
        settings = {} if self.durable else dict(_FAST)
        settings.update(self.options)
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _accepts_or_died(self) -> bool:
        if not self.is_running():
            return True
        try:
            with self.connect(timeout_s=1) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True
