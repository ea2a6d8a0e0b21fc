"""The test servers themselves: each fault they inject must be the real thing."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy

from tests.servers import (
    LOOPBACK,
    PostgresServer,
    ProcessRunner,
    RedisServer,
    free_port,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
RedisFactory = Callable[..., RedisServer]
ProcessFactory = Callable[..., ProcessRunner]


def test_kill9_leaves_the_port_refusing_connections(fresh_redis: RedisServer) -> None:
    pid = fresh_redis.pid
    fresh_redis.kill9()
    assert not fresh_redis.is_running()
    assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie
    with fresh_redis.client() as conn, pytest.raises(redis.ConnectionError, match="refused"):
        conn.ping()


def test_pause_makes_commands_time_out_until_resume(fresh_redis: RedisServer) -> None:
    with fresh_redis.client(socket_timeout=0.2) as conn:
        assert conn.ping()
        fresh_redis.pause()
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            conn.ping()
        assert time.monotonic() - started < 2
        fresh_redis.resume()
        assert conn.ping()


def test_restart_keeps_aof_data_across_a_crash(redis_factory: RedisFactory) -> None:
    server = redis_factory(appendonly=True)
    port = server.port
    with server.client() as conn:
        conn.set("godel:test:key", "kept")
    server.kill9()
    server.restart(keep_data=True)
    assert server.port == port
    with server.client() as conn:
        assert conn.get("godel:test:key") == b"kept"


def test_crash_without_aof_loses_data(fresh_redis: RedisServer) -> None:
    # The control for the test above: without persistence the same crash loses the key.
    with fresh_redis.client() as conn:
        conn.set("godel:test:key", "lost")
    fresh_redis.kill9()
    fresh_redis.restart(keep_data=True)
    with fresh_redis.client() as conn:
        assert conn.get("godel:test:key") is None


def test_restart_without_data_starts_empty(redis_factory: RedisFactory) -> None:
    server = redis_factory(appendonly=True)
    with server.client() as conn:
        conn.set("godel:test:key", "lost")
    server.restart(keep_data=False)
    with server.client() as conn:
        assert conn.get("godel:test:key") is None
    assert server.config_get("appendonly") == "yes"


def test_reset_revives_paused_and_killed_servers(fresh_redis: RedisServer) -> None:
    with fresh_redis.client() as conn:
        conn.set("godel:test:key", "v")
    fresh_redis.pause()
    fresh_redis.reset()
    with fresh_redis.client() as conn:
        assert conn.dbsize() == 0
    fresh_redis.kill9()
    fresh_redis.reset()
    assert fresh_redis.ping()


def test_reset_undoes_config_set(fresh_redis: RedisServer) -> None:
    fresh_redis.config_set("maxmemory-policy", "allkeys-lru")
    assert fresh_redis.config_get("maxmemory-policy") == "allkeys-lru"
    fresh_redis.reset()
    assert fresh_redis.config_get("maxmemory-policy") == "noeviction"


@pytest.mark.parametrize("run", [1, 2])
def test_redis_url_starts_empty(redis_url: str, run: int) -> None:
    # Whichever of the two runs second sees the first one's key unless the fixture flushes.
    with redis.Redis.from_url(redis_url) as conn:
        assert conn.dbsize() == 0
        conn.set(f"godel:test:run{run}", "x")


def test_replicaof_copies_then_promotes(redis_factory: RedisFactory) -> None:
    # Diskless sync waits 5 s for more replicas by default; one is all there is.
    primary = redis_factory(extra_args=["--repl-diskless-sync-delay", "0"])
    replica = redis_factory()
    with primary.client() as conn:
        conn.set("godel:test:key", "copied")
    replica.replicaof(primary.host, primary.port)
    with replica.client() as conn:
        wait_until(lambda: conn.get("godel:test:key") == b"copied", 10, "replication")
        with pytest.raises(redis.ReadOnlyError):
            conn.set("godel:test:other", "x")
        replica.replicaof_no_one()
        assert conn.set("godel:test:other", "x")


def test_servers_die_with_the_test_process(tmp_path: Path) -> None:
    """A SIGKILLed pytest runs no finalizer and no atexit; PDEATHSIG must still kill redis."""
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from tests.servers import RedisServer
        server = RedisServer(Path({str(tmp_path)!r})).start()
        print(server.pid, flush=True)
        os.kill(os.getpid(), 9)
    """)
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    # Become the orphan's new parent, so we can reap it and see how it died.
    libc.prctl(pr_set_child_subreaper, 1)
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == -signal.SIGKILL, result.stderr
        redis_pid = int(result.stdout)
        status = _reap(redis_pid, timeout_s=5)
    finally:
        libc.prctl(pr_set_child_subreaper, 0)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL


def _reap(pid: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"redis-server {pid} outlived its parent")


def test_postgres_database_lifecycle(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("t_lifecycle")
    assert url == f"postgresql+psycopg://godel@127.0.0.1:{postgres_server.port}/t_lifecycle"
    with postgres_server.connect("t_lifecycle") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    postgres_server.drop_database("t_lifecycle")
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        postgres_server.connect("t_lifecycle")


@pytest.mark.parametrize("run", [1, 2])
def test_pg_url_is_a_fresh_database(pg_url: str, run: int) -> None:
    engine = sqlalchemy.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            assert sqlalchemy.inspect(conn).get_table_names() == []
            conn.execute(sqlalchemy.text(f"CREATE TABLE run{run} (id int)"))
    finally:
        engine.dispose()


def test_sqlite_url_points_into_tmp(sqlite_url: str, tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE t (id int)"))
    finally:
        engine.dispose()
    assert (tmp_path / "godel.db").is_file()


def test_process_runner_serves_logs_and_dies(run_process: ProcessFactory) -> None:
    port = free_port()
    proc = run_process(
        [sys.executable, "-m", "http.server", str(port), "--bind", LOOPBACK], name="http"
    )
    assert proc.wait_http(f"http://{LOOPBACK}:{port}/", timeout_s=10).status_code == 200
    proc.kill9()
    assert proc.returncode == -signal.SIGKILL
    assert "GET / HTTP" in proc.log_text()


def test_wait_http_fails_fast_when_the_process_exits(run_process: ProcessFactory) -> None:
    proc = run_process([sys.executable, "-c", "print('boom', flush=True); raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match="boom"):
        proc.wait_http(f"http://{LOOPBACK}:{free_port()}/", timeout_s=10)
    assert proc.returncode == 3


def test_terminate_returns_the_exit_code(run_process: ProcessFactory) -> None:
    code = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
print("handler", "installed", flush=True)
time.sleep(60)
"""
    proc = run_process([sys.executable, "-c", code])
    # Not a plain string from the argv: the log's header line repeats the argv.
    wait_until(lambda: "handler installed" in proc.log_text(), 10, "the SIGTERM handler")
    assert proc.terminate() == 7
