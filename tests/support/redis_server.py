"""A real redis-server on a free loopback port, with the faults chaos tests need."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.process import LOOPBACK, ProcessRunner, free_port, port_is_free
from tests.support.wait import wait_until

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# Start-up polls often: the benchmarks time a replay from the first PING answered (up_since).
START_POLL_S = 0.005


def redis_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """redis-server in `<base_dir>/data`, logging to `<base_dir>/redis.log`.

    Defaults are for tests: no RDB snapshots (`--save ""`), no AOF unless asked, bound to
    127.0.0.1. `restart()` reuses the port, so URLs held by the code under test stay valid.
    """

    def __init__(self, base_dir: Path, binary: str | None = None) -> None:
        found = binary or redis_binary()
        if found is None:
            raise FileNotFoundError("redis-server not found on PATH")
        self.binary = found
        self.host = LOOPBACK
        self.port = 0
        self.data_dir = base_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._runner = ProcessRunner(base_dir, "redis")
        self._appendonly = False
        self._extra_args: tuple[str, ...] = ()
        self._paused = False
        # Set by config_set/replicaof, so reset() knows a FLUSHALL is not enough.
        self._reconfigured = False
        self.up_since = 0.0  # monotonic time PING was first answered after the last start

    # -- lifecycle ---------------------------------------------------------------------------

    def start(
        self, port: int | None = None, appendonly: bool = False, extra_args: Sequence[str] = ()
    ) -> Self:
        """Start and wait until PING answers. `extra_args` are redis-server `--name value` pairs."""
        self._appendonly = appendonly
        self._extra_args = tuple(extra_args)
        if port is not None:
            self._launch(port)
            return self
        # A port picked free can be taken before redis binds it; pick again when that happens.
        for attempt in range(3):
            try:
                self._launch(free_port())
                return self
            except RuntimeError:
                if attempt == 2 or "Address already in use" not in self.log_text():
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SHUTDOWN NOSAVE (the AOF, if on, is still flushed), SIGKILL if that does not work."""
        if not self.is_running():
            self._runner.kill9()  # reap, and sweep the group
            return
        self.resume()
        # A failed SHUTDOWN (the server died meanwhile, or refused) is settled by the wait
        # and the SIGKILL below; there is nothing else to do about it here.
        with contextlib.suppress(redis.RedisError), self.client(socket_timeout=2) as conn:
            conn.shutdown(nosave=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._runner.wait(STOP_TIMEOUT_S)
        self._runner.kill9()

    def kill9(self) -> None:
        """SIGKILL: a crash. Nothing is saved; an AOF keeps what was already written to it."""
        self._paused = False
        self._runner.kill9()

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers (a hung server, a GC pause)."""
        self._runner.pause()
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._runner.resume()
            self._paused = False

    def restart(self, keep_data: bool = True) -> None:
        """Stop (gracefully if running) and start again on the same port with the same options.

        keep_data=False deletes the RDB and AOF files first: a replacement pod with no volume.
        Settings changed with config_set() are lost, as on a real restart.
        """
        self.stop()
        if not keep_data:
            shutil.rmtree(self.data_dir)
            self.data_dir.mkdir()
        wait_until(lambda: port_is_free(self.port), STOP_TIMEOUT_S, f"port {self.port} to free")
        self._launch(self.port)

    def reset(self) -> None:
        """Make this an empty, running server with its start options (the per-test reset)."""
        self.resume()
        if self._reconfigured or not self.ping():
            self.restart(keep_data=False)
            return
        with self.client() as conn:
            conn.flushall()

    # -- state ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self._runner.log_path

    @property
    def pid(self) -> int:
        return self._runner.pid

    @property
    def is_paused(self) -> bool:
        return self._paused

    def is_running(self) -> bool:
        """The process exists (paused included); use ping() to ask whether it answers."""
        return self._runner.is_running()

    def ping(self, timeout_s: float = 1.0) -> bool:
        if not self.is_running() or self._paused:
            return False
        try:
            with self.client(socket_timeout=timeout_s, socket_connect_timeout=timeout_s) as conn:
                return bool(conn.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def log_text(self) -> str:
        return self._runner.log_text()

    # -- commands --------------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> redis.Redis:
        """A sync client for db 0. No retries by default, so faults surface at once."""
        options: dict[str, Any] = {
            "socket_timeout": 5.0,
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(kwargs)
        return redis.Redis(host=self.host, port=self.port, db=0, **options)

    def config_set(self, name: str, value: str | int) -> None:
        with self.client() as conn:
            conn.config_set(name, value)
        self._reconfigured = True

    def config_get(self, name: str) -> str:
        with self.client(decode_responses=True) as conn:
            value: str = conn.config_get(name)[name]
            return value

    def replicaof(self, host: str, port: int) -> None:
        with self.client() as conn:
            conn.execute_command("REPLICAOF", host, port)
        self._reconfigured = True

    def replicaof_no_one(self) -> None:
        with self.client() as conn:
            conn.execute_command("REPLICAOF", "NO", "ONE")

    # -- internals -------------------------------------------------------------------------------

    def _argv(self, port: int) -> list[str]:
        return [
            self.binary,
            "--port", str(port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self._appendonly else "no",
            "--daemonize", "no",
            "--logfile", "",
            *self._extra_args,
        ]  # fmt: skip

    def _launch(self, port: int) -> None:
        self.port = port
        self._paused = False
        self._reconfigured = False
        self._runner.start(self._argv(port), cwd=self.data_dir)
        try:
            self.up_since = wait_until(
                self._answers_or_died,
                START_TIMEOUT_S,
                f"redis-server on port {port}",
                interval_s=START_POLL_S,
            )
        except TimeoutError:
            self._runner.kill9()
            raise
        if not self.is_running():
            self._runner.kill9()
            raise RuntimeError(f"redis-server exited on start; log:\n{self._runner.log_tail()}")

    def _answers_or_died(self) -> bool:
        return not self.is_running() or self.ping(timeout_s=0.5)
