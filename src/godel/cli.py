"""The `godel` command."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console

from godel.config import Settings, load_settings
from godel.errors import GodelError

app = typer.Typer(
    help="Godel: a lossless event pipeline for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False)
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
        console.print(
            "[yellow]godel: no redis-server installed and GODEL_REDIS_URL unset: "
            "running in fallback mode (SQL ledger only)[/yellow]"
        )
        redis_url = "redis://127.0.0.1:1/0"
    if settings.admin_token is None:
        token = secrets.token_urlsafe(24)
        settings = settings.model_copy(update={"admin_token": SecretStr(token)})
        console.print(f"godel: admin token (shown once): {token}")
    console.print(f"godel: ledger {settings.effective_database_url}; API on http://{host}:{port}")
    try:
        uvicorn.run(
            create_app(settings, redis_url=redis_url, workers=workers),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if embedded is not None:
            embedded.stop()


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Claim loops in this process.", min=1)] = 1,
    burst: Annotated[bool, typer.Option(help="Exit once the ledger has nothing open.")] = False,
) -> None:
    """Run workers on their own (no API)."""
    settings = settings_or_exit()
    setup_logging(settings.log_level)
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
        loop.add_signal_handler(sig, rt._stop.set)
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


def main() -> None:
    if os.environ.get("GODEL_DEBUG_TRACEBACK") is None:
        sys.tracebacklimit = 1000
    app()
