"""Classification: which redis-py errors mean "Redis cannot take writes now".

    reason        what Redis said / did                                    raised as
    connection    refused, reset, closed, DNS failure; no cluster node     RedisConnectionLost
                  reachable
    tls           the TLS handshake failed (certificate not trusted, not   RedisConnectionLost
                  a TLS port)
    pool          every pooled connection is in use (MaxConnectionsError)  RedisConnectionLost
    timeout       no answer within the socket timeout (hung or stopped)    RedisTimeout
    loading       LOADING: the dataset is still being loaded               RedisRefusingWrites
    oom           OOM command not allowed when used memory > 'maxmemory'   RedisRefusingWrites
    misconf       MISCONF: a background save failed, writes are stopped    RedisRefusingWrites
    readonly      READONLY: we are talking to a replica (failover); behind RedisRefusingWrites
                  Sentinel "The previous master is now a slave"
    masterdown    MASTERDOWN: a replica lost its master; behind Sentinel,  RedisRefusingWrites
                  no Sentinel names a healthy master (failover under way)
    failover      a Sentinel announced +switch-master (set by the Link)    RedisRefusingWrites
    clusterdown   CLUSTERDOWN / TRYAGAIN; the {godel} slot not covered;    RedisRefusingWrites
                  redirections exhausted (ClusterError)
    unblocked     UNBLOCKED: a blocking call was cut by a role change      RedisRefusingWrites
    busy          BUSY: a script is running too long                       RedisRefusingWrites
    auth          NOAUTH, WRONGPASS, NOPERM (the ACL lacks a command or    RedisAuthFailed
                  key); also when every Sentinel or cluster node said so

Anything else from Redis is a bug in Godel, not an outage: `outage()` returns None for it
(a CROSSSLOT error, say). This is the only module that looks at redis.exceptions.
"""

from __future__ import annotations

import re

from redis import exceptions as rex
from redis.asyncio.sentinel import MasterNotFoundError

from godel.errors import (
    RedisAuthFailed,
    RedisConnectionLost,
    RedisRefusingWrites,
    RedisTimeout,
    RedisUnavailable,
)

# What a Redis call can raise: redis-py's errors (RedisClusterException is not one of them),
# asyncio's timeouts, socket errors.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    rex.RedisError,
    rex.RedisClusterException,
    OSError,
)

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
    (rex.MaxConnectionsError, "pool"),
    (rex.SlotNotCoveredError, "clusterdown"),
    (rex.BusyLoadingError, "loading"),
    (rex.ReadOnlyError, "readonly"),
    (rex.OutOfMemoryError, "oom"),
    (rex.MasterDownError, "masterdown"),
    (rex.ClusterDownError, "clusterdown"),
    (rex.TryAgainError, "clusterdown"),
    (rex.ClusterError, "clusterdown"),  # MOVED/ASK/TRYAGAIN without end ("TTL exhausted")
    (rex.AuthenticationError, "auth"),
    (rex.AuthorizationError, "auth"),
    (rex.NoPermissionError, "auth"),
    (rex.TimeoutError, "timeout"),
    (TimeoutError, "timeout"),
)

_KINDS: dict[str, type[RedisUnavailable]] = {
    "connection": RedisConnectionLost,
    "tls": RedisConnectionLost,
    "pool": RedisConnectionLost,
    "timeout": RedisTimeout,
    "auth": RedisAuthFailed,
}


def classify(exc: BaseException) -> str | None:
    """The outage reason for a Redis error, or None when it is not an outage."""
    for cls, reason in _CLASS_REASONS:
        if isinstance(exc, cls):
            return reason
    if isinstance(exc, rex.RedisClusterException):
        return _cluster_reason(exc)
    if isinstance(exc, rex.ConnectionError | ConnectionError | OSError):
        return _connection_reason(exc)
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


def _connection_reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if "ssl" in text or "certificate" in text:
        return "tls"
    if "auth" in text:  # also every Sentinel refusing us, listed in MasterNotFoundError
        return "auth"
    if isinstance(exc, MasterNotFoundError):
        return "masterdown"
    if "previous master is now a slave" in text:  # READONLY, as redis-py's Sentinel says it
        return "readonly"
    return "connection"


def _cluster_reason(exc: rex.RedisClusterException) -> str | None:
    """RedisCluster wraps what the nodes said: "cannot be connected" from the error of the
    last node tried (its __cause__), "Cluster mode is not enabled" around a refused CLUSTER
    SLOTS (NOPERM, say: its __context__)."""
    inner = exc.__cause__ or exc.__context__
    if inner is not None and inner is not exc:
        reason = classify(inner)
        if reason is not None:
            return reason
    text = str(exc)
    if "cannot be connected" in text:
        return "connection"
    if "not covered" in text:
        return "clusterdown"
    return None  # cross-slot keys and friends: a bug in Godel, not an outage


def outage(exc: BaseException) -> RedisUnavailable | None:
    """The typed RedisUnavailable for an outage error, or None when it is not one."""
    reason = classify(exc)
    if reason is None:
        return None
    kind = _KINDS.get(reason, RedisRefusingWrites)
    return kind(reason, f"{type(exc).__name__}: {exc}")
