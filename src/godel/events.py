"""The Event: what clients send, what the ledger records and what handlers receive."""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from godel.errors import InvalidEvent

TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
MAX_NAME_LEN = 128
EVENT_FIELDS = frozenset({"type", "id", "agent_id", "payload"})


class Status:
    """Ledger status of an event (strings, since they are stored and shown as-is)."""

    QUEUED = "queued"  # accepted, waiting to be claimed
    PROCESSING = "processing"  # claimed by a worker (Redis or ledger claim)
    PROCESSED = "processed"  # done; never processed again
    RETRYING = "retrying"  # failed, waiting for its backoff to pass
    DEAD = "dead"  # attempts exhausted; in godel:queue:dead:<type>
    PURGED = "purged"  # a dead letter an operator threw away; kept in the ledger as a record

    ALL = (QUEUED, PROCESSING, PROCESSED, RETRYING, DEAD, PURGED)
    OPEN = (QUEUED, PROCESSING, RETRYING)


_PROCESS_TAG = os.urandom(6).hex()  # 48 random bits per process: ids from two processes differ
_counter = itertools.count()


def new_id() -> str:
    """A time-ordered id: 48 bits of milliseconds, a random per-process tag and a counter,
    as 34 hex digits. Unique without a syscall per id (ingest makes many)."""
    return f"{time.time_ns() // 1_000_000:012x}{_PROCESS_TAG}{next(_counter) & 0xFFFFFFFFFF:010x}"


@dataclass(slots=True)
class Event:
    """One event. `payload_json` is the payload as stored, so it is serialised once."""

    id: str
    type: str
    payload_json: str
    agent_id: str | None = None
    client_id: bool = False  # the id came from the client (an idempotency key) and may repeat
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    seq: int | None = None

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.payload_json)
        return loaded


def _check_name(kind: str, value: Any, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(f"'{kind}' must be a string")
    if not value or len(value) > MAX_NAME_LEN or not pattern.match(value):
        raise InvalidEvent(
            f"'{kind}' {value[:MAX_NAME_LEN]!r} is not valid: use letters, digits and "
            f"{'dots between parts' if kind == 'type' else '._:-'}, at most {MAX_NAME_LEN} chars"
        )
    return value


def parse_event(raw: Any, max_payload_bytes: int) -> Event:
    """Validate one event object as sent by a client and build the Event."""
    if not isinstance(raw, dict):
        raise InvalidEvent("an event must be a JSON object")
    unknown = set(raw) - EVENT_FIELDS
    if unknown:
        raise InvalidEvent(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "type" not in raw:
        raise InvalidEvent("'type' is required")
    event_type = _check_name("type", raw["type"], TYPE_RE)
    event_id = raw.get("id")
    client_id = event_id is not None
    event_id = _check_name("id", event_id, ID_RE) if client_id else new_id()
    agent_id = raw.get("agent_id")
    if agent_id is not None:
        agent_id = _check_name("agent_id", agent_id, ID_RE)
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        raise InvalidEvent("'payload' must be a JSON object")
    payload_json = orjson.dumps(payload).decode()
    if len(payload_json) > max_payload_bytes:
        raise InvalidEvent(
            f"payload is {len(payload_json)} bytes; the limit is {max_payload_bytes}", status=413
        )
    return Event(
        id=event_id,
        type=event_type,
        payload_json=payload_json,
        agent_id=agent_id,
        client_id=client_id,
    )


def parse_body(body: Any, max_payload_bytes: int, max_batch: int) -> list[Event]:
    """A request body is one event or {"events": [...]}; duplicates within it collapse."""
    if isinstance(body, dict) and "events" in body:
        if set(body) != {"events"}:
            raise InvalidEvent("a batch body has only the field 'events'")
        items = body["events"]
        if not isinstance(items, list) or not items:
            raise InvalidEvent("'events' must be a non-empty list")
        if len(items) > max_batch:
            raise InvalidEvent(f"batch of {len(items)} events; the limit is {max_batch}", 413)
        return [parse_event(item, max_payload_bytes) for item in items]
    return [parse_event(body, max_payload_bytes)]
