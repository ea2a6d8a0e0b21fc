"""Triage commands: list the ledger's events by status (what is retrying, when it runs
next, why it failed) and the fleet's workers. Like `godel.cli.operate`, they talk to a
running API over HTTP and import nothing of the core."""

from __future__ import annotations

from typing import Annotated

import typer

from godel.cli.operate import DEFAULT_URL, JsonFlag, TokenOption, TypeOption, UrlOption, connect
from godel.cli.render import echo_json, out, with_utc_times

STATUSES = ("queued", "processing", "processed", "retrying", "dead", "purged")


def _check_status(value: str | None) -> str | None:
    if value is not None and value not in STATUSES:
        raise typer.BadParameter(f"must be one of {', '.join(STATUSES)}")
    return value


def events_list(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            help=f"Only events with this status ({', '.join(STATUSES)}).",
            callback=_check_status,
        ),
    ] = None,
    event_type: TypeOption = None,
    agent_id: Annotated[str | None, typer.Option(help="Only this agent's events.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.", min=1, max=1000)] = 50,
    cursor: Annotated[
        int | None, typer.Option(help="Start after this ledger sequence number (next page).")
    ] = None,
    as_json: JsonFlag = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Events of the ledger, oldest first, a page at a time: `--status retrying` shows when
    each runs next and why it failed last."""
    from godel.cli.render import events_view

    with connect(ctx, url, token) as client:
        page = client.get(
            "/api/v1/events",
            status=status,
            type=event_type,
            agent_id=agent_id,
            limit=limit,
            cursor=cursor,
        )
        # How many there are in all, for one status: the ledger's counts (GET /health).
        total = client.get("/health").get("events", {}).get(status, 0) if status else None
    if as_json:
        echo_json({**page, "events": [with_utc_times(e) for e in page["events"]]})
        return
    more = _next_command(status, event_type, agent_id, limit, page.get("next_cursor"))
    out.print(events_view(page["events"], status, total, more))


def _next_command(
    status: str | None,
    event_type: str | None,
    agent_id: str | None,
    limit: int,
    next_cursor: int | None,
) -> str | None:
    if next_cursor is None:
        return None
    args = ["godel events list"]
    for flag, value in (("--status", status), ("--type", event_type), ("--agent-id", agent_id)):
        if value is not None:
            args.append(f"{flag} {value}")
    if limit != 50:
        args.append(f"--limit {limit}")
    return " ".join([*args, f"--cursor {next_cursor}"])


def workers(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Every worker of the fleet: alive or not, since when, last heartbeat, what it holds
    (Redis processing list, ledger claims) and how many events it has processed."""
    from godel.cli.render import workers_view

    with connect(ctx, url, token) as client:
        body = client.get("/api/v1/workers")
    if as_json:
        echo_json({**body, "workers": [with_utc_times(w) for w in body["workers"]]})
    else:
        out.print(workers_view(body))
