"""POST/GET /api/v1/events: ingest and the ledger's view of each event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.routing import Route

from godel.api.deps import api_state, runtime
from godel.api.errors import ORJSONResponse, error
from godel.errors import InvalidEvent, NotFound
from godel.event import Status
from godel.fastlane.link import try_call
from godel.intake import parse_body
from godel.runtime import Runtime
from godel.store import ledger

router = APIRouter(prefix="/api/v1/events", tags=["events"])
PUBLIC_FIELDS = (
    "id",
    "seq",
    "type",
    "agent_id",
    "status",
    "attempts",
    "last_error",
    "dispatched",
    "created_at",
    "updated_at",
    "processed_at",
)


@router.post("", status_code=202)
async def post_events(request: Request) -> ORJSONResponse:
    """Accept one event or {"events": [...]}; 202 only once the ledger has committed.

    Documented here; served by `accept_events`, which `install_fast_path` routes first."""
    return await accept_events(request)


async def accept_events(request: Request) -> ORJSONResponse:
    rt = api_state(request.app).rt
    s = rt.settings
    limit = s.max_payload_bytes * min(s.max_batch_events, 64) + 65536
    body = await request.body()
    if len(body) > limit:
        raise InvalidEvent(f"request body is {len(body)} bytes; the limit is {limit}", 413)
    content_type = request.headers.get("content-type", "application/json")
    if "json" not in content_type:
        raise InvalidEvent("send the event as application/json", 415)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _bad_json(str(exc))
    events = parse_body(data, s.max_payload_bytes, s.max_batch_events)
    ack = await rt.ingest.submit(events)
    content: dict[str, Any] = {
        "ids": ack.ids,
        "accepted": len(ack.ids),
        "mode": ack.mode,
        "duplicates": ack.duplicates,
    }
    if len(ack.ids) == 1:
        content["id"] = ack.ids[0]
    return ORJSONResponse(content, status_code=202)


def install_fast_path(app: FastAPI) -> None:
    """Serve POST /api/v1/events by a plain Starlette route placed first: FastAPI's
    per-request dependency machinery cost more than the ingest itself (profiled)."""
    app.router.routes.insert(0, Route("/api/v1/events", accept_events, methods=["POST"]))


def _bad_json(detail: str) -> ORJSONResponse:
    return error(400, f"malformed JSON: {detail}", "invalid_json")


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidEvent("'since' must be epoch seconds or an ISO 8601 time", 400) from None


def public(row: dict[str, Any], with_payload: bool = True) -> dict[str, Any]:
    out = {k: row.get(k) for k in PUBLIC_FIELDS}
    out["dispatched"] = bool(out["dispatched"])
    if with_payload:
        out["payload"] = orjson.loads(row["payload"])
    return out


@router.get("")
async def list_events(
    rt: Runtime = Depends(runtime),
    type: str | None = None,
    agent_id: str | None = None,
    status: str | None = None,
    since: str | None = None,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The ledger, oldest first; pass `next_cursor` back as `cursor` for the next page."""
    if status is not None and status not in set(Status):
        raise InvalidEvent(f"'status' must be one of {', '.join(Status)}", 400)
    query = ledger.EventQuery(
        type=type, agent_id=agent_id, status=status, since=_since(since), after=cursor, limit=limit
    )
    rows = await rt.db.read(ledger.list_events, query)
    next_cursor = rows[-1]["seq"] if len(rows) == limit else None
    return {"events": [public(r, with_payload=False) for r in rows], "next_cursor": next_cursor}


@router.get("/{event_id}")
async def get_event(event_id: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    row = await rt.db.read(ledger.get_event, event_id)
    if row is None:
        raise NotFound(f"no event with id {event_id!r}")
    out = public(row)
    if row["status"] == Status.QUEUED and rt.link.connected:
        holder = await try_call(rt.lane.processing_holder(event_id), None)
        if holder:
            out["status"] = Status.PROCESSING
            out["worker"] = holder
    return out
