"""The processes the CLI starts and stops itself.

- `EmbeddedRedis`: the embedded default, a private redis-server for `godel serve` on a
  fresh machine (and the demo's Redis, killed and started again on the same port).
- `Stack`: `godel demo`'s private stack, that redis-server and `godel serve` as a
  subprocess on a temp SQLite ledger. Whatever happens, `Stack.stop()` leaves no process
  behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from godel.errors import GodelError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; always reaped."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class EmbeddedRedis:
    """redis-server on a free loopback port, data (AOF on) under `<data_dir>/redis`."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        """Holds this server's PID while it runs: `kill -9 "$(cat <pid_file>)"` kills exactly
        Godel's own redis-server (the README tour does), no other on the host."""
        return self.dir / "redis.pid"

    def start(self, timeout_s: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise GodelError("redis-server is not installed")
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--save",
            "60 1000",
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--pidfile",
            str(self.pid_file),
        ]
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GodelError(f"redis-server exited at start; see {self.dir / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise GodelError("redis-server did not start listening in time")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=10)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    # A child inherits the signal mask: with SIGINT blocked, the Ctrl-C the terminal sends
    # to our whole process group does not take redis-server down; we stop it ourselves.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Stack:
    """The demo's own processes, all stopped by `stop()` whatever happened before."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_urlsafe(24)
        self.publish_key = secrets.token_urlsafe(24)  # the load generator's: publish only
        self.redis = EmbeddedRedis(workdir) if EmbeddedRedis.available() else None
        self.serve: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "serve.log"

    @property
    def redis_running(self) -> bool:
        proc = self.redis.proc if self.redis is not None else None
        return proc is not None and proc.poll() is None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
        env |= {
            "GODEL_DATABASE_URL": f"sqlite:///{self.workdir / 'godel.db'}",
            "GODEL_DATA_DIR": str(self.workdir),
            "GODEL_ADMIN_TOKEN": self.token,
            "GODEL_API_KEYS": f"demo-load:publish:{self.publish_key}",
            "GODEL_WORKERS": "2",
            "GODEL_PROBE_BACKOFF_MAX_S": "1",
            "GODEL_EMBEDDED_REDIS": "false",
        }
        # Without a redis-server of our own, a Redis the user runs must not be touched:
        # port 1 refuses every connection, so Godel stays in fallback (ledger only).
        env["GODEL_REDIS_URL"] = "redis://127.0.0.1:1/0"
        if self.redis is not None:
            self.start_redis()
            env["GODEL_REDIS_URL"] = self.redis.url
        argv = [sys.executable, "-c", "from godel.cli import main; main()", "serve"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            # Its own session: Ctrl-C reaches only us, and we stop it in order.
            self.serve = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._wait_live()

    def _wait_live(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.serve is not None
            if self.serve.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise GodelError(f"godel serve exited at start:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise GodelError(f"godel serve did not answer on {self.url} within {timeout_s:.0f}s")

    def kill_redis(self) -> None:
        if self.redis is not None and self.redis.proc is not None:
            self.redis.proc.kill()
            self.redis.proc.wait()

    def start_redis(self) -> None:
        if self.redis is not None and not self.redis_running:
            with _sigint_blocked():
                self.redis.start()

    def stop(self) -> None:
        if self.serve is not None:
            stop_process(self.serve, timeout_s=15)
        if self.redis is not None:
            self.redis.stop()
