"""Health and metrics endpoints: liveness and readiness are open (probes carry no
credential), /health is `read`, /metrics is open unless GODEL_METRICS_REQUIRE_AUTH."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from godel.api.auth import metrics_access, require
from godel.api.deps import runtime
from godel.api.errors import ORJSONResponse
from godel.credentials import Scope
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


@router.get("/health", dependencies=[Depends(require(Scope.READ))])
async def health(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return (await rt.health()).as_dict()


@router.get("/metrics", dependencies=[Depends(metrics_access)])
async def metrics_endpoint(rt: Runtime = Depends(runtime)) -> Response:
    try:
        await rt.maintenance.refresh_gauges()
    except GodelError:
        pass  # serve the last values; /health says what is wrong
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
