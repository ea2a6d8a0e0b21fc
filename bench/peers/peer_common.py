"""Helpers shared by the peer scripts. Standalone: peers run in their own venvs without `bench`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any


def parser(description: str, modes: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--n", type=int, required=True, help="events (jobs) per repetition")
    p.add_argument("--mode", choices=modes, required=True)
    p.add_argument("--reps", type=int, default=1)
    return p


def rep(n: int, elapsed_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "n": n,
        "elapsed_s": elapsed_s,
        "rate": n / elapsed_s if elapsed_s > 0 else 0.0,
        **extra,
    }


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def emit(peer: str, mode: str, version: str, reps: list[dict[str, Any]], **extra: Any) -> None:
    """Print the one JSON line the harness reads (last line of stdout)."""
    line = {"peer": peer, "mode": mode, "version": version, "reps": reps, **extra}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
