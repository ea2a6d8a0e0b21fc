"""Handler registry, plugin loading and the built-in handlers.

Two kinds of handler:
- plain (`@handler("billing.*")`): an async function given the Event, run outside any
  transaction. Delivery is at-least-once, so it should use `event.id` to be idempotent.
- transactional (`@handler("agent.*", transactional=True)`): a sync function given the
  SQLAlchemy Connection and the Event, run inside the transaction that marks the event
  processed: its database effect happens exactly once.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from godel.errors import ConfigError
from godel.events import Event

AsyncHandler = Callable[[Event], Awaitable[None]]
TxHandler = Callable[[Connection, Event], None]


@dataclass(frozen=True, slots=True)
class Registered:
    pattern: str
    fn: Callable[..., Any]
    transactional: bool


class Registry:
    """Handlers by event-type pattern (fnmatch: `agent.*`, `*`)."""

    def __init__(self) -> None:
        self._handlers: list[Registered] = []
        self._cache: dict[str, tuple[list[AsyncHandler], list[TxHandler]]] = {}

    def add(self, pattern: str, fn: Callable[..., Any], transactional: bool = False) -> None:
        self._handlers.append(Registered(pattern, fn, transactional))
        self._cache.clear()

    def match(self, event_type: str) -> tuple[list[AsyncHandler], list[TxHandler]]:
        found = self._cache.get(event_type)
        if found is None:
            hits = [h for h in self._handlers if fnmatch.fnmatchcase(event_type, h.pattern)]
            found = (
                [h.fn for h in hits if not h.transactional],
                [h.fn for h in hits if h.transactional],
            )
            self._cache[event_type] = found
        return found

    def patterns(self) -> list[str]:
        return [h.pattern for h in self._handlers]


registry = Registry()


def handler(
    pattern: str, *, transactional: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler for event types matching `pattern`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        registry.add(pattern, fn, transactional)
        return fn

    return register


def load_plugins(modules: list[str]) -> None:
    """Import the plugin modules named in GODEL_HANDLERS; their decorators register them."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"invalid GODEL_HANDLERS: cannot import {name!r}: {exc}") from exc


def install_builtins(target: Registry) -> None:
    from godel.agents import apply_agent_event

    if apply_agent_event not in [h.fn for h in target._handlers]:
        target.add("agent.*", apply_agent_event, transactional=True)
