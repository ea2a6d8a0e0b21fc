"""Fixtures backed by real servers (see tests/servers.py).

- redis_server (session): one redis-server for the run; redis_url (function) empties it first.
- fresh_redis (function) / redis_factory: a private redis-server to kill, pause or restart.
- postgres_server (session) / pg_url (function): a fresh database per test.
- private_postgres (function): a PostgreSQL cluster of the test's own, to halt and restart.
- pg_pair (function): a primary with database `godel` and its synchronous streaming replica.
- sqlite_url (function): a SQLite file in the test's tmp dir.
- run_process (function): start commands, stopped after the test (`godel serve`: use
  tests.support.godel_server.start_serve(run_process, ...)).
- fleet_factory (function): N `godel serve` (GODEL_WORKERS=0) and M `godel worker`
  processes on one ledger and one Redis (tests.support.fleet).
Tests using pg_url or postgres_server are marked `postgres` automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
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
from tests.support.postgres_replica import PostgresReplica, replicated
from tests.support.process import Processes

# Sentinel, Cluster and TLS fixtures (sentinel_group, cluster_factory, tls_files, ...).
pytest_plugins = ("tests.support.fixtures_redis_ha",)

RedisFactory = Callable[..., RedisServer]
ProcessFactory = Callable[..., ProcessRunner]
_POSTGRES_FIXTURES = {"postgres_server", "pg_url", "private_postgres", "pg_pair"}


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


def _require_postgres_binaries() -> None:
    if find_postgres_bin_dir() is None:
        pytest.skip("PostgreSQL binaries not found (scripts/setup-dev.sh installs them)")


@contextmanager
def _postgres() -> Iterator[PostgresServer]:
    _require_postgres_binaries()
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with _postgres() as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of the test's own, for tests that halt and restart it."""
    with _postgres() as server:
        yield server


@pytest.fixture
def pg_pair() -> Iterator[tuple[PostgresServer, PostgresReplica]]:
    """A primary with database `godel` and its synchronous streaming replica."""
    _require_postgres_binaries()
    with replicated("godel") as pair:
        yield pair


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
    """`run_process(args, env=None, name="proc", cwd=None, inherit_env=True)` -> a started
    ProcessRunner (`env` laid over ours, or the whole environment with inherit_env=False).

    Logs go to `<tmp_path>/logs/<name>.log`; every process is stopped after the test.
    """
    processes = Processes(tmp_path / "logs")
    try:
        yield processes
    finally:
        processes.stop()


@pytest.fixture
def fleet_factory(run_process: ProcessFactory, tmp_path: Path) -> Callable[..., Any]:
    """`fleet_factory(settings, apis=3, workers=3)` -> a started tests.support.fleet.Fleet:
    the ledger of `settings` (Settings field names) migrated first, as the init containers
    do, then every process at once; all stopped after the test."""
    from tests.harness import migrate
    from tests.support.fleet import Fleet, start_fleet

    def start(
        settings: Mapping[str, Any], *, apis: int, workers: int, concurrency: int = 1
    ) -> Fleet:
        migrate(settings["database_url"])
        return start_fleet(
            run_process, tmp_path, settings, apis=apis, workers=workers, concurrency=concurrency
        )

    return start


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """An empty ledger's URL, once on SQLite and once on PostgreSQL (pg_url)."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
def ledger_db(ledger_url: str) -> Iterator[Any]:
    """A migrated godel Database on `ledger_url` (so: on SQLite, then on PostgreSQL)."""
    from godel.store.database import Database
    from godel.store.migrate import upgrade

    db = Database(ledger_url)
    try:
        upgrade(db)
        yield db
    finally:
        db.close()
