"""Peer environments and runs. Peers are never Godel dependencies: each lives in its own cached
venv under bench/.venvs/<peer> (arq pins redis<6, so it cannot share Godel's), created with pip
on first use. Bare redis-py runs in Godel's own interpreter. Each peer is a subprocess script
under bench/peers/ that prints one JSON line.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / "peers"
VENVS_DIR = BENCH_DIR / ".venvs"

# What pip installs in each peer venv. arq: latest 0.2x (0.28 pins redis<6); RQ: latest.
# hiredis for both, so neither peer is slowed by the pure-Python parser Godel does not use.
PEER_SPECS: dict[str, list[str]] = {
    # fastapi + uvicorn[standard] (uvloop, httptools): the FastAPI + arq peer (arq_app.py).
    "arq": ["arq>=0.26,<0.30", "hiredis", "fastapi", "uvicorn[standard]"],
    "rq": ["rq", "hiredis"],
}
SCRIPTS = {"arq": "arq_bench.py", "rq": "rq_bench.py", "bare": "bare_bench.py"}


class PeerUnavailable(RuntimeError):
    """The peer's venv could not be made or its script failed."""


@dataclass
class PeerEnv:
    name: str

    @property
    def dir(self) -> Path:
        return VENVS_DIR / self.name

    @property
    def python(self) -> Path:
        return self.dir / "bin" / "python"

    def _marker(self) -> Path:
        return self.dir / ".bench-spec.json"

    def _wanted(self) -> dict[str, Any]:
        return {"spec": PEER_SPECS[self.name], "python": sys.version.split()[0]}

    def _ready(self) -> bool:
        try:
            return self.python.exists() and json.loads(self._marker().read_text()) == self._wanted()
        except (OSError, ValueError):
            return False

    def ensure(self, log: Any = print) -> Path:
        """Create (once) and return the venv's python. Locked: two runs may start together."""
        VENVS_DIR.mkdir(parents=True, exist_ok=True)
        with open(VENVS_DIR / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self._ready():
                self._create(log)
        return self.python

    def _create(self, log: Any) -> None:
        log(f"creating peer venv {self.dir} ({' '.join(PEER_SPECS[self.name])}) ...")
        shutil.rmtree(self.dir, ignore_errors=True)
        t0 = time.monotonic()
        _run_checked([sys.executable, "-m", "venv", str(self.dir)], "venv")
        _run_checked(
            [
                str(self.python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *PEER_SPECS[self.name],
            ],
            "pip install",
        )
        self._marker().write_text(json.dumps(self._wanted()))
        log(f"peer venv {self.name} ready in {time.monotonic() - t0:.1f}s")


def _run_checked(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise PeerUnavailable(f"{what} failed: {proc.stderr.strip()[-500:]}")


def peer_python(peer: str) -> Path:
    if peer == "bare":
        return Path(sys.executable)
    return PeerEnv(peer).ensure()


def peer_command(
    peer: str, redis_url: str, mode: str, n: int, reps: int = 1, extra: list[str] | None = None
) -> list[str]:
    return [
        str(peer_python(peer)),
        str(PEERS_DIR / SCRIPTS[peer]),
        "--redis-url",
        redis_url,
        "--mode",
        mode,
        "--n",
        str(n),
        "--reps",
        str(reps),
        *(extra or []),
    ]


def parse_line(stdout: str, cmd: list[str]) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise PeerUnavailable(f"no JSON line from {' '.join(cmd[1:3])}")
    return dict(json.loads(lines[-1]))


def run_peer(
    peer: str,
    redis_url: str,
    mode: str,
    n: int,
    reps: int = 1,
    extra: list[str] | None = None,
    timeout_s: float = 300,
) -> dict[str, Any]:
    """Run a peer script to completion and return its JSON line."""
    cmd = peer_command(peer, redis_url, mode, n, reps, extra)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=PEERS_DIR)
    if proc.returncode != 0:
        raise PeerUnavailable(f"{peer} {mode} exited {proc.returncode}: {proc.stderr[-800:]}")
    return parse_line(proc.stdout, cmd)


def timed_peer(
    peer: str, redis_url: str, mode: str, n: int, extra: list[str] | None = None
) -> tuple[float, dict[str, Any]]:
    """Run one peer process and return (wall seconds from spawn to exit, its JSON line)."""
    cmd = peer_command(peer, redis_url, mode, n, 1, extra)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=PEERS_DIR)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise PeerUnavailable(f"{peer} {mode} exited {proc.returncode}: {proc.stderr[-800:]}")
    return wall, parse_line(proc.stdout, cmd)


def versions() -> dict[str, str]:
    """Installed peer versions (for the JSON), without creating anything."""
    out: dict[str, str] = {}
    for name, module in (("arq", "arq"), ("rq", "rq")):
        env = PeerEnv(name)
        if not env.python.exists():
            continue
        code = f"import importlib.metadata as m; print(m.version('{module}'), m.version('redis'))"
        proc = subprocess.run([str(env.python), "-c", code], capture_output=True, text=True)
        if proc.returncode == 0:
            ver, redis_ver = proc.stdout.split()
            out[name] = f"{ver} (redis-py {redis_ver})"
    return out
