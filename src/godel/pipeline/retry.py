"""The retry policy: exponential backoff per attempt, dead once attempts run out."""

from __future__ import annotations

import time

from godel.config import Settings
from godel.event import Event
from godel.store.ledger import Failure


class RetryPolicy:
    """`GODEL_RETRY_MAX_ATTEMPTS` tries; the n-th failure waits base·2^(n-1), capped."""

    def __init__(self, max_attempts: int, backoff_base_ms: int, backoff_max_ms: int) -> None:
        self.max_attempts = max_attempts
        self.backoff_base_ms = backoff_base_ms
        self.backoff_max_ms = backoff_max_ms

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.retry_max_attempts,
            settings.retry_backoff_base_ms,
            settings.retry_backoff_max_ms,
        )

    def backoff_s(self, attempts: int) -> float:
        backoff_ms: int = min(self.backoff_base_ms * 2 ** (attempts - 1), self.backoff_max_ms)
        return backoff_ms / 1000

    def failure(self, event: Event, exc: BaseException, now: float | None = None) -> Failure:
        """The failed attempt to record for `event`: retry later, or dead."""
        attempts = event.attempts + 1
        return Failure(
            event=event,
            error=f"{type(exc).__name__}: {exc}",
            attempts=attempts,
            dead=attempts >= self.max_attempts,
            available_at=(now if now is not None else time.time()) + self.backoff_s(attempts),
        )
