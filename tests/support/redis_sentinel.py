"""A real Sentinel deployment on loopback: one master, replicas and three `redis-server
--sentinel` processes on free ports, with short timers so a failover takes a few seconds.

The data nodes are RedisServers (tests/support/redis_server.py), so the faults chaos tests
use (kill9, pause, resume, restart) work on them as on any server. Sentinels rewrite their
config file, so each has its own in `<base_dir>/sentinel-<n>/`.

With `tls` (a CA, a certificate and its key) every node and Sentinel also listens for TLS
on a port of its own, and the Sentinels reach the nodes over TLS: the addresses they name
are the TLS ports. The plain ports stay open for the test's own commands.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.process import LOOPBACK, ProcessRunner, free_port
from tests.support.redis_server import RedisServer, redis_binary
from tests.support.wait import wait_until

MASTER_NAME = "godelmaster"
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 2000
# Sentinel's internal periods (SENTINEL DEBUG, Redis 7): INFO every 250 ms instead of 10 s,
# hellos every 250 ms instead of 2 s (it also sets how long a returning old master is left a
# master before it is reconfigured as a replica: 4 periods), peers asked every 250 ms.
DEBUG_PERIODS = ("info-period", 250, "publish-period", 250, "ask-period", 250)
READY_TIMEOUT_S = 20.0
# A replica's full sync starts at once (the default waits 5 s for more replicas to join).
NODE_ARGS = ("--repl-diskless-sync-delay", "0")


class TlsPaths(Protocol):
    ca: Path
    cert: Path
    key: Path


def tls_args(tls: TlsPaths, port: int) -> list[str]:
    """redis-server options for a TLS port (clients need not present a certificate) and
    TLS to the servers it connects to (replication, a Sentinel's monitoring)."""
    return [
        "--tls-port", str(port),
        "--tls-cert-file", str(tls.cert),
        "--tls-key-file", str(tls.key),
        "--tls-ca-cert-file", str(tls.ca),
        "--tls-auth-clients", "no",
        "--tls-replication", "yes",
    ]  # fmt: skip


class SentinelProcess:
    """One `redis-server <conf> --sentinel`."""

    def __init__(self, base_dir: Path, index: int) -> None:
        self.dir = base_dir / f"sentinel-{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.tls_port = 0
        self._runner = ProcessRunner(self.dir, "sentinel")

    def start(self, host: str, port: int, quorum: int, tls: TlsPaths | None = None) -> Self:
        self.port = free_port()
        conf = self.dir / "sentinel.conf"
        options = []
        if tls is not None:
            self.tls_port = free_port()
            args = tls_args(tls, self.tls_port)
            pairs = zip(args[::2], args[1::2], strict=True)
            options = [f"{name.removeprefix('--')} {value}" for name, value in pairs]
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    f"bind {LOOPBACK}",
                    f"dir {self.dir}",
                    "daemonize no",
                    'logfile ""',
                    *options,
                    f"sentinel monitor {MASTER_NAME} {host} {port} {quorum}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    "",
                ]
            )
        )
        binary = redis_binary()
        assert binary is not None
        self._runner.start([binary, str(conf), "--sentinel"], cwd=self.dir)
        wait_until(self._answers, 10, f"sentinel on port {self.port}")
        with self.client() as conn:
            conn.execute_command("SENTINEL", "DEBUG", *DEBUG_PERIODS)
        return self

    def client(self, **kwargs: Any) -> redis.Redis:
        options: dict[str, Any] = {
            "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": True,
        }
        options.update(kwargs)
        return redis.Redis(host=LOOPBACK, port=self.port, **options)

    def master(self) -> dict[str, Any]:
        with self.client() as conn:
            state: dict[str, Any] = conn.sentinel_master(MASTER_NAME)
            return state

    def stop(self) -> None:
        self._runner.stop()

    def log_text(self) -> str:
        return self._runner.log_text()

    def _answers(self) -> bool:
        if not self._runner.is_running():
            raise RuntimeError(f"sentinel exited on start:\n{self._runner.log_tail()}")
        try:
            with self.client(socket_timeout=0.5) as conn:
                return bool(conn.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False


class SentinelGroup:
    """A master, `replicas` replicas and `sentinels` Sentinels (quorum: a majority)."""

    master_name = MASTER_NAME

    def __init__(
        self,
        base_dir: Path,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        tls: TlsPaths | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.servers = [RedisServer(base_dir / f"node-{i}") for i in range(1 + replicas)]
        self.sentinels = [SentinelProcess(base_dir, i) for i in range(sentinels)]
        self.quorum = sentinels // 2 + 1
        self.tls = tls
        self._tls_ports = {id(s): free_port() for s in self.servers} if tls else {}

    def tls_port_of(self, server: RedisServer) -> int:
        return self._tls_ports[id(server)]

    def _node_args(self, server: RedisServer) -> tuple[str, ...]:
        if self.tls is None:
            return NODE_ARGS
        return (*NODE_ARGS, *tls_args(self.tls, self.tls_port_of(server)))

    def start(self) -> Self:
        first = self.servers[0].start(extra_args=self._node_args(self.servers[0]))
        # With TLS the Sentinels (and the replicas) reach the nodes on their TLS ports.
        port = self.tls_port_of(first) if self.tls else first.port
        for server in self.servers[1:]:
            replicaof = ("--replicaof", first.host, str(port))
            server.start(extra_args=(*self._node_args(server), *replicaof))
        for server in self.servers[1:]:
            wait_until(lambda s=server: replication(s)["master_link_status"] == "up", 10)
        for sentinel in self.sentinels:
            sentinel.start(first.host, port, self.quorum, self.tls)
        wait_until(self._ready, READY_TIMEOUT_S, "sentinels to know each other and the replicas")
        return self

    def stop(self) -> None:
        with contextlib.ExitStack() as stops:
            for process in [*self.sentinels, *self.servers]:
                stops.callback(process.stop)

    @property
    def url(self) -> str:
        hosts = ",".join(f"{LOOPBACK}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def server_at(self, port: int) -> RedisServer:
        """The node listening on `port` (its plain port or, with TLS, its TLS port)."""
        return next(s for s in self.servers if port in (s.port, self._tls_ports.get(id(s))))

    def master(self) -> RedisServer:
        """The master the Sentinels agree on (the highest config epoch among those up)."""
        states = []
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                states.append(sentinel.master())
        best = max(states, key=lambda s: s["config-epoch"])
        return self.server_at(int(best["port"]))

    def replicas(self) -> list[RedisServer]:
        master = self.master()
        return [s for s in self.servers if s is not master]

    def failover(self) -> None:
        """SENTINEL FAILOVER: promote a replica now, without agreement (an operator's)."""
        with self.sentinels[0].client() as conn:
            conn.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)

    def wait_master(self, not_port: int, timeout_s: float = 30.0) -> RedisServer:
        """Wait until every Sentinel names a master other than `not_port`, and it is one."""

        def moved() -> bool:
            try:
                ports = {int(s.master()["port"]) for s in self.sentinels}
            except redis.RedisError:
                return False
            if len(ports) != 1 or not_port in ports:
                return False
            return role(self.server_at(ports.pop())) == "master"

        wait_until(moved, timeout_s, f"a master other than {not_port}", interval_s=0.05)
        return self.master()

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Wait until every replica is in sync with the master every Sentinel names, and
        every Sentinel sees all of them: ready for the next failover."""
        wait_until(self._healthy, timeout_s, "a healthy master and replicas", interval_s=0.05)

    def _healthy(self) -> bool:
        try:
            ports = {int(s.master()["port"]) for s in self.sentinels}
            if len(ports) != 1:
                return False
            master = self.server_at(ports.pop())
            for replica in (s for s in self.servers if s is not master):
                info = replication(replica)
                if info["role"] != "slave" or info["master_link_status"] != "up":
                    return False
            for sentinel in self.sentinels:
                with sentinel.client() as conn:
                    seen = conn.sentinel_slaves(MASTER_NAME)
                if len(seen) != len(self.servers) - 1:
                    return False
                if any(r["is_sdown"] or r["is_odown"] or r["is_disconnected"] for r in seen):
                    return False
                if any(r.get("master-link-status") != "ok" for r in seen):
                    return False
        except (redis.RedisError, KeyError, StopIteration):
            return False
        return self._ready()

    def _ready(self) -> bool:
        try:
            states = [s.master() for s in self.sentinels]
        except redis.RedisError:
            return False
        return all(
            st["num-other-sentinels"] == len(self.sentinels) - 1
            and st["num-slaves"] == len(self.servers) - 1
            for st in states
        )


def replication(server: RedisServer) -> dict[str, Any]:
    with server.client(decode_responses=True) as conn:
        info: dict[str, Any] = conn.info("replication")
        return info


def role(server: RedisServer) -> str:
    try:
        return str(replication(server)["role"])
    except redis.RedisError:
        return "down"


def wait_role(server: RedisServer, wanted: str, timeout_s: float = 30.0) -> float:
    """Wait until `server` says it is `wanted` ("master", "slave"); the monotonic time."""
    return wait_until(
        lambda: role(server) == wanted, timeout_s, f"{server.port} to be {wanted}", interval_s=0.02
    )
