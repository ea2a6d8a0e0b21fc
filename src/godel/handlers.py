"""Handlers: the `@handler` decorator, plugin loading, and the Registry each Runtime owns.

Two kinds of handler:
- plain (`@handler("billing.*")`): an async function given the Event, run outside any
  transaction. Delivery is at-least-once, so it should use `event.id` to be idempotent.
- transactional (`@handler("agent.*", transactional=True)`): a sync function given the
  SQLAlchemy Connection and the Event, run inside the transaction that marks the event
  processed: its database effect happens exactly once.

`@handler` only marks the function; nothing is registered at import. A Runtime builds its own
Registry from the built-ins and the modules named in GODEL_HANDLERS (each scanned for marked
functions), so two Runtimes in one process never see each other's handlers.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from godel.errors import ConfigError
from godel.event import Event

AsyncHandler = Callable[[Event], Awaitable[None]]
TxHandler = Callable[[Any, Event], None]  # (sqlalchemy Connection, Event)
Matched = tuple[list[AsyncHandler], list[TxHandler]]
_MARK = "__godel_handlers__"
log = logging.getLogger("godel.handlers")
MATCH_CACHE_TYPES = 4096  # event types whose handler lists are remembered (LRU)
UNHANDLED_TYPES_KEPT = 1000  # event types seen with no handler, for the log and the page


@dataclass(frozen=True, slots=True)
class Registered:
    pattern: str
    fn: Callable[..., Any]
    transactional: bool


def handler(
    pattern: str, *, transactional: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as the handler of event types matching `pattern` (fnmatch)."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        marks: list[tuple[str, bool]] = list(getattr(fn, _MARK, ()))
        marks.append((pattern, transactional))
        setattr(fn, _MARK, tuple(marks))
        return fn

    return mark


class Registry:
    """Handlers by event-type pattern (fnmatch: `agent.*`, `*`)."""

    def __init__(self, handlers: Iterable[Registered] = ()) -> None:
        self._handlers: list[Registered] = list(handlers)
        # Bounded: clients choose event types, and a cache of every type ever seen would grow
        # without limit.
        self._cache: OrderedDict[str, Matched] = OrderedDict()
        self.unhandled: dict[str, int] = {}  # event type -> events seen with no handler

    def add(self, pattern: str, fn: Callable[..., Any], transactional: bool = False) -> None:
        entry = Registered(pattern, fn, transactional)
        if entry not in self._handlers:
            self._handlers.append(entry)
            self._cache.clear()

    def add_module(self, module: ModuleType) -> int:
        """Register every function of `module` marked with `@handler`; returns how many."""
        found = 0
        for value in list(vars(module).values()):
            for pattern, transactional in getattr(value, _MARK, ()):
                self.add(pattern, value, transactional)
                found += 1
        return found

    def match(self, event_type: str) -> Matched:
        found = self._cache.get(event_type)
        if found is not None:
            self._cache.move_to_end(event_type)
            return found
        hits = [h for h in self._handlers if fnmatch.fnmatchcase(event_type, h.pattern)]
        found = (
            [h.fn for h in hits if not h.transactional],
            [h.fn for h in hits if h.transactional],
        )
        self._cache[event_type] = found
        if len(self._cache) > MATCH_CACHE_TYPES:
            self._cache.popitem(last=False)
        return found

    def patterns(self) -> list[str]:
        return [h.pattern for h in self._handlers]

    def describe(self) -> list[str]:
        """One line per handler: pattern, function, kind (for the start-up log)."""
        return [
            f"{h.pattern} -> {h.fn.__module__}.{h.fn.__qualname__}"
            + (" (transactional)" if h.transactional else "")
            for h in self._handlers
        ]

    def first_unhandled(self, event_type: str) -> bool:
        """Count an event no handler matched; True the first time its type is seen (the
        caller logs it). Bounded: past UNHANDLED_TYPES_KEPT types only known ones count."""
        seen = self.unhandled.get(event_type)
        if seen is None and len(self.unhandled) >= UNHANDLED_TYPES_KEPT:
            return False
        self.unhandled[event_type] = (seen or 0) + 1
        return seen is None

    def load_plugins(self, modules: Iterable[str]) -> None:
        """Import the modules named in GODEL_HANDLERS and register their handlers."""
        for name in modules:
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise ConfigError(f"invalid GODEL_HANDLERS: cannot import {name!r}: {exc}") from exc
            except Exception as exc:  # a plugin's own bug: name it in one line
                raise ConfigError(
                    f"invalid GODEL_HANDLERS: {name!r} raised on import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            found = self.add_module(module)
            log.info("handler module %s loaded: %d handler(s)", name, found)
            if not found:
                log.warning("handler module %s has no @godel.handler functions", name)


def default_registry(plugin_modules: Iterable[str] = ()) -> Registry:
    """The built-in handlers plus the plugins: what `godel serve` and `godel worker` run."""
    from godel.store.agents import apply_agent_event

    registry = Registry([Registered("agent.*", apply_agent_event, transactional=True)])
    registry.load_plugins(plugin_modules)
    return registry
