"""The Link: Redis health as one state machine.

    connected ──(error that means Redis cannot take writes)──► fallback
    fallback  ──(probe: PING + a test write succeed)─────────► recovering
    recovering ──(replay drained the undispatched backlog)───► connected
    recovering ──(error during replay)───────────────────────► fallback

Error classification (the only place that looks at redis.exceptions):

    reason        what Redis said / did
    connection    refused, reset, closed, DNS failure
    timeout       no answer within the socket timeout (a hung or stopped server)
    loading       LOADING: the dataset is still being loaded after a restart
    oom           OOM command not allowed when used memory > 'maxmemory'
    misconf       MISCONF: a background save failed and stop-writes-on-bgsave-error is on
    readonly      READONLY: we are talking to a replica (failover, REPLICAOF)
    masterdown    MASTERDOWN: a replica lost its master
    clusterdown   CLUSTERDOWN / TRYAGAIN
    auth          NOAUTH, WRONGPASS, NOPERM
    unblocked     UNBLOCKED: a blocking call was cut by a role change
    busy          BUSY: a script is running too long

Anything else from Redis is a bug in Godel, not an outage, and is raised as is.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from godel import metrics
from godel.config import Settings
from godel.errors import RedisUnavailable

log = logging.getLogger("godel.link")
T = TypeVar("T")
SENTINEL_KEY = "godel:link:sentinel"
PROBE_KEY = "godel:link:probe"


class LinkState(enum.Enum):
    """Where the fast lane stands."""

    CONNECTED = "connected"  # Redis takes writes; events flow through the fast lane
    FALLBACK = "fallback"  # Redis unusable; the ledger alone carries events; probing
    RECOVERING = "recovering"  # Redis answers again; replaying before reopening the lane


_MESSAGE_REASONS = (
    ("OOM", "oom"),
    ("MISCONF", "misconf"),
    ("READONLY", "readonly"),
    ("MASTERDOWN", "masterdown"),
    ("CLUSTERDOWN", "clusterdown"),
    ("TRYAGAIN", "clusterdown"),
    ("LOADING", "loading"),
    ("NOAUTH", "auth"),
    ("WRONGPASS", "auth"),
    ("NOPERM", "auth"),
    ("UNBLOCKED", "unblocked"),
    ("BUSY", "busy"),
)


_CLASS_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (rex.BusyLoadingError, "loading"),
    (rex.ReadOnlyError, "readonly"),
    (rex.OutOfMemoryError, "oom"),
    (rex.MasterDownError, "masterdown"),
    (rex.ClusterDownError, "clusterdown"),
    (rex.TryAgainError, "clusterdown"),
    (rex.AuthenticationError, "auth"),
    (rex.AuthorizationError, "auth"),
    (rex.NoPermissionError, "auth"),
    (rex.TimeoutError, "timeout"),
    (TimeoutError, "timeout"),
)


def classify(exc: BaseException) -> str | None:
    """The outage reason for a Redis error, or None when it is not an outage."""
    for cls, reason in _CLASS_REASONS:
        if isinstance(exc, cls):
            return reason
    if isinstance(exc, rex.ConnectionError | ConnectionError | OSError):
        return "auth" if "auth" in str(exc).lower() else "connection"
    if isinstance(exc, rex.ResponseError):
        # redis-py strips the error code it maps to a class, wraps pipeline errors
        # ("Command # 1 (LPUSH ...) of pipeline caused error: ('MISCONF ...')") and script
        # errors ("... -OOM command not allowed"): look for the code as a word anywhere.
        code = str(getattr(exc, "status_code", "") or "").upper()
        text = f"{code} {exc}".upper()
        for prefix, reason in _MESSAGE_REASONS:
            if code == prefix or re.search(rf"(?<![A-Z_]){prefix}(?![A-Z_])", text):
                return reason
    return None


def make_client(settings: Settings, url: str, *, blocking: bool = False) -> Redis:
    """A Redis client that fails fast and never retries on its own: the Link decides."""
    read_timeout = settings.redis_socket_timeout_s
    if blocking:
        read_timeout += settings.redis_block_timeout_s
    client: Redis = Redis.from_url(
        url,
        socket_timeout=read_timeout,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        retry_on_error=[],
        health_check_interval=0,
        decode_responses=True,
        max_connections=64,
    )
    return client


Listener = Callable[[LinkState, LinkState], None]


def _reraise_cancellation(exc: BaseException) -> None:
    """redis-py can turn a cancelled read into a connection error; a task being cancelled
    (shutdown) must see its CancelledError, not a Redis outage."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


class Link:
    """Owns the Redis clients and the state; every Redis call goes through `call`."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self.redis = make_client(settings, url)
        self.blocking_redis = make_client(settings, url, blocking=True)
        self.state = LinkState.FALLBACK
        self.since = time.time()
        self.reason: str | None = "not started"
        self.last_error: str | None = None
        self.replay: Callable[[], Awaitable[int]] | None = None
        self.remaining: Callable[[], Awaitable[int]] | None = None
        self.on_data_loss: Callable[[], Awaitable[int]] | None = None
        self.listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._probe_task: asyncio.Task[None] | None = None
        self._closing = False
        self._announced = False  # "Entering fallback mode" was logged and not yet answered
        self.last_replay: dict[str, Any] = {"replayed": 0, "duration_s": 0.0, "at": None}
        self._export_state()

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    async def start(self) -> None:
        """Try Redis once; start in fallback (probing) when it is not usable."""
        async with self._lock:
            try:
                await self._probe_once()
            except RedisUnavailable as err:
                self._enter_fallback(err.reason, err.detail)
                return
            await self._recover_locked()

    def closing(self) -> None:
        """Shutdown has begun: errors from here on are ours, not Redis's."""
        self._closing = True

    async def close(self) -> None:
        self._closing = True
        if self._probe_task:
            self._probe_task.cancel()
            await asyncio.gather(self._probe_task, return_exceptions=True)
        await self.redis.aclose()
        await self.blocking_redis.aclose()

    async def call(self, fn: Callable[[Redis], Awaitable[T]], *, blocking: bool = False) -> T:
        """Run one Redis operation; an outage becomes RedisUnavailable and starts fallback."""
        if self.state is not LinkState.CONNECTED:
            raise RedisUnavailable("fallback", f"link is {self.state.value}")
        try:
            return await fn(self.blocking_redis if blocking else self.redis)
        except (TimeoutError, rex.RedisError, OSError) as exc:
            _reraise_cancellation(exc)
            raise self.failed(exc) from exc

    async def call_any_state(self, fn: Callable[[Redis], Awaitable[T]]) -> T:
        """Like `call` but also while recovering (the replay itself uses this)."""
        try:
            return await fn(self.redis)
        except (TimeoutError, rex.RedisError, OSError) as exc:
            _reraise_cancellation(exc)
            raise self.failed(exc) from exc

    def failed(self, exc: BaseException) -> Exception:
        """Classify a Redis error; on an outage enter fallback and return RedisUnavailable."""
        reason = classify(exc)
        if reason is None:
            return exc if isinstance(exc, Exception) else RuntimeError(str(exc))
        if self._closing:
            return RedisUnavailable(reason, "shutting down")
        metrics.REDIS_ERRORS.labels(reason=reason).inc()
        detail = f"{type(exc).__name__}: {exc}"
        self.last_error = detail
        self._enter_fallback(reason, detail)
        return RedisUnavailable(reason, detail)

    def _enter_fallback(self, reason: str, detail: str) -> None:
        if self.state is LinkState.FALLBACK and self._probe_task is not None:
            return
        if not self._announced:
            self._announced = True
            log.warning("Entering fallback mode: %s (%s)", reason, detail)
        self.reason = reason
        self.last_error = detail
        self._set_state(LinkState.FALLBACK)
        if not self._closing and (self._probe_task is None or self._probe_task.done()):
            self._probe_task = asyncio.get_running_loop().create_task(
                self._probe_forever(), name="godel-link-probe"
            )

    def _set_state(self, new: LinkState) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        self.since = time.time()
        metrics.FALLBACK_TRANSITIONS.labels(to=new.value).inc()
        self._export_state()
        for listener in list(self.listeners):
            listener(old, new)

    def _export_state(self) -> None:
        metrics.REDIS_UP.set(1 if self.state is LinkState.CONNECTED else 0)
        metrics.FALLBACK_ACTIVE.set(0 if self.state is LinkState.CONNECTED else 1)
        for state in LinkState:
            metrics.LINK_STATE.labels(state=state.value).set(1 if state is self.state else 0)

    async def _probe_once(self) -> None:
        """PING is not enough: OOM, MISCONF and READONLY servers answer PING but refuse writes."""
        # Pooled connections from before the outage are dead sockets: without retries, the
        # first command on each would fail and send us straight back into fallback.
        await self.redis.connection_pool.disconnect()
        await self.blocking_redis.connection_pool.disconnect()
        try:
            await self.redis.ping()
            await self.redis.set(PROBE_KEY, str(time.time()), px=60_000)
        except (TimeoutError, rex.RedisError, OSError) as exc:
            reason = classify(exc) or "other"
            raise RedisUnavailable(reason, f"{type(exc).__name__}: {exc}") from exc

    async def _probe_forever(self) -> None:
        delay = self.settings.probe_backoff_min_s
        while self.state is LinkState.FALLBACK and not self._closing:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.settings.probe_backoff_max_s)
            async with self._lock:
                if self.state is not LinkState.FALLBACK:
                    return
                try:
                    await self._probe_once()
                except RedisUnavailable as err:
                    self.last_error = err.detail
                    continue
                await self._recover_locked()

    async def recover_now(self) -> dict[str, Any]:
        """Operator's 'recover': probe now, and replay whatever the ledger still holds."""
        async with self._lock:
            if self.state is not LinkState.CONNECTED:
                try:
                    await self._probe_once()
                except RedisUnavailable as err:
                    self.last_error = err.detail
                    return await self._report(0, 0.0, err.detail)
            started = time.monotonic()
            replayed = await self._recover_locked()
            return await self._report(replayed, time.monotonic() - started, None)

    async def _report(self, replayed: int, duration_s: float, error: str | None) -> dict[str, Any]:
        remaining = await self.remaining() if self.remaining else 0
        return {
            "state": self.state.value,
            "replayed": replayed,
            "remaining": remaining,
            "duration_s": round(duration_s, 3),
            "error": error,
        }

    async def _recover_locked(self) -> int:
        """Replay the undispatched backlog, then reopen the fast lane. Caller holds the lock."""
        was_down = self.state is not LinkState.CONNECTED
        if was_down:
            self._set_state(LinkState.RECOVERING)
        started = time.monotonic()
        replayed = 0
        try:
            lost = not await self.redis.exists(SENTINEL_KEY)
            await self.redis.set(SENTINEL_KEY, str(time.time()))
            if self.replay is not None:
                replayed = await self.replay()
            if lost and self.on_data_loss is not None:
                # A fresh server or one that lost its data: compare the ledger with it now.
                found = await self.on_data_loss()
                if found:
                    log.warning(
                        "Redis had lost %d events (sentinel key missing); "
                        "pushed them again from the ledger",
                        found,
                    )
        except (TimeoutError, rex.RedisError, OSError) as exc:
            self.failed(exc)
            return replayed
        except RedisUnavailable:
            return replayed
        self._set_state(LinkState.CONNECTED)
        if self.replay is not None:
            try:
                replayed += await self.replay()  # events committed during the last batch
            except RedisUnavailable:
                return replayed
        duration = time.monotonic() - started
        self.last_replay = {"replayed": replayed, "duration_s": duration, "at": time.time()}
        self.reason = None
        if self._announced:
            self._announced = False
            log.warning("Exiting fallback mode: replayed %d events in %.3f s", replayed, duration)
        await self.check_server()
        return replayed

    async def inspect_server(self) -> dict[str, Any]:
        """Read memory, eviction policy and persistence; warn where queue keys are at risk."""
        try:
            info = await self.redis.info()
            policy = await self._config_get("maxmemory-policy")
        except (TimeoutError, rex.RedisError, OSError) as exc:
            self.failed(exc)
            return {}
        policy = policy or str(info.get("maxmemory_policy", "unknown"))
        used = int(info.get("used_memory", 0))
        maxmem = int(info.get("maxmemory", 0))
        aof = int(info.get("aof_enabled", 0))
        bgsave_ok = info.get("rdb_last_bgsave_status", "ok") == "ok"
        metrics.REDIS_USED_MEMORY.set(used)
        metrics.REDIS_MAXMEMORY.set(maxmem)
        metrics.REDIS_POLICY_SAFE.set(1 if policy == "noeviction" else 0)
        metrics.REDIS_AOF_ENABLED.set(aof)
        metrics.REDIS_LAST_BGSAVE_OK.set(1 if bgsave_ok else 0)
        return {
            "used_memory": used,
            "maxmemory": maxmem,
            "maxmemory_policy": policy,
            "aof_enabled": bool(aof),
            "last_bgsave_ok": bgsave_ok,
        }

    async def _config_get(self, name: str) -> str | None:
        try:
            reply = await self.redis.config_get(name)
        except rex.ResponseError:
            return None  # CONFIG is often disabled on managed Redis; INFO still tells us
        value = reply.get(name)
        return str(value) if value is not None else None

    async def check_server(self) -> None:
        """At start and after each recovery: say so loudly when Redis may lose queue keys."""
        facts = await self.inspect_server()
        if not facts:
            return
        if facts["maxmemory_policy"] != "noeviction":
            log.warning(
                "Redis maxmemory-policy is %s: Redis may evict queue keys under memory "
                "pressure (the ledger still has every event; set noeviction)",
                facts["maxmemory_policy"],
            )
        if not facts["aof_enabled"]:
            log.info(
                "Redis appendonly is off: a Redis restart empties the fast lane "
                "(the reconciler re-pushes from the ledger)"
            )
        if not facts["last_bgsave_ok"]:
            log.warning("Redis reports its last background save failed")
