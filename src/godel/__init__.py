"""Godel: the control plane API of an AI-agent platform.

The public Python surface: `handler` registers event handlers, `Producer` publishes events
without an HTTP hop, `Event` is what handlers receive.
"""

from __future__ import annotations

from godel.events import Event
from godel.handlers import handler
from godel.producer import Producer

__all__ = ["Event", "Producer", "handler"]
__version__ = "0.1.0"
