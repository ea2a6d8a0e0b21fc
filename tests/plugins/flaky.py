"""Test plugin handlers, loaded through GODEL_HANDLERS like a user's module."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import godel
from godel import Event

calls: Counter[str] = Counter()


@godel.handler("test.fail")
async def always_fails(event: Event) -> None:
    calls[event.id] += 1
    raise RuntimeError(f"boom {event.payload.get('n')}")


@godel.handler("test.flaky")
async def fails_twice(event: Event) -> None:
    calls[event.id] += 1
    if calls[event.id] <= 2:
        raise RuntimeError("transient")


@godel.handler("test.slow")
async def slow_while_blocked(event: Event) -> None:
    """Hangs while the file named in the payload exists (a worker stuck mid-event)."""
    block = Path(str(event.payload.get("block_file", "")))
    while block.is_file():
        await asyncio.sleep(0.05)
