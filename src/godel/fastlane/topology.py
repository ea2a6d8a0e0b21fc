"""Redis clients for the three modes of GODEL_REDIS_URL (see `address`), all fail-fast:
short socket timeouts and no retries of their own, so an outage surfaces at once and the
Link decides what it means.

    mode        client                             writes go to
    standalone  redis.asyncio.Redis                the URL's server
    sentinel    Sentinel(...).master_for(<master>) the master named by the Sentinel with the
                                                   newest configuration (highest config-epoch),
                                                   asked again for every new connection
    cluster     redis.asyncio.RedisCluster         the node serving slot 11626 ({godel}); MOVED
                                                   and ASK are followed by the client

Following a Sentinel failover: every new connection asks the Sentinels, so the probe (which
drops the pools first) finds the new master. Asking the Sentinel with the highest epoch
matters: one that has not heard of the failover yet still names the old master, which, after
a manual failover or a partition, stays writable until the Sentinels demote it — writes there
would be lost. `FailoverWatch` closes the fast lane the moment a Sentinel announces
+switch-master, instead of waiting for the old master to refuse a write (READONLY, which a
partitioned master never sends).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, cast

from redis import exceptions as rex
from redis._parsers import AsyncCommandsParser
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import NoBackoff

from godel.config import Settings
from godel.errors import ConfigError
from godel.fastlane.address import RedisAddress, RedisMode
from godel.fastlane.errors import REDIS_ERRORS
from godel.fastlane.keys import Keys

log = logging.getLogger("godel.link")
SWITCH_MASTER = "+switch-master"
RESUBSCRIBE_S = 1.0
MAX_CONNECTIONS = 64
_NOT_NODE_OPTIONS = ("host", "port", "connection_class", "path")


class FreshestSentinel(Sentinel):
    """Asks every Sentinel at once and believes the one with the newest configuration."""

    def __init__(self, sentinels: list[tuple[str, int]], sentinel_kwargs: dict[str, Any]) -> None:
        super().__init__(sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        replies = await asyncio.gather(
            *(s.sentinel_master(service_name) for s in self.sentinels), return_exceptions=True
        )
        best: dict[str, Any] | None = None
        errors = []
        for sentinel, reply in zip(self.sentinels, replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, REDIS_ERRORS):
                    raise reply
                errors.append(f"{_where(sentinel)} - {type(reply).__name__}: {reply}")
                continue
            state = cast(dict[str, Any], reply)
            if self.check_master_state(state, service_name) and (
                best is None or state["config-epoch"] > best["config-epoch"]
            ):
                best = state
        if best is None:
            detail = f" : {', '.join(errors)}" if errors else ""
            raise MasterNotFoundError(f"No master found for {service_name!r}{detail}")
        return str(best["ip"]), int(best["port"])


class _AnyPrimaryCommands(AsyncCommandsParser):
    """redis-py reads COMMAND (where each command's keys are) from the cluster's default
    node, the first primary listed: while that one is down the client could not start, even
    though Godel needs only the node of {godel}. This asks the other primaries as well."""

    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__()
        self._cluster = cluster

    async def initialize(self, node: ClusterNode | None = None) -> None:
        candidates = [n for n in (node, *self._cluster.get_primaries()) if n is not None]
        failure: BaseException | None = None
        for candidate in dict.fromkeys(candidates):
            try:
                await super().initialize(candidate)
                return
            except (rex.ConnectionError, rex.TimeoutError, TimeoutError, OSError) as exc:
                failure = exc
        if failure is not None:
            raise failure
        await super().initialize(node)


class GodelCluster(RedisCluster):
    """RedisCluster that can start while a node Godel does not use is down."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.commands_parser = _AnyPrimaryCommands(self)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # Before the slot map is read (at first, and after every aclose: the probe's, or a
        # CLUSTERDOWN's), redis-py sends a command as if it had no key, to the default node;
        # that node may be one Godel does not use, and down. Read the map first.
        if self.get_default_node() is None:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def _where(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


def _fail_fast(
    settings: Settings, blocking: bool, read_timeout_s: float | None = None
) -> dict[str, Any]:
    read_timeout = read_timeout_s or settings.redis_socket_timeout_s
    if blocking:
        read_timeout += settings.redis_block_timeout_s
    return {
        "socket_timeout": read_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "decode_responses": True,
    }


def _node_options(address: RedisAddress) -> dict[str, Any]:
    """Credentials, db and the URL's options, as redis-py reads them from one node's URL."""
    options: dict[str, Any] = dict(parse_url(address.node_url))
    for name in _NOT_NODE_OPTIONS:
        options.pop(name, None)
    if address.tls:
        options["ssl"] = True
    return options


class Topology:
    """Builds the Link's clients for one GODEL_REDIS_URL and, behind Sentinel, follows
    failovers. `keys` are the key names of the mode."""

    def __init__(self, settings: Settings, address: RedisAddress) -> None:
        self.settings = settings
        self.address = address
        self.mode = address.mode
        self.keys = Keys.for_cluster(address.mode is RedisMode.CLUSTER)
        self.sentinel: FreshestSentinel | None = None
        if address.mode is RedisMode.SENTINEL:
            self.sentinel = self._sentinel()
        self._watch: FailoverWatch | None = None

    def client(self, *, blocking: bool = False, read_timeout_s: float | None = None) -> Redis:
        """A new client (its own pool). RedisCluster answers the same commands as Redis: it
        is typed as one so that every operation is written once. `read_timeout_s` replaces
        GODEL_REDIS_SOCKET_TIMEOUT_S (the Link's confirmation after a timeout)."""
        options = _fail_fast(self.settings, blocking, read_timeout_s)
        if self.mode is RedisMode.CLUSTER:
            return cast(Redis, self._cluster(options))
        options.update(retry_on_timeout=False, retry_on_error=[], max_connections=MAX_CONNECTIONS)
        if self.sentinel is not None:
            assert self.address.service is not None
            options.update(_node_options(self.address), check_connection=True)
            client: Redis = self.sentinel.master_for(self.address.service, **options)
            return client
        return Redis.from_url(self.address.url, **options)

    def _sentinel(self) -> FreshestSentinel:
        options = _fail_fast(self.settings, blocking=False)
        node = _node_options(self.address)
        options.update({k: v for k, v in node.items() if k.startswith("ssl")})
        username, password = self.address.sentinel_auth or (None, None)
        options.update(username=username, password=password)
        return FreshestSentinel(list(self.address.nodes), sentinel_kwargs=options)

    def _cluster(self, options: dict[str, Any]) -> RedisCluster:
        node = _node_options(self.address)
        node.pop("db", None)
        accepted = inspect.signature(RedisCluster.__init__).parameters
        unknown = sorted(set(node) - set(accepted))
        if unknown:
            raise ConfigError(f"invalid GODEL_REDIS_URL: {unknown[0]!r} is not a cluster option")
        nodes = [ClusterNode(host, port) for host, port in self.address.nodes]
        # Only the {godel} slot matters to Godel: work on while other slots are down.
        options.update(require_full_coverage=False, max_connections=MAX_CONNECTIONS)
        return GodelCluster(startup_nodes=nodes, **{**options, **node})

    def follow_failovers(self, on_switch: Callable[[str], None]) -> None:
        """Sentinel mode: call `on_switch(detail)` once per failover the Sentinels announce."""
        if self.sentinel is not None and self._watch is None:
            assert self.address.service is not None
            self._watch = FailoverWatch(self.sentinel, self.address.service, on_switch)
            self._watch.start()

    async def close(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
        if self.sentinel is not None:
            await self.sentinel.aclose()


async def disconnect(client: Redis) -> None:
    """Drop every pooled connection, in use or idle: the next command connects afresh (and,
    behind Sentinel, asks for the master; in a cluster, reads the slot map again)."""
    if isinstance(client, RedisCluster):
        await client.aclose()  # the client stays usable: it initialises again on next use
    else:
        await client.connection_pool.disconnect()


async def queue_node(client: Redis, keys: Keys) -> dict[str, Any]:
    """Keyword arguments that send a keyless command (INFO, SCAN) to the node holding the
    queue: in a cluster, that of slot {godel}; elsewhere there is only one server."""
    if not isinstance(client, RedisCluster):
        return {}
    await client.initialize()
    return {"target_nodes": client.get_node_from_key(keys.pending)}


class FailoverWatch:
    """One subscription to +switch-master per Sentinel (any one of them may be down or
    partitioned); each failover is reported once, however many Sentinels announce it."""

    def __init__(self, sentinel: Sentinel, service: str, on_switch: Callable[[str], None]):
        self.sentinel = sentinel
        self.service = service
        self.on_switch = on_switch
        self._last: tuple[str, ...] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for client in self.sentinel.sentinels:
            task = loop.create_task(self._follow(client), name="godel-sentinel-watch")
            self._tasks.add(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _follow(self, client: Redis) -> None:
        while True:
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(SWITCH_MASTER)
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=RESUBSCRIBE_S
                        )
                        if message is not None:
                            self._announced(str(message["data"]))
            except REDIS_ERRORS as exc:
                log.debug("sentinel %s: %s; subscribing again", _where(client), exc)
            await asyncio.sleep(RESUBSCRIBE_S)

    def _announced(self, data: str) -> None:
        # "<master> <old ip> <old port> <new ip> <new port>"
        parts = tuple(data.split())
        if len(parts) != 5 or parts[0] != self.service or parts[3:] == self._last:
            return
        self._last = parts[3:]
        detail = f"Sentinel +switch-master: {parts[1]}:{parts[2]} -> {parts[3]}:{parts[4]}"
        log.warning("Redis failover: %s", detail)
        self.on_switch(detail)
