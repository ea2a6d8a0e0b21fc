"""Godel's exception tree. Third-party errors are translated at one boundary each:
`fastlane.errors` for redis-py, `store.database` for the database drivers.

    GodelError
    ├── ConfigError            the configuration cannot be used
    ├── InvalidEvent           a client sent something we refuse (carries its HTTP status)
    │   └── IdConflict         an event id already names a different event (409)
    ├── RateLimited            over an agent's or a key's rate (429, Retry-After)
    ├── NotFound
    ├── Conflict               the object exists already (a key name taken)
    ├── LedgerUnavailable      the SQL ledger could not commit or answer
    │   └── LedgerRefused      it refused us: password, user, pg_hba, sslmode, no database
    └── RedisUnavailable       Redis cannot take writes now (`reason` is a metric label)
        ├── FastLaneClosed     the Link is not connected: nothing was sent
        ├── RedisConnectionLost   refused, reset, closed, DNS
        ├── RedisTimeout          no answer in time (hung, stopped or partitioned server)
        ├── RedisRefusingWrites   LOADING, OOM, MISCONF, READONLY, MASTERDOWN, CLUSTERDOWN,
        │                         UNBLOCKED, BUSY: the server is there but cannot take writes
        └── RedisAuthFailed       NOAUTH, WRONGPASS, NOPERM: fix the credentials, not the server
"""

from __future__ import annotations

from typing import Any


class GodelError(Exception):
    """Root of every error Godel raises on purpose."""


class ConfigError(GodelError):
    """The configuration cannot be used; the message names the variable."""


class InvalidEvent(GodelError):
    """An event failed validation; `status` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 422, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # the answer's `error`; None: by status


class IdConflict(InvalidEvent):
    """Event ids already used for a different type, agent or payload; `events` are the
    Events (as sent) that conflict."""

    def __init__(self, events: list[Any]) -> None:
        ids = sorted({ev.id for ev in events})
        shown = ", ".join(repr(i) for i in ids[:5]) + (" ..." if len(ids) > 5 else "")
        super().__init__(
            f"id {shown} already names a different event (type, agent_id or payload differ); "
            "an id may be sent again only with the same body",
            409,
        )
        self.events = events
        self.ids = ids


class RateLimited(GodelError):
    """Over a rate limit: `limit` is `agent` or `key`, `name` the agent id or key name."""

    def __init__(self, limit: str, name: str, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.limit = limit
        self.name = name
        self.retry_after_s = retry_after_s


class NotFound(GodelError):
    """The requested object does not exist."""


class Conflict(GodelError):
    """The object exists already."""


class LedgerUnavailable(GodelError):
    """The SQL ledger could not commit: nothing was acknowledged."""


class LedgerRefused(LedgerUnavailable):
    """The database refused the connection: a configuration to fix (the password, the user,
    pg_hba, sslmode, the database name), not an outage to wait out."""


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
