"""Client JSON -> Events: the validation every ingest path (HTTP, Producer) shares.

Whatever is accepted here can be stored, served and listed again:

- nesting at most MAX_DEPTH levels (orjson refuses to serialise past 254, PostgreSQL's
  and browsers' parsers have their own limits: one bound for all of them, checked here);
- integers within signed 64 bits (orjson reads bigger ones as lossy floats, Python's json
  as ints orjson cannot write back);
- no NUL character anywhere (PostgreSQL text cannot hold it);
- sizes counted in encoded UTF-8 bytes, names matched whole (`re.fullmatch`).

The checks cost almost nothing for ordinary input: the serialised text is screened first
(bracket count, `\\u0000`, runs of 19+ digits) and the value is walked only when the screen
says it might break a rule.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from godel.errors import IdConflict, InvalidEvent
from godel.event import Event, new_id

# Anchored for the schema's `pattern` users (OpenAPI, Query); matched with `fullmatch`, so a
# trailing newline (which `$` alone lets through) is refused too.
TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
AGENT_STATUS_RE = re.compile(r"^[a-z_]{1,32}$")
MAX_NAME_LEN = 128
MAX_AGENT_NAME_LEN = 256
MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EVENT_FIELDS = frozenset({"type", "id", "agent_id", "payload"})
# Digits in a row that may spell an integer beyond 64 bits (2^63 has 19 digits).
_LONG_DIGITS = re.compile(r"\d{19,}")
_LONG_DIGITS_B = re.compile(rb"\d{19,}")


def _check_name(kind: str, value: Any, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(f"'{kind}' must be a string")
    if not value or len(value) > MAX_NAME_LEN or not pattern.fullmatch(value):
        raise InvalidEvent(
            f"'{kind}' {value[:MAX_NAME_LEN]!r} is not valid: use letters, digits and "
            f"{'dots between parts' if kind == 'type' else '._:-'}, at most {MAX_NAME_LEN} chars"
        )
    return value


def _check_scalar(item: Any, what: str) -> None:
    if isinstance(item, str):
        if "\x00" in item:
            raise InvalidEvent(f"{what} holds a NUL character (\\u0000)")
    elif isinstance(item, bool) or item is None:
        return
    elif isinstance(item, int):
        if not INT64_MIN <= item <= INT64_MAX:
            raise InvalidEvent(f"{what} holds an integer outside signed 64 bits")
    elif isinstance(item, float):
        if not math.isfinite(item):
            raise InvalidEvent(f"{what} holds a number JSON cannot represent")
    else:
        raise InvalidEvent(f"{what} holds a {type(item).__name__}, not JSON")


def check_value(value: Any, what: str) -> None:
    """Refuse (422) a JSON value nested deeper than MAX_DEPTH, holding an integer outside
    signed 64 bits, a non-finite float or a NUL character (in a string or a key)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            _check_scalar(item, what)
            continue
        if depth > MAX_DEPTH:
            raise InvalidEvent(f"{what} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)
            continue
        for key, sub in item.items():
            if not isinstance(key, str):
                raise InvalidEvent(f"{what} has a key that is not a string")
            _check_scalar(key, what)
            stack.append((sub, depth + 1))


def might_break_rules(text: str) -> bool:
    """Cheap screen of serialised JSON: False means `check_value` would pass."""
    return (
        text.count("{") + text.count("[") > MAX_DEPTH
        or "\\u0000" in text
        or _LONG_DIGITS.search(text) is not None
    )


def encode(value: Any, what: str) -> str:
    """`value` as JSON text, checked (see `check_value`)."""
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # an int past 64 bits, too deep, not JSON
        check_value(value, what)
        raise InvalidEvent(f"{what} cannot be stored as JSON: {exc}") from None
    if might_break_rules(text):
        check_value(value, what)
    return text


def _reject_big_int(literal: str) -> int:
    value = int(literal)
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidEvent("the body holds an integer outside signed 64 bits")
    return value


def _reject_constant(name: str) -> Any:
    raise InvalidEvent(f"malformed JSON: {name} is not a JSON value", 400, "invalid_json")


def load_json(body: bytes) -> Any:
    """Parse a request body (orjson), refusing what `check_value` refuses that orjson
    would only get wrong silently: integers past 64 bits (read as floats)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise InvalidEvent(f"the body is nested deeper than {MAX_DEPTH} levels") from None
        raise InvalidEvent(f"malformed JSON: {exc}", 400, "invalid_json") from None
    if _LONG_DIGITS_B.search(body) is not None:
        # Rare: re-read with exact integers. Depth first, so Python's recursive parser
        # never meets more than MAX_DEPTH levels.
        if body.count(b"{") + body.count(b"[") > MAX_DEPTH:
            check_value(data, "the body")
        json.loads(body, parse_int=_reject_big_int, parse_constant=_reject_constant)
    return data


def _check_agent_fields(payload: dict[str, Any]) -> None:
    """`agent.*` payloads set the agent's row: validated as POST /api/v1/agents does."""
    status = payload.get("status")
    if status is not None and (
        not isinstance(status, str) or not AGENT_STATUS_RE.fullmatch(status)
    ):
        raise InvalidEvent("'payload.status' of an agent event must match [a-z_]{1,32}")
    name = payload.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_AGENT_NAME_LEN):
        raise InvalidEvent(
            f"'payload.name' of an agent event must be a string of at most "
            f"{MAX_AGENT_NAME_LEN} characters"
        )


def parse_event(raw: Any, max_payload_bytes: int) -> Event:
    """Validate one event object as sent by a client and build the Event."""
    if not isinstance(raw, dict):
        raise InvalidEvent("an event must be a JSON object")
    unknown = set(raw) - EVENT_FIELDS
    if unknown:
        shown = ", ".join(k[:40] for k in sorted(unknown)[:5])
        raise InvalidEvent(f"unknown field(s): {shown}")
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
    payload_json = encode(payload, "'payload'")
    size = len(payload_json) if payload_json.isascii() else len(payload_json.encode())
    if size > max_payload_bytes:
        raise InvalidEvent(f"payload is {size} bytes; the limit is {max_payload_bytes}", 413)
    if event_type.startswith("agent."):
        _check_agent_fields(payload)
    return Event(
        id=event_id,
        type=event_type,
        payload_json=payload_json,
        agent_id=agent_id,
        id_from_client=from_client,
    )


def _check_repeats(events: list[Event]) -> None:
    """An id twice in one batch: the same event is a duplicate, a different one a 409."""
    first: dict[str, Event] = {}
    conflicts = []
    for ev in events:
        if not ev.id_from_client:
            continue
        seen = first.setdefault(ev.id, ev)
        if seen is not ev and not seen.same_as(ev):
            conflicts.append(ev)
    if conflicts:
        raise IdConflict(conflicts)


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
        events = [parse_event(item, max_payload_bytes) for item in items]
        if len(events) > 1:
            _check_repeats(events)
        return events
    return [parse_event(body, max_payload_bytes)]
