"""Fixtures backed by real servers (see tests/servers.py).

- redis_server (session): one redis-server for the run; redis_url (function) empties it first.
- fresh_redis (function) / redis_factory: a private redis-server to kill, pause or restart.
- postgres_server (session) / pg_url (function): a fresh database per test.
- sqlite_url (function): a SQLite file in the test's tmp dir.
- run_process (function): start commands (e.g. `godel serve`), stopped after the test.
Tests using pg_url or postgres_server are marked `postgres` automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.servers import (
    PostgresServer,
    ProcessRunner,
    RedisServer,
    find_postgres_bin_dir,
    redis_binary,
)

RedisFactory = Callable[..., RedisServer]
ProcessFactory = Callable[..., ProcessRunner]
_POSTGRES_FIXTURES = {"postgres_server", "pg_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


def _require_redis_binary() -> None:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (scripts/setup-dev.sh installs it)")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The shared redis-server. Tests that break it should use fresh_redis instead."""
    _require_redis_binary()
    server = RedisServer(tmp_path_factory.mktemp("redis-session")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the shared server, emptied (or restarted, if a test broke or reconfigured it)."""
    redis_server.reset()
    return redis_server.url


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[RedisFactory]:
    """Start private servers: `redis_factory(appendonly=True)`; all stopped after the test."""
    _require_redis_binary()
    count = 0
    # ExitStack: one server failing to stop must not leave the others running.
    with ExitStack() as stops:

        def start(**options: Any) -> RedisServer:
            nonlocal count
            server = RedisServer(tmp_path / f"redis-{count}")
            count += 1
            stops.callback(server.stop)
            return server.start(**options)

        yield start


@pytest.fixture
def fresh_redis(redis_factory: RedisFactory) -> RedisServer:
    """A private, running redis-server (no AOF) for fault injection."""
    return redis_factory()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if find_postgres_bin_dir() is None:
        pytest.skip("PostgreSQL binaries not found (scripts/setup-dev.sh installs them)")
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL (postgresql+psycopg://...) of a new, empty database, dropped after."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/godel.db"


@pytest.fixture
def run_process(tmp_path: Path) -> Iterator[ProcessFactory]:
    """`run_process(args, env=None, name="proc", cwd=None)` -> a started ProcessRunner.

    Logs go to `<tmp_path>/logs/<name>.log`; every process is stopped after the test.
    """
    names: set[str] = set()
    with ExitStack() as stops:

        def start(
            args: Sequence[str],
            env: Mapping[str, str] | None = None,
            name: str = "proc",
            cwd: Path | None = None,
        ) -> ProcessRunner:
            unique = name if name not in names else f"{name}-{len(names)}"
            names.add(unique)
            runner = ProcessRunner(tmp_path / "logs", unique)
            stops.callback(runner.stop)
            return runner.start(args, env, cwd=cwd)

        yield start
