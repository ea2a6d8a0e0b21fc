"""godel.store.inserts, the group commit's one statement, against a real SQLite file and a
real PostgreSQL database: only new ids come back, and an id names one event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from godel.errors import IdConflict
from godel.event import Event, Status
from godel.intake import parse_event
from godel.store import inserts, ledger
from godel.store.database import Database


@pytest.fixture
def db(ledger_db: Database) -> Database:
    return ledger_db


def event(event_id: str | None = None, **raw: Any) -> Event:
    """An event as a client sends it: `event_id` is its idempotency key (else a new id)."""
    body = {"type": "t.x", **raw} if event_id is None else {"type": "t.x", "id": event_id, **raw}
    return parse_event(body, 1024)


async def insert(db: Database, evs: Sequence[Event], dispatched: bool = True) -> set[str]:
    new: set[str] = await inserts.commit_events(db, [(e, dispatched) for e in evs])
    return new


async def test_only_new_ids_come_back_within_and_across_batches(db: Database) -> None:
    made = event()  # a server-made id
    assert await insert(db, [event("k-1"), event("k-2"), event("k-1"), made]) == {
        "k-1",
        "k-2",
        made.id,
    }
    assert await insert(db, [event("k-2"), event("k-3"), event("k-3")]) == {"k-3"}
    assert await db.read(ledger.count_by_status) == {Status.QUEUED: 4}


async def test_the_dispatched_flag_is_stored_per_event(db: Database) -> None:
    await insert(db, [event("pushed")])
    await insert(db, [event("held")], dispatched=False)
    assert (await db.read(ledger.get_event, "pushed"))["dispatched"] is True  # type: ignore[index]
    assert (await db.read(ledger.get_event, "held"))["dispatched"] is False  # type: ignore[index]
    assert await db.read(ledger.count_undispatched) == 1


async def test_an_id_sent_again_with_the_same_body_is_a_duplicate(db: Database) -> None:
    first = event("same", agent_id="a", payload={"x": 1, "y": 2})
    assert await insert(db, [first]) == {"same"}
    again = parse_event(
        {"type": "t.x", "id": "same", "agent_id": "a", "payload": {"y": 2, "x": 1}}, 1024
    )
    assert await insert(db, [again]) == set()  # key order is not a different body


@pytest.mark.parametrize("where", ["in the ledger", "earlier in the batch"])
async def test_an_id_reused_for_another_event_rolls_the_batch_back(
    db: Database, where: str
) -> None:
    if where == "in the ledger":
        await insert(db, [event("taken", payload={"n": 1})])
    batch = [event("other"), event("taken", payload={"n": 1}), event("taken", payload={"n": 2})]
    with pytest.raises(IdConflict) as raised:
        await insert(db, batch)
    assert raised.value.ids == ["taken"] and raised.value.status == 409
    assert [e.payload for e in raised.value.events] == [{"n": 2}]
    assert await db.read(ledger.get_event, "other") is None  # nothing of the batch stayed
