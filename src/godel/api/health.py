"""Health and metrics endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from godel.api.deps import runtime
from godel.api.errors import ORJSONResponse
from godel.errors import GodelError
from godel.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(rt: Runtime = Depends(runtime)) -> ORJSONResponse:
    """Ready while the ledger answers: fallback is a working mode, not an outage."""
    ok = await rt.db.ping()
    body = {"ready": ok, "state": rt.link.state.value, "database": "ok" if ok else "unavailable"}
    return ORJSONResponse(body, status_code=200 if ok else 503)


@router.get("/health")
async def health(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return (await rt.health()).as_dict()


@router.get("/metrics")
async def metrics_endpoint(rt: Runtime = Depends(runtime)) -> Response:
    try:
        await rt.maintenance.refresh_gauges()
    except GodelError:
        pass  # serve the last values; /health says what is wrong
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
