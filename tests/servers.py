"""Real servers and processes for tests: what fixtures, chaos tests and the benchmarks import."""

from tests.support.godel_server import GODEL_BIN, GodelServer, godel_env, start_serve
from tests.support.postgres_server import PostgresServer, find_postgres_bin_dir
from tests.support.process import LOOPBACK, ProcessRunner, free_port, port_is_free
from tests.support.redis_server import RedisServer, redis_binary
from tests.support.wait import wait_until, wait_until_async

__all__ = [
    "GODEL_BIN",
    "LOOPBACK",
    "GodelServer",
    "PostgresServer",
    "ProcessRunner",
    "RedisServer",
    "find_postgres_bin_dir",
    "free_port",
    "godel_env",
    "port_is_free",
    "redis_binary",
    "start_serve",
    "wait_until",
    "wait_until_async",
]
