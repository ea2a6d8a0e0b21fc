"""Real servers and processes for tests: what fixtures and chaos tests import."""

from tests.support.postgres_server import PostgresServer, find_postgres_bin_dir
from tests.support.process import LOOPBACK, ProcessRunner, free_port, port_is_free, wait_until
from tests.support.redis_server import RedisServer, redis_binary

__all__ = [
    "LOOPBACK",
    "PostgresServer",
    "ProcessRunner",
    "RedisServer",
    "find_postgres_bin_dir",
    "free_port",
    "port_is_free",
    "redis_binary",
    "wait_until",
]
