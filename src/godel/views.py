"""Rich renderings of the API's answers for the `godel` CLI (status, events, dead letters).

Kept apart from the commands so `godel demo` and the commands draw the same things the
same way. Every function takes plain JSON as the API returns it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from godel.client import GodelClient

# What the dashboard says while the link is not connected (a contract: operators grep it).
BANNER_DOWN = "Redis Connection Error"
STATE_STYLE = {"connected": "green", "fallback": "bold red", "recovering": "yellow"}
MEMORY_METRICS = {
    "godel_redis_used_memory_bytes": "used",
    "godel_redis_maxmemory_bytes": "max",
}


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def fmt_age(since: float | None, now: float | None = None) -> str:
    """`12:00:03 (2m 5s ago)` from an epoch time."""
    if not since:
        return "-"
    age = max(0, int((now or time.time()) - since))
    minutes, seconds = divmod(age, 60)
    hours, minutes = divmod(minutes, 60)
    span = f"{hours}h {minutes}m" if hours else f"{minutes}m {seconds}s" if minutes else f"{age}s"
    return f"{time.strftime('%H:%M:%S', time.localtime(since))} ({span} ago)"


def redis_memory(metrics_text: str) -> dict[str, float]:
    """Redis used/max memory as Godel last read them from INFO (exported on /metrics)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in MEMORY_METRICS:
                found[MEMORY_METRICS[sample.name]] = sample.value
    return found


def banner(health: dict[str, Any]) -> Text:
    link = health.get("link") or {}
    state = str(link.get("state", health.get("state", "unknown")))
    if state == "connected":
        return Text(f"Redis connected since {fmt_age(link.get('since'))}", style="bold green")
    reason = link.get("reason") or "unknown"
    text = Text(f"{BANNER_DOWN}: ", style="bold red")
    text.append(f"{state} since {fmt_age(link.get('since'))}, reason {reason}", style="red")
    return text


def _memory_cell(memory: dict[str, float], connected: bool) -> str:
    if "used" not in memory:
        return "unknown"
    used = memory["used"]
    cap = memory.get("max", 0.0)
    text = fmt_bytes(used)
    text += f" of {fmt_bytes(cap)} ({used / cap:.0%})" if cap else " (no maxmemory)"
    return text if connected else f"{text}, last seen before the outage"


def _queues_cell(queues: dict[str, Any] | None) -> str:
    if queues is None:
        return "unknown while Redis is unreachable"
    dead = queues.get("dead") or {}
    per_type = ", ".join(f"{t} {n}" for t, n in sorted(dead.items()))
    return (
        f"pending {queues.get('pending', 0)}, processing {queues.get('processing', 0)}, "
        f"delayed {queues.get('delayed', 0)}, dead {sum(dead.values())}"
        + (f" ({per_type})" if per_type else "")
        + f"; {queues.get('workers', 0)} workers"
    )


def _replay_cell(replay: dict[str, Any]) -> str:
    last = (
        f"last replay {replay.get('replayed', 0)} events in {replay.get('duration_s', 0):.2f}s"
        f" at {fmt_age(replay.get('at'))}"
        if replay.get("at")
        else "no replay yet"
    )
    return (
        f"{last}; replayed {replay.get('replayed_total', 0)} and reconciled "
        f"{replay.get('reconciled_total', 0)} since start"
    )


def status_view(health: dict[str, Any], memory: dict[str, float]) -> RenderableType:
    """`godel status`: a banner line, then one row per concern."""
    link = health.get("link") or {}
    state = str(link.get("state", health.get("state", "unknown")))
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("Link", Text(state, style=STATE_STYLE.get(state, "")))
    table.add_row("Since", fmt_age(link.get("since")))
    table.add_row("Reason", str(link.get("reason") or "-"))
    if link.get("last_error"):
        table.add_row("Last error", str(link["last_error"]))
    table.add_row("Redis", str(link.get("redis_url", "-")))
    table.add_row("Redis memory", _memory_cell(memory, state == "connected"))
    table.add_row("Queues", _queues_cell(health.get("queues")))
    undispatched = health.get("undispatched")
    table.add_row(
        "Undispatched",
        "unknown" if undispatched is None else f"{undispatched} events in the ledger, not in Redis",
    )
    table.add_row("Replay", _replay_cell(health.get("replay") or {}))
    events = health.get("events") or {}
    table.add_row("Ledger", ", ".join(f"{k} {v}" for k, v in sorted(events.items())) or "empty")
    table.add_row("Database", str(health.get("database", "-")))
    table.add_row("Uptime", f"{health.get('uptime_s', 0)}s")
    return Group(banner(health), table)


def event_line(row: dict[str, Any]) -> str:
    """One ledger row as one line, for `godel events tail`."""
    created = row.get("created_at")
    stamp = time.strftime("%H:%M:%S", time.localtime(created)) if created else "--:--:--"
    agent = row.get("agent_id") or "-"
    return (
        f"{stamp} #{row.get('seq', '?')} {row.get('type', '?')} {row.get('id', '?')} "
        f"agent={agent} status={row.get('status', '?')} attempts={row.get('attempts', 0)}"
    )


def link_line(change: dict[str, Any]) -> str:
    """A `link` stream message: {"previous", "state", "reason"} (or {"old", "new"})."""
    old = change.get("previous", change.get("old"))
    new = change.get("state", change.get("new"))
    reason = f" ({change['reason']})" if change.get("reason") and new != "connected" else ""
    return f"link: {new}{reason}" if old is None else f"link: {old} -> {new}{reason}"


def dead_types_view(body: dict[str, Any]) -> RenderableType:
    """A title line (never wrapped into a narrow table), then counts per type."""
    types: dict[str, int] = body.get("types") or {}
    title = Text(f"Dead letters: {body.get('total', sum(types.values()))} total", style="bold")
    if not types:
        return title
    table = Table()
    table.add_column("type")
    table.add_column("count", justify="right")
    for name, count in sorted(types.items()):
        table.add_row(name, str(count))
    return Group(title, table)


def dead_events_view(event_type: str, events: list[dict[str, Any]]) -> RenderableType:
    title = Text(f"Dead letters of type {event_type}: {len(events)} shown", style="bold")
    if not events:
        return title
    table = Table()
    for column in ("id", "agent", "attempts", "last error"):
        table.add_column(column, overflow="fold")
    for ev in events:
        table.add_row(
            str(ev.get("id")),
            str(ev.get("agent_id") or "-"),
            str(ev.get("attempts", "")),
            str(ev.get("last_error") or "-"),
        )
    return Group(title, table)


def run_recovery(
    poller: GodelClient, poster: GodelClient, timeout_s: float, console: Console
) -> dict[str, Any]:
    """`godel recover`: POST /admin/recovery/redis (the replay runs inside that request)
    while a progress bar follows the undispatched backlog on GET /health down to 0."""
    poster.require_token()  # before anything else: no half-done work without the token
    total = int(poller.get("/health").get("undispatched") or 0)
    deadline = time.monotonic() + timeout_s
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with ThreadPoolExecutor(1) as pool, Progress(*columns, console=console) as progress:
        task = progress.add_task("replaying undispatched events into Redis", total=max(total, 1))

        def poll() -> dict[str, Any]:
            nonlocal total
            health: dict[str, Any] = poller.get("/health")
            left = int(health.get("undispatched") or 0)
            total = max(total, left, 1)
            progress.update(task, total=total, completed=total - left)
            return health

        future = pool.submit(poster.post, "/admin/recovery/redis", admin=True)
        while not wait([future], timeout=0.25).done:
            poll()
        result: dict[str, Any] = future.result()
        while result.get("error") is None and time.monotonic() < deadline:
            if result["remaining"] <= 0 and result["state"] == "connected":
                break
            time.sleep(0.25)
            health = poll()
            result["state"] = health.get("state", result["state"])
            result["remaining"] = int(health.get("undispatched") or 0)
        if result["remaining"] <= 0:
            progress.update(task, total=total, completed=total)
    return result
