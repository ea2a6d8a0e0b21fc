"""CPU per process from /proc, over a window: what row 8 (bench/rows_scaling.py) reads to
say which resource saturated."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")
MACHINE_SATURATED = 0.9  # of all cores busy
PROCESS_SATURATED = 0.75  # of one core, for one process


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def _tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _ticks(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    return 0


def _machine_busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU used per named group of processes (each root with its descendants at the time of
    each snapshot: PostgreSQL forks a backend per connection) between two snapshots, in
    cores; `machine` is the share of all cores that was busy."""

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self.groups = dict(groups)

    def snapshot(self) -> tuple[float, dict[str, int], tuple[int, int]]:
        children = _children()
        ticks = {
            name: sum(_ticks(p) for root in roots for p in _tree(root, children))
            for name, roots in self.groups.items()
        }
        return time.monotonic(), ticks, _machine_busy()

    @staticmethod
    def used(before: Any, after: Any) -> dict[str, float]:
        elapsed = after[0] - before[0]
        cores = {k: max(0, after[1][k] - before[1][k]) / TICKS / elapsed for k in after[1]}
        busy, total = (a - b for a, b in zip(after[2], before[2], strict=True))
        cores["machine"] = busy / total if total else 0.0
        return cores


def saturation(cores: Mapping[str, float]) -> str:
    """Which resource limited the run, from the CPU shares of one window. `machine` counts
    every process on the box (another job's too); `ours` is what the measured ones used."""
    ours = {k: v for k, v in cores.items() if k != "machine"}
    machine, total = cores["machine"], sum(ours.values())
    busiest = max(ours, key=lambda k: ours[k])
    if machine >= MACHINE_SATURATED:
        verdict = f"the machine's CPU ({machine:.0%} of {os.cpu_count()} cores busy)"
    elif ours[busiest] >= PROCESS_SATURATED:
        verdict = f"{busiest}'s CPU (near one core: one Python process runs on one)"
    else:
        verdict = "no CPU (latency: commit and Redis round trips)"
    shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(ours.items()))
    return f"saturated: {verdict}; cores used: {shown} (ours {total:.2f}, machine {machine:.0%})"
