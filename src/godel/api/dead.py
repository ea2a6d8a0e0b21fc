"""Dead-letter endpoints: summary, list, show (read scope); replay, purge (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from godel.api.auth import require
from godel.api.deps import runtime
from godel.api.events import SEQ_MAX
from godel.credentials import Scope
from godel.intake import MAX_NAME_LEN, TYPE_RE
from godel.pipeline.deadletters import DeadLetters
from godel.runtime import Runtime

# Reading dead letters is `read` (they are events, as GET /api/v1/events shows them);
# replaying and purging them is `admin`.
router = APIRouter(prefix="/admin/dead", tags=["admin"])
READ = [Depends(require(Scope.READ))]
ADMIN = [Depends(require(Scope.ADMIN))]

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


@router.get("", dependencies=READ)
async def summary(dl: DeadLetters = Depends(dead_letters)) -> dict[str, Any]:
    """Dead events per type (ledger) and the Redis dead-list lengths when connected."""
    return await dl.summary()


@router.get("/events", dependencies=READ)
async def list_dead(
    dl: DeadLetters = Depends(dead_letters),
    type: EventType = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[int | None, Query(ge=0, le=SEQ_MAX)] = None,
) -> dict[str, Any]:
    """Dead events oldest first, with payload and last error; pass `next_cursor` back."""
    return await dl.page(type, limit, cursor)


@router.get("/events/{event_id}", dependencies=READ)
async def show_dead(event_id: str, dl: DeadLetters = Depends(dead_letters)) -> dict[str, Any]:
    return await dl.get(event_id)


@router.post("/replay", dependencies=ADMIN)
async def replay(
    dl: DeadLetters = Depends(dead_letters), type: EventType = None, id: EventId = None
) -> dict[str, int]:
    """Queue dead events again with fresh attempts (all, one type, or one `id`; idempotent)."""
    return await dl.replay(type, id)


@router.post("/purge", dependencies=ADMIN)
async def purge(
    dl: DeadLetters = Depends(dead_letters), type: EventType = None, id: EventId = None
) -> dict[str, int]:
    """Discard dead events (all, one type, or one `id`): marked purged in the ledger,
    removed from the Redis lists."""
    return await dl.purge(type, id)
