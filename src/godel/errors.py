"""Godel's exception tree. Third-party errors are translated at one boundary each:
`fastlane.errors` for redis-py, `store.database` for the database drivers.

    GodelError
    ├── ConfigError            the configuration cannot be used
    ├── InvalidEvent           a client sent something we refuse (carries its HTTP status)
    ├── NotFound
    ├── LedgerUnavailable      the SQL ledger could not commit or answer
    └── RedisUnavailable       Redis cannot take writes now (`reason` is a metric label)
        ├── FastLaneClosed     the Link is not connected: nothing was sent
        ├── RedisConnectionLost   refused, reset, closed, DNS
        ├── RedisTimeout          no answer in time (hung, stopped or partitioned server)
        ├── RedisRefusingWrites   LOADING, OOM, MISCONF, READONLY, MASTERDOWN, CLUSTERDOWN,
        │                         UNBLOCKED, BUSY: the server is there but cannot take writes
        └── RedisAuthFailed       NOAUTH, WRONGPASS, NOPERM: fix the credentials, not the server
"""

from __future__ import annotations


class GodelError(Exception):
    """Root of every error Godel raises on purpose."""


class ConfigError(GodelError):
    """The configuration cannot be used; the message names the variable."""


class InvalidEvent(GodelError):
    """An event failed validation; `status` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class NotFound(GodelError):
    """The requested object does not exist."""


class LedgerUnavailable(GodelError):
    """The SQL ledger could not commit: nothing was acknowledged."""


class RedisUnavailable(GodelError):
    """Redis cannot take writes now; `reason` is the classified cause (a metric label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class FastLaneClosed(RedisUnavailable):
    """The Link is in fallback or recovering: the call was not attempted."""


class RedisConnectionLost(RedisUnavailable):
    """The connection was refused, reset or closed."""


class RedisTimeout(RedisUnavailable):
    """Redis did not answer within the socket timeout."""


class RedisRefusingWrites(RedisUnavailable):
    """Redis answers but cannot take writes (loading, out of memory, replica, ...)."""


class RedisAuthFailed(RedisUnavailable):
    """Redis refused our credentials or their permissions."""
