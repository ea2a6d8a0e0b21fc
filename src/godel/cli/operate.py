"""The operator's commands: they talk to a running Godel API over HTTP (status, events,
dead letters, recovery, the cache). `godel.cli.main` puts them on the app.

Nothing here imports the core: these commands start fast and run anywhere the API is
reachable. The HTTP client (and httpx) is imported when a command connects; a test hands
the client its transport through the Typer context (`CliRunner.invoke(..., obj=...)`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from godel.cli.render import console, echo_json, fail, fmt_duration, out, plural

if TYPE_CHECKING:
    from godel.cli.client import ClientError, GodelClient

DEFAULT_URL = "http://127.0.0.1:8080"
UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="GODEL_URL",
        help="Base URL of the Godel API; `localhost:8080` means http://localhost:8080.",
    ),
]
# The admin token first (operators' shells export it, as the runbooks do); GODEL_API_KEY is
# for a key with fewer scopes (`read` for status and tail, `publish` for events publish).
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=["GODEL_ADMIN_TOKEN", "GODEL_API_KEY"],
        help="Bearer credential: the admin token or an API key.",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")]
TypeOption = Annotated[str | None, typer.Option("--type", help="Only this event type.")]
EventId = Annotated[str, typer.Argument(metavar="ID", help="The event's id.")]


@contextmanager
def connect(
    ctx: typer.Context, url: str, token: str | None, timeout_s: float = 10.0
) -> Iterator[GodelClient]:
    """A client whose failures end the command with one line and exit code 1."""
    import httpx

    from godel.cli.client import ClientError, GodelClient

    transport = ctx.find_object(httpx.BaseTransport)
    try:
        with GodelClient(url, token, timeout_s, transport) as client:
            yield client
    except ClientError as err:
        raise fail(str(err)) from None


def status(
    ctx: typer.Context,
    url: UrlOption = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print GET /health as JSON.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Probe: exit 1 (saying why, on one line) unless the Redis link is "
            "connected and the database ok.",
        ),
    ] = False,
    token: TokenOption = None,
) -> None:
    """Link state, queue depths, undispatched backlog, replay progress and Redis memory."""
    from godel.cli.render import health_problems, status_view

    with connect(ctx, url, token) as client:
        health = client.get("/health")
    if as_json:
        echo_json(health)
    problems = health_problems(health)
    if check:
        if problems:
            raise fail("not healthy: " + "; ".join(problems))
        if not as_json:
            out.print("ok: Redis link connected, database ok")
        return
    if not as_json:
        out.print(status_view(health))


def events_publish(
    ctx: typer.Context,
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Event type, e.g. agent.status")
    ],
    payload: Annotated[str, typer.Option(help="The payload: a JSON object.")] = "{}",
    agent_id: Annotated[str | None, typer.Option(help="The agent it concerns.")] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Idempotency key (default: server-made).")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Publish one event; prints its id once the ledger has committed it."""
    try:
        body = json.loads(payload)
    except ValueError as err:
        raise fail(f"--payload is not valid JSON: {err}", 2) from None
    if not isinstance(body, dict):
        raise fail('--payload must be a JSON object, e.g. \'{"status": "busy"}\'', 2)
    event: dict[str, Any] = {"type": event_type, "payload": body}
    if agent_id is not None:
        event["agent_id"] = agent_id
    if event_id is not None:
        event["id"] = event_id
    with connect(ctx, url, token) as client:
        ack = client.post("/api/v1/events", event)
    ident = ack["ids"][0]
    if ident in ack.get("duplicates", []):
        out.print(f"duplicate {ident}: already accepted earlier, not queued again")
    else:
        out.print(f"accepted {ident} (mode {ack['mode']})")


def events_get(
    ctx: typer.Context,
    event_id: EventId,
    as_json: JsonFlag = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """One event of the ledger: status, attempts, last error, times and payload."""
    from godel.cli.render import event_view, with_utc_times

    with connect(ctx, url, token) as client:
        event = client.get(f"/api/v1/events/{quote(event_id, safe='')}")
    if as_json:
        echo_json(with_utc_times(event))
    else:
        out.print(event_view(event))


def events_tail(
    ctx: typer.Context,
    since_start: Annotated[
        bool, typer.Option("--since-start", help="Start from the first event in the ledger.")
    ] = False,
    cursor: Annotated[
        int | None, typer.Option(help="Start after this ledger sequence number.", min=0)
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Exit after this many events.", min=1)] = None,
    retry_for: Annotated[
        float,
        typer.Option(
            help="When the stream breaks (the API restarts), reconnect after the last event "
            "shown for up to this many seconds (0: exit at once).",
            min=0,
        ),
    ] = 60,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Follow new events as the server streams them, one line each (Ctrl-C to stop)."""
    from godel.cli.render import event_line, link_line

    def reconnecting(err: ClientError) -> None:
        console.print(f"reconnecting… ({err})", highlight=False)

    start = 0 if since_start else cursor
    shown = 0
    with connect(ctx, url, token) as client:
        stream = client.follow(
            "/api/v1/stream", cursor=start, retry_for_s=retry_for, on_retry=reconnecting
        )
        for message in stream:
            if message.name == "link" and isinstance(message.data, dict):
                console.print(link_line(message.data), highlight=False)
            if message.name != "events":
                continue
            data = message.data
            rows = data.get("events", []) if isinstance(data, dict) else data
            for row in rows if isinstance(rows, list) else []:
                typer.echo(event_line(row))
                shown += 1
                if limit is not None and shown >= limit:
                    return


def dead_list(
    ctx: typer.Context,
    event_type: TypeOption = None,
    limit: Annotated[int, typer.Option(help="At most this many events.", min=1)] = 50,
    cursor: Annotated[
        int | None, typer.Option(help="Start after this ledger sequence number (next page).")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Dead-letter counts per type, or the dead events of one --type (a page at a time)."""
    from godel.cli.render import dead_events_view, dead_types_view

    with connect(ctx, url, token) as client:
        if event_type is None:
            out.print(dead_types_view(client.get("/admin/dead", admin=True)))
            return
        page = client.get(
            "/admin/dead/events", admin=True, type=event_type, limit=limit, cursor=cursor
        )
    out.print(dead_events_view(event_type, page))


def dead_show(
    ctx: typer.Context,
    event_id: EventId,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """One dead event as JSON: payload, error, attempts, and each time in UTC beside it."""
    from godel.cli.client import ClientError
    from godel.cli.render import with_utc_times

    path_id = quote(event_id, safe="")
    with connect(ctx, url, token) as client:
        try:
            dead = client.get(f"/admin/dead/events/{path_id}", admin=True)
        except ClientError as err:
            if err.status != 404:
                raise
            # Not dead (or no such event): say what it is instead.
            event = client.get(f"/api/v1/events/{path_id}")
            raise fail(f"event {event_id} is not dead: its status is {event['status']}") from None
    echo_json(with_utc_times(dead))
    if dead.get("last_traceback"):  # readable, on stderr: stdout stays one JSON document
        console.print(f"where it failed last:\n{dead['last_traceback']}", markup=False)


OneOption = Annotated[
    str | None, typer.Option("--id", help="Only this one dead event.", show_default=False)
]


def _scope(event_type: str | None, event_id: str | None) -> str:
    if event_id:
        return f" ({event_id})"
    return f" of type {event_type}" if event_type else ""


def dead_replay(
    ctx: typer.Context,
    event_type: TypeOption = None,
    event_id: OneOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Queue dead events again (all types, one --type, or one --id), with fresh attempts."""
    with connect(ctx, url, token) as client:
        done = client.post("/admin/dead/replay", admin=True, type=event_type, id=event_id)
    out.print(f"replayed {plural(done['replayed'], 'dead event')}{_scope(event_type, event_id)}")


def dead_purge(
    ctx: typer.Context,
    event_type: TypeOption = None,
    event_id: OneOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Delete dead events for good (all types, one --type, or one --id). Asks first unless
    --yes."""
    scope = _scope(event_type, event_id)
    with connect(ctx, url, token) as client:
        if event_id is not None:
            done = client.post("/admin/dead/purge", admin=True, id=event_id)
            out.print(f"purged {plural(done['purged'], 'dead event')}{scope}")
            return
        counts = client.get("/admin/dead", admin=True)
        count = (counts.get("types") or {}).get(event_type, 0) if event_type else counts["total"]
        if not count:
            out.print(f"no dead events{scope}: nothing to purge")
            return
        what = plural(count, "dead event") + scope
        question = f"Purge {'ALL ' if not event_type else ''}{what}? They cannot be replayed"
        if not yes and not typer.confirm(question + " afterwards"):
            raise fail("purge cancelled", 1)
        done = client.post("/admin/dead/purge", admin=True, type=event_type)
    out.print(f"purged {plural(done['purged'], 'dead event')}{scope}")


def recover(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.", min=1)] = 300,
    as_json: JsonFlag = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Force Redis recovery now and show the replay of the undispatched backlog."""
    from godel.cli.recover import run_recovery

    with connect(ctx, url, token, timeout) as poller, connect(ctx, url, token, timeout) as poster:
        result = run_recovery(poller, poster, timeout, console)
    failed = bool(result.get("error")) or result["state"] != "connected"
    if as_json:
        echo_json(result)
    elif failed:
        raise fail(f"Redis is not usable yet ({result['state']}): {result.get('error')}")
    else:
        out.print(
            f"link connected; replayed {plural(result['replayed'], 'event')} in "
            f"{fmt_duration(result['duration_s'])}; undispatched backlog {result['remaining']}"
        )
    if failed:
        raise typer.Exit(1)


def cache_warm(ctx: typer.Context, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Load every agent from the database into the Redis cache."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with (
        connect(ctx, url, token, timeout_s=300) as client,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        progress.add_task("warming the Redis cache from the database", total=None)
        done = client.post("/admin/cache/warm", admin=True)
    warmed = plural(done["warmed"], "agent")
    out.print(f"warmed {warmed} into the Redis cache in {fmt_duration(done['duration_s'])}")
