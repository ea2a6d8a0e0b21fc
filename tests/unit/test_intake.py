from __future__ import annotations

import pytest

from godel.errors import InvalidEvent
from godel.event import new_id
from godel.intake import parse_body, parse_event


def test_parse_event_fills_id_and_serialises_payload_once() -> None:
    ev = parse_event({"type": "agent.status", "agent_id": "a-1", "payload": {"s": 1}}, 1024)
    assert ev.type == "agent.status" and ev.agent_id == "a-1"
    assert ev.payload_json == '{"s":1}' and ev.payload == {"s": 1}
    assert len(ev.id) == 34 and not ev.id_from_client


def test_ids_are_time_ordered() -> None:
    first, second = new_id(), new_id()
    assert first[:12] <= second[:12]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "a..b"}, "'type'"),
        ({"type": ".a"}, "'type'"),
        ({"type": "a" * 129}, "'type'"),
        ({"type": "a", "id": ""}, "'id'"),
        ({"type": "a", "agent_id": 5}, "'agent_id' must be a string"),
        ({"type": "a", "payload": "x"}, "'payload' must be a JSON object"),
        ({"type": "a", "extra": 1}, "unknown field(s): extra"),
        ({}, "'type' is required"),
        ("text", "must be a JSON object"),
    ],
)
def test_invalid_events_say_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw, 1024)
    assert message in str(err.value) and err.value.status == 422


def test_payload_limit_is_413() -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_event({"type": "a", "payload": {"x": "y" * 100}}, 64)
    assert err.value.status == 413


def test_batches() -> None:
    assert len(parse_body({"events": [{"type": "a"}, {"type": "b"}]}, 1024, 2)) == 2
    with pytest.raises(InvalidEvent) as err:
        parse_body({"events": [{"type": "a"}] * 3}, 1024, 2)
    assert err.value.status == 413
    with pytest.raises(InvalidEvent):
        parse_body({"events": [{"type": "a"}], "more": 1}, 1024, 2)
