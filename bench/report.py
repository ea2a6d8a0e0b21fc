"""The table on the terminal and the JSON on disk."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.stats import Result, Stat, Status

STYLES = {
    Status.PASS: "bold green",
    Status.MISS: "bold red",
    Status.INFO: "cyan",
    Status.UNAVAILABLE: "yellow",
    Status.ERROR: "bold magenta",
}


def fmt(value: float, unit: str) -> str:
    if unit == "ev/s":
        return f"{value:,.0f} ev/s"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "transitions":
        return f"{value:.0f}"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "B/entry":
        return f"{value:,.0f} B"
    return f"{value:.2f} {unit}"


def fmt_stat(stat: Stat) -> str:
    low, high = fmt(stat.min, stat.unit), fmt(stat.max, stat.unit)
    return f"{fmt(stat.median, stat.unit)}\n[dim]{low} - {high}[/dim]"


def table(results: list[Result], title: str) -> Table:
    t = Table(title=title, show_lines=True, header_style="bold")
    t.add_column("benchmark", no_wrap=True)
    t.add_column("godel (median, min - max)", no_wrap=True)
    t.add_column("peers (median, min - max)", no_wrap=True)
    t.add_column("ratio", no_wrap=True)
    t.add_column("target")
    t.add_column("result", no_wrap=True)
    for r in results:
        godel = fmt_stat(r.godel) if r.godel else "[yellow]—[/yellow]"
        peers = "\n".join(f"{name}: {fmt_stat(s)}" for name, s in r.peers.items()) or "—"
        ratios = "\n".join(f"{v:.2f}x {name}" for name, v in r.ratios.items()) or "—"
        status = f"[{STYLES[r.status]}]{r.status.value.upper()}[/]"
        t.add_row(r.name, godel, peers, ratios, r.target, status)
    return t


def print_report(console: Console, results: list[Result], meta: dict[str, Any]) -> None:
    m = meta["machine"]
    title = (
        f"Godel benchmarks ({meta['mode']}) — {meta['date']} — {m['cpu_model']}, "
        f"{m['cores']} cores, Python {m['python']}, Redis {m['redis']}"
    )
    console.print(table(results, title))
    notes = [(r.name, r.note.strip()) for r in results if r.note.strip()]
    if notes:
        console.print("[bold]notes[/bold]")
        for name, note in notes:
            console.print(f"  [bold]{name.split(' ', 1)[0]}[/bold] {note}", soft_wrap=True)
    console.print(
        f"total {meta['duration_s']:.0f} s; peers: "
        + ", ".join(f"{k} {v}" for k, v in meta["peers"].items())
    )


def machine(redis_version: str) -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "redis": redis_version,
        "platform": platform.platform(),
        "godel": _godel_version(),
        "git_commit": _git_commit(),
    }


def _godel_version() -> str:
    try:
        import godel

        return str(getattr(godel, "__version__", "unknown"))
    except Exception:
        return "not importable"


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    return None


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def write_json(
    results: list[Result], meta: dict[str, Any], results_dir: Path, extra: Path | None
) -> list[Path]:
    doc = {**meta, "results": [r.to_json() for r in results]}
    text = json.dumps(doc, indent=2, default=str) + "\n"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = meta["date"].replace(":", "").replace("-", "")
    paths = [results_dir / f"{stamp}.json", results_dir / "latest.json"]
    if extra is not None:
        extra.parent.mkdir(parents=True, exist_ok=True)
        paths.append(extra)
    for path in paths:
        path.write_text(text)
    return paths
