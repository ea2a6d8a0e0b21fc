"""GET /api/v1/workers: the fleet's workers, from the roster every worker writes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from godel.api.auth import require
from godel.api.deps import runtime
from godel.credentials import Scope
from godel.pipeline.roster import LISTED_S
from godel.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["workers"])


@router.get("/workers", dependencies=[Depends(require(Scope.READ))])
async def list_workers(
    rt: Runtime = Depends(runtime),
    listed_s: Annotated[
        float,
        Query(
            gt=0,
            le=7 * 24 * 3600,
            description="List stopped and silent workers heard of this many seconds ago.",
        ),
    ] = LISTED_S,
) -> dict[str, Any]:
    """Every worker of every process sharing this ledger: `status` (`alive`; `silent`: no
    heartbeat for three periods: busy in one long batch, hung, or killed; `stopped`; or
    `leased`: a Redis lease without a roster row), `started_at`, `heartbeat_at`,
    `processed` (since it started), and what it holds: `held_redis` (its processing list;
    null while Redis does not answer) and `held_ledger` (ledger claims, in fallback)."""
    return await rt.roster.report(listed_s)
