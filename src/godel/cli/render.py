"""What the `godel` CLI prints: Rich renderings of the API's answers (status, events, dead
letters), the time, duration and count formats they share, and the one-line error.

Kept apart from the commands so `godel demo` and the commands draw the same things the
same way. Every view takes plain JSON as the API returns it. Times are UTC, written one
way everywhere (`2026-11-30 06:40:33 UTC`); durations as an operator says them (`19m 57s`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from godel.redaction import redact_text

# What the dashboard says while the link is not connected (a contract: operators grep it).
BANNER_DOWN = "Redis Connection Error"
STATE_STYLE = {"connected": "green", "fallback": "bold red", "recovering": "yellow"}
WORKER_STYLE = {"alive": "green", "silent": "bold yellow", "stopped": "dim"}

# soft_wrap: a path, a token or a URL must stay one line (scripts and tests cut lines).
console = Console(stderr=True, soft_wrap=True)  # progress, notes and errors
out = Console(highlight=False, soft_wrap=True)  # the answer itself


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line (never wrapped, markup escaped, URLs without passwords) and
    return the Exit to raise."""
    line = " ".join(redact_text(message).split())
    console.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


# -- numbers, times, words ----------------------------------------------------------------


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 worker`, `3 workers`, `0 events`."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def fmt_number(value: float) -> str:
    """At most two decimals, none when whole: 3.33333 -> 3.33, 10.0 -> 10, 0.5 -> 0.5."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def fmt_duration(seconds: float) -> str:
    """`0.12s`, `45s`, `19m 57s`, `3h 2m`, `2d 3h`: two units at most, none of them 0."""
    if seconds < 60:
        return f"{fmt_number(max(seconds, 0.0))}s"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    first = next(i for i, (n, _) in enumerate(units) if n)
    shown = [f"{n}{unit}" for n, unit in units[first : first + 2] if n]
    return " ".join(shown)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def fmt_time(epoch: float | None) -> str:
    """`2026-11-30 06:40:33 UTC` from an epoch time; `-` when there is none."""
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_age(since: float | None, now: float | None = None) -> str:
    """`2026-11-30 06:40:33 UTC (2m 5s ago)` from an epoch time."""
    if not since:
        return "-"
    age = max(0.0, (now or time.time()) - since)
    return f"{fmt_time(since)} ({fmt_duration(age if age >= 60 else int(age))} ago)"


def with_utc_times(row: dict[str, Any]) -> dict[str, Any]:
    """`row` plus `<key>_utc` (readable) beside each epoch `<key>_at`."""
    extra = {
        f"{key}_utc": fmt_time(value) if isinstance(value, int | float) else None
        for key, value in row.items()
        if key.endswith("_at")
    }
    return row | extra


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


# -- status -------------------------------------------------------------------------------


def banner(health: dict[str, Any]) -> Text:
    link = health.get("link") or {}
    state = str(link.get("state", health.get("state", "unknown")))
    if state == "connected":
        return Text(f"Redis connected since {fmt_age(link.get('since'))}", style="bold green")
    reason = link.get("reason") or "unknown"
    text = Text(f"{BANNER_DOWN}: ", style="bold red")
    text.append(f"{state} since {fmt_age(link.get('since'))}, reason {reason}", style="red")
    return text


def _memory_cell(memory: dict[str, Any] | None, connected: bool) -> str:
    """GET /health's `redis_memory` (what Godel last read from INFO)."""
    if not isinstance(memory, dict) or memory.get("used") is None:
        return "unknown"
    used, cap = float(memory["used"]), float(memory.get("max") or 0)
    text = fmt_bytes(used)
    text += f" of {fmt_bytes(cap)} ({used / cap:.0%})" if cap else " (no maxmemory)"
    if memory.get("policy_safe") is False:
        text += "; maxmemory-policy evicts keys (use noeviction)"
    if memory.get("aof_enabled") is False:
        text += "; AOF off"
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
        + f"; {plural(int(queues.get('workers', 0)), 'worker')}"
    )


def _replay_cell(replay: dict[str, Any]) -> str:
    last = (
        f"last replay {plural(int(replay.get('replayed', 0)), 'event')} in "
        f"{fmt_duration(float(replay.get('duration_s', 0)))} at {fmt_age(replay.get('at'))}"
        if replay.get("at")
        else "no replay yet"
    )
    return (
        f"{last}; replayed {replay.get('replayed_total', 0)} and reconciled "
        f"{replay.get('reconciled_total', 0)} since start"
    )


def status_view(health: dict[str, Any]) -> RenderableType:
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
    table.add_row("Redis memory", _memory_cell(health.get("redis_memory"), state == "connected"))
    table.add_row("Queues", _queues_cell(health.get("queues")))
    undispatched = health.get("undispatched")
    table.add_row(
        "Undispatched",
        "unknown"
        if undispatched is None
        else f"{plural(int(undispatched), 'event')} in the ledger, not in Redis",
    )
    table.add_row("Replay", _replay_cell(health.get("replay") or {}))
    events = health.get("events") or {}
    table.add_row("Ledger", ", ".join(f"{k} {v}" for k, v in sorted(events.items())) or "empty")
    table.add_row("Database", str(health.get("database", "-")))
    uptime = health.get("uptime_s")
    table.add_row("Uptime", "-" if uptime is None else fmt_duration(float(uptime)))
    return Group(banner(health), table)


def health_problems(health: dict[str, Any]) -> list[str]:
    """Why `godel status --check` fails: empty when the link is connected and the
    database ok."""
    link = health.get("link") or {}
    state = str(link.get("state", health.get("state", "unknown")))
    problems = []
    if state != "connected":
        reason = link.get("reason")
        problems.append(f"Redis link {state}" + (f" ({reason})" if reason else ""))
    database = str(health.get("database", "unknown"))
    if database != "ok":
        problems.append(f"database {database}")
    return problems


# -- events -------------------------------------------------------------------------------


def event_line(row: dict[str, Any]) -> str:
    """One ledger row as one line, for `godel events tail`. Fields are split on spaces by
    runbooks (`awk '{print $5}'` is `agent=`), so the time is one ISO 8601 word in UTC."""
    created = row.get("created_at")
    stamp = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else "-"
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


def event_view(event: dict[str, Any]) -> RenderableType:
    """`godel events get`: one event of the ledger, field by field."""
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    status = str(event.get("status", "?"))
    if event.get("worker"):
        status += f" (claimed by worker {event['worker']})"
    table.add_row("Event", f"{event.get('id')} (ledger #{event.get('seq', '?')})")
    table.add_row("Type", str(event.get("type", "?")))
    table.add_row("Agent", str(event.get("agent_id") or "-"))
    table.add_row("Status", status)
    table.add_row("Attempts", str(event.get("attempts", 0)))
    if event.get("last_error"):
        table.add_row("Last error", str(event["last_error"]))
    table.add_row("Lane", lane_text(event))
    if status == "retrying" and event.get("available_at"):
        table.add_row("Next attempt", fmt_time(event["available_at"]))
    table.add_row("Created", fmt_age(event.get("created_at")))
    table.add_row("Updated", fmt_age(event.get("updated_at")))
    table.add_row("Processed", fmt_age(event.get("processed_at")))
    if "payload" in event:
        table.add_row("Payload", Text(json.dumps(event["payload"], indent=2, sort_keys=True)))
    return table


def lane_text(event: dict[str, Any]) -> str:
    """Where an event went, truly: the lane of its last attempt (`lane`), else where it
    waits (`dispatched`: pushed onto Redis, or still only in the ledger)."""
    lane = event.get("lane")
    status = event.get("status")
    if lane:
        return {"processed": f"processed through {lane}"}.get(str(status), f"last tried via {lane}")
    if status in ("processed", "purged"):
        return "-"  # processed before Godel recorded lanes
    return "waiting in redis" if event.get("dispatched") else "waiting in the ledger (undispatched)"


def _next_attempt(event: dict[str, Any], now: float) -> str:
    at = event.get("available_at")
    if event.get("status") != "retrying" or not at:
        return "-"
    left = int(at - now)
    return f"{fmt_time(at)} (in {fmt_duration(left)})" if left > 0 else f"{fmt_time(at)} (due)"


def events_view(
    events: list[dict[str, Any]], status: str | None, total: int | None, more: str | None
) -> RenderableType:
    """`godel events list`: "N shown (of TOTAL status)", the rows, the next page's command."""
    what = f"{status.capitalize()} events" if status else "Events"
    title = f"{what}: {len(events)} shown" + (f" of {total}" if total is not None else "")
    parts: list[RenderableType] = [Text(title, style="bold")]
    if events:
        now = time.time()
        table = Table()
        for column in ("id", "type", "status", "attempts", "next attempt", "last error"):
            table.add_column(column, overflow="fold")
        for ev in events:
            table.add_row(
                str(ev.get("id")),
                str(ev.get("type")),
                str(ev.get("status")),
                str(ev.get("attempts", 0)),
                _next_attempt(ev, now),
                str(ev.get("last_error") or "-"),
            )
        parts.append(table)
    if more:
        parts.append(Text(f"more: {more}"))
    return Group(*parts)


# -- workers ------------------------------------------------------------------------------


def _held(worker: dict[str, Any]) -> str:
    redis = worker.get("held_redis")
    ledger = int(worker.get("held_ledger") or 0)
    parts = ["redis ?" if redis is None else f"redis {redis}", f"ledger {ledger}"]
    return ", ".join(parts)


def workers_view(body: dict[str, Any]) -> RenderableType:
    """`godel workers`: "N alive of M", then one row per worker."""
    rows: list[dict[str, Any]] = body.get("workers") or []
    alive = int(body.get("alive", 0))
    title = Text(f"Workers: {alive} alive of {plural(len(rows), 'worker')} listed", style="bold")
    if not rows:
        return title
    now = time.time()
    table = Table()
    # A name is <host>-<pid>-<index>: host and pid are in it (and in --json).
    for column in ("name", "status", "started", "last heartbeat", "holds"):
        table.add_column(column, overflow="fold")
    table.add_column("processed", justify="right")
    for w in rows:
        beat = w.get("heartbeat_at")
        table.add_row(
            str(w.get("name")),
            Text(str(w.get("status")), style=WORKER_STYLE.get(str(w.get("status")), "")),
            fmt_age(w.get("started_at"), now),
            "-" if not beat else f"{fmt_duration(max(0, int(now - beat)))} ago",
            _held(w),
            "-" if w.get("processed") is None else str(w["processed"]),
        )
    note = Text("holds: ids in its Redis processing list (? while Redis is away), ledger claims")
    return Group(title, table, note)


# -- dead letters -------------------------------------------------------------------------


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


def dead_events_view(event_type: str, page: dict[str, Any]) -> RenderableType:
    """A page of GET /admin/dead/events: "N shown of TOTAL", the rows, the next page's cursor."""
    events: list[dict[str, Any]] = page.get("events") or []
    total = page.get("total", len(events))
    title = Text(f"Dead letters of type {event_type}: {len(events)} shown of {total}", style="bold")
    if not events:
        return title
    table = Table()
    for column in ("id", "agent", "attempts", "died", "last error"):
        table.add_column(column, overflow="fold")
    for ev in events:
        table.add_row(
            str(ev.get("id")),
            str(ev.get("agent_id") or "-"),
            str(ev.get("attempts", "")),
            fmt_time(ev.get("died_at", ev.get("updated_at"))),
            str(ev.get("last_error") or "-"),
        )
    if page.get("next_cursor") is None:
        return Group(title, table)
    more = Text(f"more: godel dead list --type {event_type} --cursor {page['next_cursor']}")
    return Group(title, table, more)
