"""The retry policy: exponential backoff per attempt, dead once attempts run out."""

from __future__ import annotations

import time
import traceback

from godel.config import Settings
from godel.event import Event
from godel.store.ledger import Failure

# Where a database error's message goes on to quote the statement and its parameters
# (SQLAlchemy appends both): the event's data must not land in `last_error`, which
# GET /api/v1/events serves.
_QUOTES_DATA = ("[SQL:", "[parameters:", "(Background on this error", "DETAIL:")
ERROR_TEXT_MAX = 500
TRACEBACK_MAX = 16_000


def error_text(exc: BaseException) -> str:
    """What `last_error` records of a handler's exception: its class and the first line
    of its message, without any quoted statement or parameters."""
    message = str(exc).split("\n", 1)[0]
    for marker in _QUOTES_DATA:
        message = message.split(marker, 1)[0]
    return f"{type(exc).__name__}: {message.strip()}"[:ERROR_TEXT_MAX]


def stack_text(exc: BaseException) -> str:
    """The stack where the handler raised: its frames (file, line, function, source line)
    and the error line, never the messages of chained errors (they may quote data)."""
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    text = "Traceback (most recent call last):\n" + "".join(frames) + error_text(exc)
    return text[-TRACEBACK_MAX:]


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
            error=error_text(exc),
            attempts=attempts,
            dead=attempts >= self.max_attempts,
            available_at=(now if now is not None else time.time()) + self.backoff_s(attempts),
            traceback=stack_text(exc),
        )
