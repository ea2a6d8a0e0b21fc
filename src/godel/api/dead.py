"""Dead-letter admin endpoints (bearer token): summary, list, show, replay, purge."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from godel.api.deps import require_admin, runtime
from godel.intake import MAX_NAME_LEN, TYPE_RE
from godel.pipeline.deadletters import DeadLetters
from godel.runtime import Runtime

router = APIRouter(prefix="/admin/dead", tags=["admin"], dependencies=[Depends(require_admin)])

EventType = Annotated[
    str | None,
    Query(
        pattern=TYPE_RE.pattern,
        max_length=MAX_NAME_LEN,
        description="Only this event type (all types when absent).",
    ),
]


EventId = Annotated[
    str | None,
    Query(max_length=MAX_NAME_LEN, description="Only this one dead event (404 if not dead)."),
]


def dead_letters(rt: Runtime = Depends(runtime)) -> DeadLetters:
    return rt.dead_letters


@router.get("")
async def summary(dl: DeadLetters = Depends(dead_letters)) -> dict[str, Any]:
    """Dead events per type (ledger) and the Redis dead-list lengths when connected."""
    return await dl.summary()


@router.get("/events")
async def list_dead(
    dl: DeadLetters = Depends(dead_letters),
    type: EventType = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """Dead events oldest first, with payload and last error; pass `next_cursor` back."""
    return await dl.page(type, limit, cursor)


@router.get("/events/{event_id}")
async def show_dead(event_id: str, dl: DeadLetters = Depends(dead_letters)) -> dict[str, Any]:
    return await dl.get(event_id)


@router.post("/replay")
async def replay(
    dl: DeadLetters = Depends(dead_letters), type: EventType = None, id: EventId = None
) -> dict[str, int]:
    """Queue dead events again with fresh attempts (all, one type, or one `id`; idempotent)."""
    return await dl.replay(type, id)


@router.post("/purge")
async def purge(
    dl: DeadLetters = Depends(dead_letters), type: EventType = None, id: EventId = None
) -> dict[str, int]:
    """Discard dead events (all, one type, or one `id`): marked purged in the ledger,
    removed from the Redis lists."""
    return await dl.purge(type, id)
