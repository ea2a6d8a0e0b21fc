"""The `godel` command."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import quote

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape

from godel.client import DEFAULT_URL, ClientError, GodelClient
from godel.config import Settings, load_settings
from godel.errors import GodelError

app = typer.Typer(
    help="Godel: a lossless event pipeline for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
events_app = typer.Typer(help="Publish and follow events.", no_args_is_help=True)
dead_app = typer.Typer(help="Dead letters: inspect, replay, purge.", no_args_is_help=True)
cache_app = typer.Typer(help="The Redis cache.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")
app.add_typer(dead_app, name="dead")
app.add_typer(cache_app, name="cache")
console = Console(stderr=True, soft_wrap=True)  # a path or a token must stay one line


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line (never wrapped, markup escaped) and return the Exit to raise."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except GodelError as err:
        raise fail(str(err), 2) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=1, max=65535)] = 8080,
    workers: Annotated[
        int | None, typer.Option(help="Workers in this process (default GODEL_WORKERS).", min=0)
    ] = None,
) -> None:
    """Run the API (and its workers) until interrupted."""
    import uvicorn

    from godel.api import create_app
    from godel.api.server import ApiServer
    from godel.embedded import EmbeddedRedis

    settings = settings_or_exit()
    setup_logging(settings.log_level)
    embedded: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if redis_url is None and settings.embedded_redis and EmbeddedRedis.available():
        embedded = EmbeddedRedis(settings.data_dir)
        try:
            embedded.start()
        except GodelError as err:
            raise fail(f"embedded redis-server: {err}") from None
        redis_url = embedded.url
        console.print(f"godel: embedded redis-server on {redis_url} (data in {embedded.dir})")
    elif redis_url is None:
        redis_url = settings.effective_redis_url
        console.print(
            "[yellow]godel: no redis-server installed and GODEL_REDIS_URL unset: running in "
            f"fallback mode (SQL ledger only) until a Redis answers at {redis_url}[/yellow]"
        )
    if settings.admin_token is None:
        token = secrets.token_urlsafe(24)
        settings = settings.model_copy(update={"admin_token": SecretStr(token)})
        console.print(f"godel: admin token (shown once): {token}")
    console.print(f"godel: ledger {settings.effective_database_url}; API on http://{host}:{port}")
    try:
        api = create_app(settings, redis_url=redis_url, workers=workers)
        config = uvicorn.Config(
            api,
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=10,
        )
        ApiServer(config, api).run()
    finally:
        if embedded is not None:
            embedded.stop()


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Claim loops in this process.", min=1)] = 1,
    burst: Annotated[bool, typer.Option(help="Exit once the ledger has nothing open.")] = False,
    metrics_port: Annotated[
        int,
        typer.Option(
            help="Serve /metrics on this port (0: off).",
            envvar="GODEL_WORKER_METRICS_PORT",
            min=0,
            max=65535,
        ),
    ] = 0,
) -> None:
    """Run workers on their own (no API)."""
    settings = settings_or_exit()
    setup_logging(settings.log_level)
    if metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port)
        except OSError as err:
            raise fail(f"cannot serve metrics on port {metrics_port}: {err}") from None
    try:
        asyncio.run(_worker(settings, concurrency, burst))
    except GodelError as err:
        raise fail(str(err)) from None


async def _worker(settings: Settings, concurrency: int, burst: bool) -> None:
    from godel.runtime import Runtime
    from godel.worker import worker_name

    rt = Runtime(settings)
    await rt.start(workers=0)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, rt.request_stop)
    tasks = [rt.add_worker(worker_name(i), burst=burst) for i in range(concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:
        await rt.stop()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the ledger's migrations."""
    from godel.db import Database
    from godel.migrate import current, upgrade

    settings = settings_or_exit()
    db = Database(settings.effective_database_url)
    try:
        upgrade(db, revision)
        console.print(f"database at revision {current(db)}")
    except GodelError as err:
        raise fail(str(err)) from None
    finally:
        db.close()


# -- operator commands: they talk to a running server -------------------------------------

UrlOption = Annotated[
    str, typer.Option("--url", envvar="GODEL_URL", help="Base URL of the Godel API.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="GODEL_ADMIN_TOKEN", help="Admin bearer token.", show_default=False
    ),
]
out = Console(highlight=False)


@contextmanager
def connect(url: str, token: str | None = None, timeout_s: float = 10.0) -> Iterator[GodelClient]:
    """A client whose failures end the command with one line and exit code 1."""
    try:
        with GodelClient(url, token, timeout_s) as client:
            yield client
    except ClientError as err:
        raise fail(str(err)) from None


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


@app.command()
def status(
    url: UrlOption = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print GET /health as JSON.")] = False,
    token: TokenOption = None,
) -> None:
    """Link state, queue depths, undispatched backlog, replay progress and Redis memory."""
    from godel.views import redis_memory, status_view

    with connect(url, token) as client:
        health = client.get("/health")
        if as_json:
            echo_json(health)
            return
        memory = redis_memory(client.metrics_text())
    out.print(status_view(health, memory))


@events_app.command("publish")
def events_publish(
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
    with connect(url, token) as client:
        ack = client.post("/api/v1/events", event)
    ident = ack["ids"][0]
    if ident in ack.get("duplicates", []):
        out.print(f"duplicate {ident}: already accepted earlier, not queued again")
    else:
        out.print(f"accepted {ident} (mode {ack['mode']})")


@events_app.command("tail")
def events_tail(
    since_start: Annotated[
        bool, typer.Option("--since-start", help="Start from the first event in the ledger.")
    ] = False,
    cursor: Annotated[
        int | None, typer.Option(help="Start after this ledger sequence number.", min=0)
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Exit after this many events.", min=1)] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Follow new events as the server streams them, one line each (Ctrl-C to stop)."""
    from godel.views import event_line, link_line

    start = 0 if since_start else cursor
    shown = 0
    with connect(url, token) as client:
        for message in client.stream("/api/v1/stream", cursor=start):
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


TypeOption = Annotated[str | None, typer.Option("--type", help="Only this event type.")]


@dead_app.command("list")
def dead_list(
    event_type: TypeOption = None,
    limit: Annotated[int, typer.Option(help="At most this many events.", min=1)] = 50,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Dead-letter counts per type, or the dead events of one --type."""
    from godel.views import dead_events_view, dead_types_view

    with connect(url, token) as client:
        if event_type is None:
            out.print(dead_types_view(client.get("/admin/dead", admin=True)))
            return
        page = client.get("/admin/dead/events", admin=True, type=event_type, limit=limit)
    out.print(dead_events_view(event_type, page.get("events", [])))


@dead_app.command("show")
def dead_show(
    event_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """One dead event as JSON: payload, error, attempts."""
    with connect(url, token) as client:
        echo_json(client.get(f"/admin/dead/events/{quote(event_id, safe='')}", admin=True))


@dead_app.command("replay")
def dead_replay(
    event_type: TypeOption = None, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Queue dead events again (all types, or one --type), with fresh attempts."""
    with connect(url, token) as client:
        done = client.post("/admin/dead/replay", admin=True, type=event_type)
    scope = f" of type {event_type}" if event_type else ""
    out.print(f"replayed {done['replayed']} dead events{scope}")


@dead_app.command("purge")
def dead_purge(
    event_type: TypeOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Delete dead events for good (all types, or one --type). Asks first unless --yes."""
    what = f"dead events of type {event_type}" if event_type else "ALL dead events"
    if not yes and not typer.confirm(f"Purge {what}? They cannot be replayed afterwards"):
        raise fail("purge cancelled", 1)
    with connect(url, token) as client:
        done = client.post("/admin/dead/purge", admin=True, type=event_type)
    out.print(f"purged {done['purged']} {what.removeprefix('ALL ')}")


@app.command()
def recover(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.", min=1)] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Force Redis recovery now and show the replay of the undispatched backlog."""
    from godel.views import run_recovery

    with connect(url, token, timeout) as poller, connect(url, token, timeout) as poster:
        result = run_recovery(poller, poster, timeout, console)
    if as_json:
        echo_json(result)
    elif result.get("error") or result["state"] != "connected":
        raise fail(f"Redis is not usable yet ({result['state']}): {result.get('error')}")
    else:
        out.print(
            f"link connected; replayed {result['replayed']} events in {result['duration_s']}s; "
            f"undispatched backlog {result['remaining']}"
        )
    if result.get("error") or result["state"] != "connected":
        raise typer.Exit(1)


@cache_app.command("warm")
def cache_warm(url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Load every agent from the database into the Redis cache."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with (
        connect(url, token, timeout_s=300) as client,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        progress.add_task("warming the Redis cache from the database", total=None)
        done = client.post("/admin/cache/warm", admin=True)
    out.print(f"warmed {done['warmed']} agents into the Redis cache in {done['duration_s']}s")


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=5)] = 300,
    rate: Annotated[float, typer.Option(help="Events per second.", min=1, max=2000)] = 50,
    cycle: Annotated[float, typer.Option(help="Seconds between Redis kills.", min=2)] = 15,
    down: Annotated[
        float | None, typer.Option(help="Seconds Redis stays dead (default cycle/3).", min=0.5)
    ] = None,
    port: Annotated[int, typer.Option(help="API port (0: a free one).", min=0)] = 0,
) -> None:
    """The tour: a private stack, a steady stream of events, and Redis killed on a timer."""
    from godel.demo import DemoOptions, run_demo

    options = DemoOptions(duration, rate, cycle, down if down is not None else cycle / 3, port)
    try:
        verdict = run_demo(options, out)
    except GodelError as err:
        raise fail(str(err)) from None
    if not verdict.ok:
        raise typer.Exit(1)


def main() -> None:
    app()
