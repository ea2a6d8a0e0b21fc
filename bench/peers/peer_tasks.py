"""No-op job functions shared by the peer scripts (importable by arq and RQ workers alike)."""

from __future__ import annotations

from typing import Any


async def noop(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """arq job: does nothing, so a drain measures the queue's own overhead."""
    return None


def noop_sync(payload: dict[str, Any]) -> None:
    """RQ job: does nothing, so a drain measures the queue's own overhead."""
    return None
