"""GET /api/v1/history: the dashboard's charts for a new tab (see `godel.history`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from godel.api.auth import require
from godel.api.deps import runtime
from godel.credentials import Scope
from godel.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["stream"])


@router.get("/history", dependencies=[Depends(require(Scope.READ))])
async def history(
    rt: Runtime = Depends(runtime),
    since: Annotated[
        float | None, Query(ge=0, description="Only samples taken after this epoch time.")
    ] = None,
) -> dict[str, Any]:
    """The last hour of samples (every GODEL_HISTORY_INTERVAL_S), as columns: `t` and one
    list per series in `series`; null where a figure was unknown (Redis or the ledger away).
    Kept in this API process's memory: empty after a restart, and each instance has its
    own."""
    return rt.history.as_dict(since)
