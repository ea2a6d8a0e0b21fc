"""POST/GET /api/v1/events: ingest and the ledger's view of each event."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Route

from godel import metrics
from godel.api.auth import authorize, require
from godel.api.deps import api_state, runtime
from godel.api.errors import ORJSONResponse
from godel.api.limits import check_json
from godel.credentials import Scope
from godel.errors import InvalidEvent, NotFound, RateLimited
from godel.event import Event, Status
from godel.fastlane.link import try_call
from godel.intake import ID_RE, MAX_DEPTH, MAX_NAME_LEN, TYPE_RE, load_json, parse_body
from godel.runtime import Runtime
from godel.store import ledger

router = APIRouter(prefix="/api/v1/events", tags=["events"])
SEQ_MAX = 2**63 - 1  # ledger sequence numbers are signed 64-bit
Cursor = Annotated[
    int | None,
    Query(ge=0, le=SEQ_MAX, description="A `next_cursor` from the previous page (a ledger seq)."),
]
PUBLIC_FIELDS = (
    "id",
    "seq",
    "type",
    "agent_id",
    "status",
    "attempts",
    "last_error",
    "dispatched",
    "lane",
    "created_at",
    "updated_at",
    "available_at",
    "processed_at",
)


class EventIn(BaseModel):
    """One event. `id` is an idempotency key: sent again with the same body it is a
    duplicate (202, listed in `duplicates`); with a different body, 409."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=TYPE_RE.pattern, max_length=MAX_NAME_LEN)
    id: str | None = Field(default=None, pattern=ID_RE.pattern, max_length=MAX_NAME_LEN)
    agent_id: str | None = Field(default=None, pattern=ID_RE.pattern, max_length=MAX_NAME_LEN)
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description=f"A JSON object of at most GODEL_MAX_PAYLOAD_BYTES (serialised, UTF-8), "
        f"nested at most {MAX_DEPTH} levels, integers within signed 64 bits, no NUL. An "
        "`agent.*` event's `status` must match ^[a-z_]{1,32}$ and its `name` be at most "
        "256 characters.",
    )


class EventBatch(BaseModel):
    """Up to GODEL_MAX_BATCH_EVENTS events, accepted or refused whole."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


class Accepted(BaseModel):
    """The ledger has committed every event of the request."""

    ids: list[str] = Field(description="The events' ids, in request order.")
    accepted: int = Field(description="Distinct events stored by this request.")
    duplicates: list[str] = Field(description="Sendings that stored nothing new.")
    mode: str = Field(description="redis, or fallback (Redis away: the ledger carries them)")
    id: str | None = Field(default=None, description="The id, when one event was sent.")


BODY_DOC = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/EventIn"},
                    {"$ref": "#/components/schemas/EventBatch"},
                ]
            }
        }
    },
}


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    dependencies=[Depends(require(Scope.PUBLISH))],
    openapi_extra={"requestBody": BODY_DOC},
)
async def post_events(request: Request) -> ORJSONResponse:
    """Accept one event or {"events": [...]}; 202 only once the ledger has committed.

    Documented here; served by `accept_events`, which `install_fast_path` routes first."""
    return await accept_events(request)


async def accept_events(request: Request) -> ORJSONResponse:
    await authorize(request, Scope.PUBLISH)  # first: nothing is read for a stranger
    rt = api_state(request.app).rt
    s = rt.settings
    events: list[Event] = []
    try:
        check_json(request.headers.get("content-type"))
        data = load_json(await request.body())
        events = parse_body(data, s.max_payload_bytes, s.max_batch_events)
        await rt.limiter.admit(events, _key_name(request))
        ack = await rt.ingest.submit(events)
    except (InvalidEvent, RateLimited) as exc:
        metrics.EVENTS_REFUSED.labels(refusal_reason(exc)).inc(len(events) or 1)
        if isinstance(exc, RateLimited) and s.rate_limit_hold_ms > 0:
            # Held, not served: a storm's closed loop (resend on each 429) then sends one
            # request per connection per hold, and the event loop stays with other agents.
            await asyncio.sleep(min(s.rate_limit_hold_ms / 1000, exc.retry_after_s))
        raise
    content: dict[str, Any] = {
        "ids": ack.ids,
        "accepted": ack.accepted,
        "mode": ack.mode,
        "duplicates": ack.duplicates,
    }
    if len(ack.ids) == 1:
        content["id"] = ack.ids[0]
    return ORJSONResponse(content, status_code=202)


def _key_name(request: Request) -> str | None:
    principal = getattr(request.state, "principal", None)
    name = getattr(principal, "name", None)
    return name if isinstance(name, str) else None


def refusal_reason(exc: InvalidEvent | RateLimited) -> str:
    """The `reason` label of godel_events_refused_total."""
    if isinstance(exc, RateLimited):
        return f"rate_limit_{exc.limit}"
    return {409: "conflict", 413: "too_large", 415: "unsupported_media_type"}.get(
        exc.status, "invalid"
    )


def install_fast_path(app: FastAPI) -> None:
    """Serve POST /api/v1/events by a plain Starlette route placed first: FastAPI's
    per-request dependency machinery cost more than the ingest itself (profiled)."""
    app.router.routes.insert(0, Route("/api/v1/events", accept_events, methods=["POST"]))


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise InvalidEvent("'since' must be a finite time", 400)
        return seconds
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        raise InvalidEvent("'since' must be epoch seconds or an ISO 8601 time", 400) from None


def public(row: dict[str, Any], with_payload: bool = True) -> dict[str, Any]:
    out = {k: row.get(k) for k in PUBLIC_FIELDS}
    out["dispatched"] = bool(out["dispatched"])
    if with_payload:
        out["payload"] = orjson.loads(row["payload"])
    return out


@router.get("", dependencies=[Depends(require(Scope.READ))])
async def list_events(
    rt: Runtime = Depends(runtime),
    type: str | None = None,
    agent_id: str | None = None,
    status: str | None = None,
    since: str | None = None,
    cursor: Cursor = None,
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


@router.get("/{event_id}", dependencies=[Depends(require(Scope.READ))])
async def get_event(event_id: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    row = await rt.db.read(ledger.get_event, event_id)
    if row is None:
        raise NotFound(f"no event with id {event_id!r}")
    out = public(row)
    if row["status"] == Status.PROCESSING and row.get("claimed_by"):
        out["worker"] = row["claimed_by"]  # a ledger claim (fallback)
    if row["status"] == Status.QUEUED and rt.link.connected:
        holder = await try_call(rt.lane.processing_holder(event_id), None)
        if holder:
            out["status"] = Status.PROCESSING
            out["worker"] = holder
    return out
