"""Godel's exception tree. Third-party errors are translated at one boundary each."""

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


class LedgerUnavailable(GodelError):
    """The SQL ledger could not commit: nothing was acknowledged."""


class RedisUnavailable(GodelError):
    """Redis cannot take writes now; `reason` is the classified cause (a metric label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NotFound(GodelError):
    """The requested object does not exist."""
