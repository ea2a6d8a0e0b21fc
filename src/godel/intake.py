"""Client JSON -> Events: the validation every ingest path (HTTP, Producer) shares."""

from __future__ import annotations

import re
from typing import Any

import orjson

from godel.errors import InvalidEvent
from godel.event import Event, new_id

TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
MAX_NAME_LEN = 128
EVENT_FIELDS = frozenset({"type", "id", "agent_id", "payload"})


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
    from_client = event_id is not None
    event_id = _check_name("id", event_id, ID_RE) if from_client else new_id()
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
        id_from_client=from_client,
    )


def parse_body(body: Any, max_payload_bytes: int, max_batch: int) -> list[Event]:
    """A request body is one event or {"events": [...]}."""
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
