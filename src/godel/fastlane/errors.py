"""Classification: which redis-py errors mean "Redis cannot take writes now".

    reason        what Redis said / did                                    raised as
    connection    refused, reset, closed, DNS failure                      RedisConnectionLost
    timeout       no answer within the socket timeout (hung or stopped)    RedisTimeout
    loading       LOADING: the dataset is still being loaded               RedisRefusingWrites
    oom           OOM command not allowed when used memory > 'maxmemory'   RedisRefusingWrites
    misconf       MISCONF: a background save failed, writes are stopped    RedisRefusingWrites
    readonly      READONLY: we are talking to a replica (failover)         RedisRefusingWrites
    masterdown    MASTERDOWN: a replica lost its master                    RedisRefusingWrites
    clusterdown   CLUSTERDOWN / TRYAGAIN                                   RedisRefusingWrites
    unblocked     UNBLOCKED: a blocking call was cut by a role change      RedisRefusingWrites
    busy          BUSY: a script is running too long                       RedisRefusingWrites
    auth          NOAUTH, WRONGPASS, NOPERM                                RedisAuthFailed

Anything else from Redis is a bug in Godel, not an outage: `outage()` returns None for it.
This is the only module that looks at redis.exceptions.
"""

from __future__ import annotations

import re

from redis import exceptions as rex

from godel.errors import (
    RedisAuthFailed,
    RedisConnectionLost,
    RedisRefusingWrites,
    RedisTimeout,
    RedisUnavailable,
)

# What a Redis call can raise: redis-py's errors, asyncio's timeouts, socket errors.
REDIS_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, rex.RedisError, OSError)

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

_KINDS: dict[str, type[RedisUnavailable]] = {
    "connection": RedisConnectionLost,
    "timeout": RedisTimeout,
    "auth": RedisAuthFailed,
}


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


def outage(exc: BaseException) -> RedisUnavailable | None:
    """The typed RedisUnavailable for an outage error, or None when it is not one."""
    reason = classify(exc)
    if reason is None:
        return None
    kind = _KINDS.get(reason, RedisRefusingWrites)
    return kind(reason, f"{type(exc).__name__}: {exc}")
