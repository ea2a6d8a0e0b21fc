"""A real Redis Cluster on loopback: N masters (no replicas) made with `redis-cli --cluster
create`, each a RedisServer (kill9, pause, restart work on a node as on any server).

Each node's cluster config file lives beside its data directory, not in it: a node
restarted without its data (`restart(keep_data=False)`) still knows its slots and peers, as
a pod whose volume was lost but whose cluster config came back with it would.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from typing import Self

import redis

from tests.support.process import LOOPBACK, free_port
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until

NODE_TIMEOUT_MS = 1000
READY_TIMEOUT_S = 30.0


def redis_cli() -> str | None:
    return shutil.which("redis-cli")


class RedisClusterSet:
    """`masters` cluster nodes. `require_full_coverage=False` lets the slots still served
    answer while a node is down (Redis's default stops the whole cluster)."""

    def __init__(
        self,
        base_dir: Path,
        *,
        masters: int = 3,
        appendonly: bool = False,
        require_full_coverage: bool = False,
    ) -> None:
        self.base_dir = base_dir
        self.nodes = [RedisServer(base_dir / f"node-{i}") for i in range(masters)]
        self.appendonly = appendonly
        self.require_full_coverage = require_full_coverage

    def start(self) -> Self:
        for node in self.nodes:
            node.start(appendonly=self.appendonly, extra_args=self._args(node))
        cli = redis_cli()
        assert cli is not None, "redis-cli is needed to create a cluster"
        addresses = [f"{n.host}:{n.port}" for n in self.nodes]
        created = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
        self.wait_ok()
        return self

    def stop(self) -> None:
        with contextlib.ExitStack() as stops:
            for node in self.nodes:
                stops.callback(node.stop)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{n.port}" for n in self.nodes)

    def keyslot(self, key: str) -> int:
        with self.nodes[0].client() as conn:
            return int(conn.execute_command("CLUSTER", "KEYSLOT", key))

    def node_for(self, key: str) -> RedisServer:
        """The node serving `key`'s slot, as the cluster's slot map says."""
        slot = self.keyslot(key)
        for node in self.nodes:
            if not node.ping():
                continue
            with node.client() as conn:
                for start, end, master, *_ in conn.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        return next(n for n in self.nodes if n.port == int(master[1]))
        raise LookupError(f"no node serves slot {slot}")

    def wait_ok(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Every running node says cluster_state:ok and knows every other node."""
        wait_until(self._all_ok, timeout_s, "cluster_state:ok on every node", interval_s=0.05)

    def _all_ok(self) -> bool:
        try:
            for node in self.nodes:
                with node.client(decode_responses=True) as conn:
                    info = conn.execute_command("CLUSTER", "INFO")
                    if "cluster_state:ok" not in info:
                        return False
                    if f"cluster_known_nodes:{len(self.nodes)}" not in info:
                        return False
        except redis.RedisError:
            return False
        return True

    def _args(self, node: RedisServer) -> tuple[str, ...]:
        return (
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node.data_dir.parent / "nodes.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A port of its own for the cluster bus (by default port + 10000, which is
            # over 65535 for many of the free ports the kernel hands out).
            "--cluster-port", str(free_port()),
            "--cluster-require-full-coverage", "yes" if self.require_full_coverage else "no",
        )  # fmt: skip
