"""Owned child processes: started in their own session, logged to a file, never left behind.

Three layers make sure no server outlives the test session:
- fixture finalizers call `stop()` (the normal path);
- an atexit sweep SIGKILLs whatever is still registered (a finalizer that raised);
- PR_SET_PDEATHSIG=SIGKILL on every child (pytest itself was SIGKILLed or timed out hard).
Children get their own session so a Ctrl-C aimed at pytest does not kill a server before the
finalizer that expects it to be alive.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx

from tests.support.wait import wait_until

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIVE: set[ProcessRunner] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    # SO_REUSEADDR mirrors what redis-server and postgres do, so TIME_WAIT sockets left by
    # killed clients do not count as "in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    # Runs in the child after the uid switch (the kernel clears PDEATHSIG on a uid change).
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessRunner:
    """One child process whose stdout and stderr go to `<log_dir>/<name>.log`.

    The runner can be started again after the process ended; the log file is appended to,
    with a header line per start.
    """

    def __init__(self, log_dir: Path, name: str = "proc") -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._popen: subprocess.Popen[bytes] | None = None

    def start(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        inherit_env: bool = True,
        run_as: tuple[int, int] | None = None,
    ) -> Self:
        """Start `args`. `env` is laid over os.environ (or replaces it: inherit_env=False).

        `run_as` is (uid, gid), for servers that refuse to run as root.
        """
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        full_env = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
        with self.log_path.open("ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} start: {list(args)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                user=run_as[0] if run_as else None,
                group=run_as[1] if run_as else None,
                extra_groups=[] if run_as else None,
            )
        _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def is_running(self) -> bool:
        """True while the process exists, also when it is paused (SIGSTOP)."""
        return self._popen is not None and self._popen.poll() is None

    def send_signal(self, sig: signal.Signals) -> None:
        if self.is_running():
            self._require().send_signal(sig)

    def pause(self) -> None:
        """SIGSTOP the whole process group: it keeps its sockets but answers nothing."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def wait(self, timeout_s: float) -> int:
        """Wait for exit and return the exit code; raises subprocess.TimeoutExpired."""
        code = self._require().wait(timeout=timeout_s)
        self._reaped()
        return code

    def kill9(self) -> None:
        """SIGKILL the process and everything in its group (children too), and reap it."""
        if self._popen is None:
            return
        # SIGCONT first: a paused group would otherwise keep its children stopped forever
        # if one of them escaped the kill (e.g. by changing its own process group).
        self._signal_group(signal.SIGCONT)
        self._signal_group(signal.SIGKILL)
        self._popen.wait(timeout=10)
        self._reaped()

    def terminate(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Send `sig` (SIGTERM: what Kubernetes does) to the main process and wait.

        If it has not exited after `timeout_s`, kill the group and raise TimeoutError:
        a graceful shutdown that hangs is a defect a test should see.
        """
        if not self.is_running():
            return self.wait(0)
        self._signal_group(signal.SIGCONT)
        self.send_signal(sig)
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise TimeoutError(f"{self.name} ignored {sig.name} for {timeout_s}s") from None

    def stop(self) -> None:
        """Idempotent cleanup: SIGTERM, then SIGKILL for the group's leftovers."""
        if self._popen is None:
            return
        with contextlib.suppress(TimeoutError):
            self.terminate(timeout_s=5.0)
        self.kill9()

    def wait_http(
        self, url: str, timeout_s: float = 20.0, status: int | None = 200
    ) -> httpx.Response:
        """Poll `url` until it answers with `status` (None: any status); fail fast on exit."""
        seen: list[httpx.Response | str] = ["no answer yet"]

        def answered() -> bool:
            if not self.is_running():
                raise RuntimeError(
                    f"{self.name} exited with {self.returncode} before {url} answered;"
                    f" log:\n{self.log_tail()}"
                )
            try:
                response = httpx.get(url, timeout=1.0)
            except httpx.TransportError as exc:
                seen[0] = repr(exc)
                return False
            seen[0] = response
            return status is None or response.status_code == status

        def last() -> str:
            answer = seen[0]
            shown = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
            return f"last: {shown}; log:\n{self.log_tail()}"

        wait_until(answered, timeout_s, f"{url} to answer", interval_s=0.05, detail=last)
        assert isinstance(seen[0], httpx.Response)
        return seen[0]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, max_chars: int = 4000) -> str:
        return self.log_text()[-max_chars:]

    def _require(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group outlives its leader when children remain, so signal even after exit;
        # ProcessLookupError just means the group is already gone.
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def _reaped(self) -> None:
        if self._popen is not None and self._popen.poll() is not None:
            self._signal_group(signal.SIGKILL)
            _LIVE.discard(self)


class Processes:
    """ProcessRunners logging in one directory (a name taken again gets a suffix), all
    stopped by `stop()`, last started first. Called as `processes(args, env=None,
    name="proc", cwd=None, inherit_env=True)` -> a started ProcessRunner: the `run_process`
    fixture's and the benchmarks' way to start processes (a godel_server.StartProcess)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.runners: list[ProcessRunner] = []

    def __call__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        name: str = "proc",
        cwd: Path | None = None,
        inherit_env: bool = True,
    ) -> ProcessRunner:
        if any(runner.name == name for runner in self.runners):
            name = f"{name}-{len(self.runners)}"
        runner = ProcessRunner(self.log_dir, name)
        self.runners.append(runner)
        return runner.start(args, env, cwd=cwd, inherit_env=inherit_env)

    def stop(self) -> None:
        # ExitStack: one process failing to stop must not leave the others running.
        with contextlib.ExitStack() as stops:
            for runner in self.runners:
                stops.callback(runner.stop)


@atexit.register
def _kill_leftovers() -> None:
    for runner in list(_LIVE):
        with contextlib.suppress(Exception):
            runner.kill9()
