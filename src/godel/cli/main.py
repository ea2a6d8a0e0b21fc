"""The `godel` command: the Typer app, the commands that run Godel's processes (serve,
worker, db upgrade, demo) and the operator's commands from `godel.cli.operate`.

Importing this module imports neither SQLAlchemy nor redis (nor the core that uses them):
`godel --help` and `godel status` start in a fraction of a second. The commands that run
the core import it when they run.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandFunctionType

from godel.cli import keys, operate, triage
from godel.cli.render import console, fail
from godel.errors import GodelError
from godel.redaction import redact_text, redact_url

if TYPE_CHECKING:
    from fastapi import FastAPI

    from godel.config import Settings

log = logging.getLogger("godel.cli")
PLUGINS_NOTE = (
    "Handler modules (GODEL_HANDLERS) are imported with the current directory first on "
    "the module path: GODEL_HANDLERS=myhandlers finds ./myhandlers.py."
)


# -- the app ------------------------------------------------------------------------------


def _flags_as_flags(params: list[Any]) -> list[Any]:
    # Typer shows the type of every option, so a flag reads `--json <bool>` as if it took
    # a value. An empty metavar shows it as what it is: `--json`.
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


class App(typer.Typer):
    """A Typer app whose groups and commands show boolean flags as flags."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=Group, no_args_is_help=True, pretty_exceptions_enable=False, **kwargs)

    def command(
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, **{"cls": Command, **kwargs})


app = App(help="Godel: a lossless event pipeline for AI agents.")
db_app = App(help="Database schema.")
events_app = App(help="Publish, look up and follow events.")
dead_app = App(help="Dead letters: inspect, replay, purge.")
cache_app = App(help="The Redis cache.")
keys_app = App(help="API keys: create (the secret is shown once), list, revoke.")
RUN, OPERATE = "Run Godel", "Operate a running API"
app.add_typer(db_app, name="db", rich_help_panel=RUN)
app.add_typer(events_app, name="events", rich_help_panel=OPERATE)
app.add_typer(dead_app, name="dead", rich_help_panel=OPERATE)
app.add_typer(cache_app, name="cache", rich_help_panel=OPERATE)
app.add_typer(keys_app, name="keys", rich_help_panel=OPERATE)
app.command(rich_help_panel=OPERATE)(operate.status)
app.command(rich_help_panel=OPERATE)(operate.recover)
app.command(rich_help_panel=OPERATE)(triage.workers)
events_app.command("publish")(operate.events_publish)
events_app.command("get")(operate.events_get)
events_app.command("list")(triage.events_list)
events_app.command("tail")(operate.events_tail)
dead_app.command("list")(operate.dead_list)
dead_app.command("show")(operate.dead_show)
dead_app.command("replay")(operate.dead_replay)
dead_app.command("purge")(operate.dead_purge)
cache_app.command("warm")(operate.cache_warm)
keys_app.command("create")(keys.keys_create)
keys_app.command("list")(keys.keys_list)
keys_app.command("revoke")(keys.keys_revoke)


def show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("godel")
        except PackageNotFoundError:  # run from a source tree, not installed
            from godel import __version__ as number
        typer.echo(f"godel {number}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Godel: a lossless event pipeline for AI agents."""


def main() -> None:
    app()


# -- running Godel ------------------------------------------------------------------------


def settings_or_exit() -> Settings:
    from godel.config import load_settings

    try:
        return load_settings()
    except GodelError as err:
        raise fail(str(err), 2) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def import_from_working_directory() -> None:
    # The console script's sys.path starts with its own bin directory, not the directory
    # it runs in, so a plugin module next to the operator would not be found.
    cwd = os.getcwd()
    if sys.path[:1] != [cwd]:
        sys.path.insert(0, cwd)


def describe(err: BaseException, url: str | None = None) -> str:
    """One line for a failure at start: the driver's own message where there is one
    (SQLAlchemy wraps it in `orig`, with the SQL and a link), never a password (of `url`,
    the database's, or of any URL in the message)."""
    cause = getattr(err, "orig", None) or err
    text = " ".join(str(cause).split()) or type(cause).__name__
    if not isinstance(cause, GodelError):
        text = f"{type(cause).__name__}: {text}"
    return redact_text(text, url)


class StartupGuard:
    """Wraps the app's lifespan so that a failure while starting becomes one line.

    uvicorn reports a failed lifespan start-up as a whole traceback on its error log, then
    exits (SystemExit 3). The guard keeps the error for the command to report, and holds
    back uvicorn's error records from then on (`log_filter`)."""

    def __init__(self, api: FastAPI) -> None:
        self.error: BaseException | None = None
        self._inner = api.router.lifespan_context
        api.router.lifespan_context = self._lifespan

    @asynccontextmanager
    async def _lifespan(self, api: Any) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._inner(api))
            except Exception as err:
                self.error = err
                raise
            yield

    def log_filter(self, record: logging.LogRecord) -> bool:
        return self.error is None or record.levelno < logging.ERROR


@app.command(epilog=PLUGINS_NOTE, rich_help_panel=RUN)
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=1, max=65535)] = 8080,
    workers: Annotated[
        int | None, typer.Option(help="Workers in this process (default GODEL_WORKERS).", min=0)
    ] = None,
) -> None:
    """Run the API (and its workers) until interrupted."""
    from godel.cli.processes import EmbeddedRedis

    settings = settings_or_exit()
    setup_logging(settings.log_level)
    import_from_working_directory()
    embedded: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if redis_url is None and settings.embedded_redis and EmbeddedRedis.available():
        embedded = EmbeddedRedis(settings.data_dir)
        try:
            embedded.start()
        except GodelError as err:
            raise fail(f"embedded redis-server: {err}") from None
        redis_url = embedded.url
        console.print(
            f"godel: embedded redis-server on {redis_url} (data in {embedded.dir}; "
            f"its PID is in {embedded.pid_file})",
            markup=False,
        )
    elif redis_url is None:
        redis_url = settings.effective_redis_url
        console.print(
            "[yellow]godel: no redis-server installed and GODEL_REDIS_URL unset: running in "
            f"fallback mode (SQL ledger only) until a Redis answers at {redis_url}[/yellow]"
        )
    if settings.admin_token is None:
        from pydantic import SecretStr

        token = secrets.token_urlsafe(24)
        settings = settings.model_copy(update={"admin_token": SecretStr(token)})
        console.print(f"godel: admin token (shown once): {token}")
    ledger = redact_url(settings.effective_database_url)
    console.print(f"godel: ledger {ledger}; API on http://{host}:{port}", markup=False)
    try:
        error = run_api(settings, host, port, redis_url, workers)
    finally:
        if embedded is not None:
            embedded.stop()
    if error is not None:
        log.debug("start-up failure", exc_info=error)
        reason = describe(error, settings.effective_database_url)
        raise fail(f"godel serve could not start: {reason}")


def run_api(
    settings: Settings, host: str, port: int, redis_url: str, workers: int | None
) -> BaseException | None:
    """Serve until interrupted; the error that stopped the start-up, if one did."""
    import uvicorn

    from godel.api import create_app
    from godel.api.server import ApiServer, protocol_with_header_timeout

    try:
        api = create_app(settings, redis_url=redis_url, workers=workers, settle=True)
    except GodelError as err:
        return err
    guard = StartupGuard(api)
    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
        # Bounds on what a client can hold: headers (and then the body, api.limits) must
        # arrive in time, idle connections close, and past GODEL_MAX_CONNECTIONS new
        # requests get a 503 at once instead of a queue.
        http=protocol_with_header_timeout(settings.header_timeout_s),
        timeout_keep_alive=5,
        limit_concurrency=settings.max_connections,
        backlog=2048,
        h11_max_incomplete_event_size=16 * 1024,
    )
    logging.getLogger("uvicorn.error").addFilter(guard.log_filter)
    try:
        ApiServer(config, api).run()
    except SystemExit:
        if guard.error is None:
            raise  # uvicorn's own exit, e.g. the port is taken (it said so on one line)
    return guard.error


@app.command(epilog=PLUGINS_NOTE, rich_help_panel=RUN)
def worker(
    concurrency: Annotated[int, typer.Option(help="Claim loops in this process.", min=1)] = 1,
    burst: Annotated[
        bool, typer.Option("--burst", help="Exit once the ledger has nothing open.")
    ] = False,
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
    import_from_working_directory()
    if metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port)
        except OSError as err:
            raise fail(f"cannot serve metrics on port {metrics_port}: {err}") from None
    import asyncio

    try:
        asyncio.run(_worker(settings, concurrency, burst))
    except GodelError as err:
        raise fail(str(err)) from None


class StartFailed(GodelError):
    """The core would not start; the message is one line (see `describe`)."""


async def _worker(settings: Settings, concurrency: int, burst: bool) -> None:
    import asyncio

    from godel.pipeline.worker import worker_name
    from godel.runtime import Runtime, settle_heap

    rt = Runtime(settings)
    try:
        await rt.start(workers=0)
    except Exception as err:
        log.debug("start-up failure", exc_info=err)
        reason = describe(err, settings.effective_database_url)
        raise StartFailed(f"godel worker could not start: {reason}") from None
    settle_heap()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, rt.request_stop)
    tasks = [rt.add_worker(worker_name(i), burst=burst) for i in range(concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:
        await rt.stop()


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the ledger's migrations (GODEL_DATABASE_URL)."""
    from godel.store.database import Database
    from godel.store.migrate import current, upgrade

    settings = settings_or_exit()
    url = settings.effective_database_url
    try:
        db = Database(url)
        try:
            upgrade(db, revision)
            console.print(f"database at revision {current(db)}")
        finally:
            db.close()
    except (GodelError, OSError) as err:
        log.debug("migration failure", exc_info=err)
        reason = describe(err, url)
        raise fail(f"cannot migrate the ledger at {redact_url(url)}: {reason}") from None


@app.command(rich_help_panel=RUN)
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
    from godel.cli.demo import DemoOptions, run_demo
    from godel.cli.render import out

    options = DemoOptions(duration, rate, cycle, down if down is not None else cycle / 3, port)
    try:
        verdict = run_demo(options, out)
    except GodelError as err:
        raise fail(str(err)) from None
    if not verdict.ok:
        raise typer.Exit(1)
