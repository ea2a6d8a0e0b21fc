"""A private Godel stack for `godel demo`: a redis-server (when installed) that can be
killed and started again on the same port, and `godel serve` as a subprocess on a temp
SQLite ledger. Whatever happens, `Stack.stop()` leaves no process behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from godel.embedded import EmbeddedRedis, free_port, stop_process
from godel.errors import GodelError


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
