"""The Link: Redis health as one state machine, and the one door every Redis call goes
through.

    connected ──(a call fails with an outage error)──────────► fallback
                (a timeout counts only once a PING on a fresh connection, with the
                longer GODEL_REDIS_CONFIRM_TIMEOUT_S, fails too: see `_still_answers`)
    any       ──(a Sentinel announces +switch-master)────────► fallback
    fallback  ──(recovery: the probe's PING and test write)──► recovering
    recovering ──(recovery: backlog replayed)────────────────► connected
    recovering ──(recovery: anything raised)─────────────────► fallback

The Link only holds the state, the clients (built by `topology` for the URL's mode) and the
calls; `pipeline.recovery` drives the fallback → recovering → connected half (probe, replay,
reconcile, reopen), re-arms its probe on every entry into fallback (it subscribes here) and
probes at once when a failover is announced.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis

from godel import metrics
from godel.config import Settings
from godel.errors import FastLaneClosed, RedisTimeout, RedisUnavailable
from godel.fastlane.address import RedisMode, parse_redis_url
from godel.fastlane.errors import REDIS_ERRORS, outage
from godel.fastlane.topology import MAX_CONNECTIONS, Topology, disconnect

log = logging.getLogger("godel.link")
T = TypeVar("T")
SLOW_LOG_EVERY_S = 60.0  # "slow but answering" is logged at most this often


class LinkState(enum.Enum):
    """Where the fast lane stands."""

    CONNECTED = "connected"  # Redis takes writes; events flow through the fast lane
    FALLBACK = "fallback"  # Redis unusable; the ledger alone carries events; probing
    RECOVERING = "recovering"  # Redis answers again; replaying before reopening the lane


Listener = Callable[[LinkState, LinkState], None]


def _reraise_cancellation(exc: BaseException) -> None:
    """redis-py can turn a cancelled read into a connection error; a task being cancelled
    (shutdown) must see its CancelledError, not a Redis outage."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


async def try_call(call: Awaitable[T], default: T) -> T:
    """A best-effort Redis operation: `default` when Redis is unavailable (the Link has
    already moved to fallback and the recovery will make up for it)."""
    try:
        return await call
    except RedisUnavailable:
        return default


class Link:
    """Owns the Redis clients and the state. Tests inject a client through the constructor.

    `url` is any form of GODEL_REDIS_URL (standalone, Sentinel, Cluster: see
    `fastlane.address`); `keys` are the key names of its mode."""

    def __init__(
        self,
        settings: Settings,
        url: str,
        *,
        client: Redis | None = None,
        blocking_client: Redis | None = None,
        confirm_client: Redis | None = None,
    ) -> None:
        self.settings = settings
        self.url = url
        self.address = parse_redis_url(url)
        self.topology = Topology(settings, self.address)
        self.keys = self.topology.keys
        self.redis = client if client is not None else self.topology.client()
        if blocking_client is None:
            blocking_client = client if client is not None else self.topology.client(blocking=True)
        self.blocking_redis = blocking_client
        # One slot per pooled connection: a burst of calls (hundreds of requests at once,
        # each asking the rate limits) waits for a free connection instead of exhausting
        # the pool, which redis-py reports as MaxConnectionsError: an outage to the Link.
        # Two connections are left to the probe, which uses the client directly.
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS - 2)
        self._blocking_slots = asyncio.Semaphore(MAX_CONNECTIONS)
        # Asks "are you there?" after a timeout; None: a fresh client each time.
        self._confirm_client = confirm_client if confirm_client is not None else client
        self._confirming: asyncio.Task[bool] | None = None
        self._slow_logged_at = -SLOW_LOG_EVERY_S
        self.state = LinkState.FALLBACK
        self.since = time.time()
        self.reason: str | None = "not started"
        self.last_error: str | None = None
        self._listeners: list[Listener] = []
        self._failover_listeners: list[Callable[[], None]] = []
        self._closing = False
        self._announced = False  # "Entering fallback mode" was logged and not yet answered
        self._export_state()

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    @property
    def shutting_down(self) -> bool:
        return self._closing

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(old, new)` on every state change; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    async def call(self, fn: Callable[[Redis], Awaitable[T]], *, blocking: bool = False) -> T:
        """Run one Redis operation while connected; an outage becomes RedisUnavailable (and
        fallback). Not connected: FastLaneClosed at once, nothing sent."""
        if self.state is not LinkState.CONNECTED:
            raise FastLaneClosed("fallback", f"link is {self.state.value}")
        return await self._run(fn, self.blocking_redis if blocking else self.redis)

    async def call_recovering(self, fn: Callable[[Redis], Awaitable[T]]) -> T:
        """Like `call`, in any state: the recovery itself writes before the lane reopens."""
        return await self._run(fn, self.redis)

    async def _run(self, fn: Callable[[Redis], Awaitable[T]], client: Redis) -> T:
        slots = self._blocking_slots if client is self.blocking_redis else self._slots
        try:
            async with slots:
                return await fn(client)
        except REDIS_ERRORS as exc:
            _reraise_cancellation(exc)
            err = outage(exc)
            if err is None:
                raise  # not an outage: a bug in Godel, raised as it is
            if self._closing:
                raise type(err)(err.reason, "shutting down") from exc
            if self.state is LinkState.FALLBACK:
                # In flight when the lane closed (or cut by the probe dropping the pools):
                # the outage is known, and its reason is the first error's or the probe's.
                raise err from exc
            if isinstance(err, RedisTimeout) and await self._still_answers(err):
                raise err from exc  # this call failed (callers make up for it); lane open
            metrics.REDIS_ERRORS.labels(reason=err.reason).inc()
            self.enter_fallback(err.reason, err.detail)
            raise err from exc

    async def _still_answers(self, err: RedisTimeout) -> bool:
        """Is Redis slow rather than gone? A timeout alone cannot tell a busy host (a
        stalled event loop, a starved CPU: the answer comes, late) from a hung or
        partitioned server. So a timeout is confirmed at once by a PING on a connection
        of its own with the longer GODEL_REDIS_CONFIRM_TIMEOUT_S: an answer keeps the
        lane open (the call that timed out still fails; its caller makes up for it as for
        any failed call), no answer is the outage. Timeouts that come together (a stall
        hits every call in flight) share one confirmation."""
        if self._confirming is None or self._confirming.done():
            self._confirming = asyncio.get_running_loop().create_task(
                self._confirm(), name="godel-link-confirm"
            )
        alive = await asyncio.shield(self._confirming)
        if alive:
            metrics.REDIS_SLOW.inc()
            now = time.monotonic()
            if now - self._slow_logged_at >= SLOW_LOG_EVERY_S:
                self._slow_logged_at = now
                log.warning(
                    "Redis was slow to answer (%s) but answers a PING: the fast lane stays open",
                    err.detail,
                )
        return alive

    async def _confirm(self) -> bool:
        timeout_s = self.settings.redis_confirm_timeout_s
        client = self._confirm_client or self.topology.client(read_timeout_s=timeout_s)
        try:
            async with asyncio.timeout(timeout_s + self.settings.redis_connect_timeout_s):
                if self.address.mode is RedisMode.CLUSTER:  # the node of the {godel} slot
                    await client.exists(self.keys.probe)
                else:
                    await client.ping()
            return True
        except REDIS_ERRORS:
            return False
        finally:
            if client is not self._confirm_client:
                await client.aclose()

    def start(self) -> None:
        """Behind Sentinel, follow failovers: a +switch-master closes the fast lane at once,
        and the recovery's probe finds the new master."""
        self.topology.follow_failovers(self.failover_announced)

    def on_failover(self, callback: Callable[[], None]) -> None:
        """Call `callback()` on every failover announced (the recovery probes at once)."""
        self._failover_listeners.append(callback)

    def failover_announced(self, detail: str) -> None:
        """A Sentinel named a new master: close the lane (the clients may point at the old
        one) and have the probe look for the new one now."""
        if self._closing:
            return
        metrics.REDIS_ERRORS.labels(reason="failover").inc()
        self.enter_fallback("failover", detail)
        for callback in list(self._failover_listeners):
            callback()

    def enter_fallback(self, reason: str, detail: str) -> None:
        """Close the fast lane (from any state); the recovery's probe reopens it."""
        self.last_error = detail
        self.reason = reason
        if not self._announced:  # once per outage, also when it is there from the start
            self._announced = True
            log.warning("Entering fallback mode: %s (%s)", reason, detail)
        self._set_state(LinkState.FALLBACK)

    def begin_recovery(self) -> None:
        if self.state is LinkState.FALLBACK:
            self._set_state(LinkState.RECOVERING)

    def reopen(self) -> bool:
        """Recovery is done: the fast lane takes events again. False (and nothing changes)
        when the Link went back to fallback meanwhile (a failover was announced): the
        clients may point at the old master, so the probe must run again first."""
        if self.state is LinkState.FALLBACK:
            return False
        self.reason = None
        self._set_state(LinkState.CONNECTED)
        return True

    def announce_exit(self, replayed: int, duration_s: float) -> None:
        if self._announced and self.connected:
            self._announced = False
            log.warning("Exiting fallback mode: replayed %d events in %.3f s", replayed, duration_s)

    def _set_state(self, new: LinkState) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        self.since = time.time()
        metrics.FALLBACK_TRANSITIONS.labels(to=new.value).inc()
        self._export_state()
        for listener in list(self._listeners):
            listener(old, new)

    def _export_state(self) -> None:
        metrics.REDIS_UP.set(1 if self.state is LinkState.CONNECTED else 0)
        metrics.FALLBACK_ACTIVE.set(0 if self.state is LinkState.CONNECTED else 1)
        for state in LinkState:
            metrics.LINK_STATE.labels(state=state.value).set(1 if state is self.state else 0)

    async def probe(self) -> None:
        """Can Redis take writes? PING is not enough: OOM, MISCONF and READONLY servers
        answer PING but refuse writes, so the probe also writes a key that expires."""
        # Pooled connections from before the outage are dead sockets: without retries, the
        # first command on each would fail and send us straight back into fallback. Behind
        # Sentinel they may also lead to the old master: new ones ask for the current one.
        try:
            await disconnect(self.redis)
            if self.blocking_redis is not self.redis:
                await disconnect(self.blocking_redis)
            if self.address.mode is not RedisMode.CLUSTER:  # any node would answer a PING
                await self.redis.ping()
            await self.redis.set(self.keys.probe, str(time.time()), px=60_000)
        except REDIS_ERRORS as exc:
            _reraise_cancellation(exc)
            err = outage(exc)
            if err is None:
                err = RedisUnavailable("other", f"{type(exc).__name__}: {exc}")
            raise err from exc

    def closing(self) -> None:
        """Shutdown has begun: errors from here on are ours, not Redis's."""
        self._closing = True

    async def close(self) -> None:
        self._closing = True
        if self._confirming is not None:
            self._confirming.cancel()
            await asyncio.gather(self._confirming, return_exceptions=True)
        await self.topology.close()
        await self.redis.aclose()
        if self.blocking_redis is not self.redis:
            await self.blocking_redis.aclose()

    def describe(self) -> dict[str, Any]:
        connected = self.state is LinkState.CONNECTED
        return {
            "state": self.state.value,
            "since": self.since,
            "reason": None if connected else self.reason,
            "last_error": self.last_error,
        }
