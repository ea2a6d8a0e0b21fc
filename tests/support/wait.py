"""The one way tests, fixtures and the benchmarks wait for something: poll a check until it
holds or a deadline passes. A sync and an async flavour, with one signature, one result
(the monotonic time the check first held) and one error.

Waits are for liveness, never for speed: a timeout says something is broken, so it is
generous, and the poll interval is short (the benchmarks shorten it further, since they
time from the moment the check first held).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

INTERVAL_S = 0.02


def _timed_out(timeout_s: float, what: str, detail: Callable[[], object] | None) -> TimeoutError:
    message = f"timed out after {timeout_s}s waiting for {what}"
    if detail is not None:
        message += f"; {detail()}"
    return TimeoutError(message)


def wait_until(
    check: Callable[[], object],
    timeout_s: float = 30.0,
    what: str = "condition",
    *,
    interval_s: float = INTERVAL_S,
    detail: Callable[[], object] | None = None,
) -> float:
    """Poll `check()` until it is truthy; returns the monotonic time it first was.

    After `timeout_s` raise TimeoutError naming `what` (and `detail()`, when given: the last
    state seen, say). An exception from `check` propagates at once (fail fast)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise _timed_out(timeout_s, what, detail)
        time.sleep(interval_s)


async def wait_until_async(
    check: Callable[[], object],
    timeout_s: float = 30.0,
    what: str = "condition",
    *,
    interval_s: float = INTERVAL_S,
    detail: Callable[[], object] | None = None,
) -> float:
    """`wait_until` for a running event loop. `check` runs in a worker thread, so it may
    block (a query, an HTTP call) without stalling the Godel running on this loop; if it
    returns an awaitable (an `async def` check), that is awaited here."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await asyncio.to_thread(check)
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise _timed_out(timeout_s, what, detail)
        await asyncio.sleep(interval_s)
