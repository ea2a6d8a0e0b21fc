"""Godel: the control plane API of an AI-agent platform.

The public Python surface: `handler` marks event handlers, `Producer` publishes events
without an HTTP hop, `Event` is what handlers receive. They load on first use, so the CLI
(`import godel.cli`) starts without the database and Redis libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from godel.event import Event
    from godel.handlers import handler
    from godel.producer import Producer

__all__ = ["Event", "Producer", "handler"]
__version__ = "0.1.0"

_EXPORTS = {"Event": "godel.event", "handler": "godel.handlers", "Producer": "godel.producer"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'godel' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
