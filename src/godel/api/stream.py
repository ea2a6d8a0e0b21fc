"""GET /api/v1/stream: the live feed behind the dashboard and `godel events tail`.

A text/event-stream with three kinds of message:

    event: link     the Link changed state: sent the moment it happens (and once on connect)
                    {"state", "previous", "since", "reason", "last_error"}
    event: status   every `interval` seconds: GET /health's JSON plus counters, Redis memory,
                    agents, events, workers, the newest history sample and what needs
                    attention (see `godel.api.snapshot.build_snapshot`)
    event: events   ledger rows newer than the cursor, polled every `interval`:
                    {"events": [public fields as in GET /api/v1/events], "cursor": <seq>};
                    the SSE id is the cursor, so an EventSource resumes via Last-Event-ID

Comments (`: heartbeat`) keep idle proxies from closing the connection. One snapshot is
shared by every subscriber, so ten open dashboards do not cost ten times the queries.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from godel.api.auth import require
from godel.api.deps import api_state, runtime
from godel.api.events import SEQ_MAX, public
from godel.api.snapshot import build_snapshot
from godel.credentials import Scope
from godel.errors import InvalidEvent, LedgerUnavailable
from godel.fastlane.link import Link, LinkState
from godel.runtime import Runtime
from godel.store import ledger

router = APIRouter(prefix="/api/v1", tags=["stream"])
EVENTS_PER_TICK = 1000
HEARTBEAT_S = 10.0
WAKE_S = 1.0  # longest sleep between checks for a gone client or a stopping server
_SEQ_RE = re.compile(r"[0-9]{1,19}")


class Snapshots:
    """The latest snapshot, shared by all streams of one Runtime and rebuilt when too old.
    The link part is always read fresh: it must never lag behind a `link` event."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._value: dict[str, Any] | None = None
        self._built = 0.0
        self._lock = asyncio.Lock()
        rt.link.subscribe(self._invalidate)

    def _invalidate(self, old: LinkState, new: LinkState) -> None:
        self._built = 0.0

    async def get(self, max_age_s: float) -> dict[str, Any]:
        async with self._lock:
            if self._value is None or time.monotonic() - self._built > max_age_s:
                self._value = await build_snapshot(self.rt, self._value)
                self._built = time.monotonic()
            value = self._value
        link = self.rt.link.describe()
        return {
            **value,
            "link": {**value["link"], **link},
            "state": link["state"],
            "at": time.time(),
        }


def snapshots(request: Request, rt: Runtime = Depends(runtime)) -> Snapshots:
    state = api_state(request.app)
    if state.snapshots is None or state.snapshots.rt is not rt:
        state.snapshots = Snapshots(rt)
    return state.snapshots


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {orjson.dumps(data).decode()}\n\n"


def server_exiting(request: Request) -> bool:
    """uvicorn waits for open responses before the lifespan shutdown runs, and tells no
    running response; `godel serve` sets the API state's `exiting` when shutdown begins."""
    return api_state(request.app).exiting


async def max_seq(rt: Runtime) -> int:
    newest = await rt.db.read(ledger.latest_events, 1)
    return int(newest[0]["seq"]) if newest else 0


class Subscription:
    """A Link listener feeding one stream. The callback runs inside the Link's state change,
    so it records the change as it was and must never raise (a full queue drops the oldest)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=32)

    def __enter__(self) -> Subscription:
        self._unsubscribe = self.link.subscribe(self._on_change)
        return self

    def __exit__(self, *exc: object) -> None:
        self._unsubscribe()

    def _on_change(self, old: LinkState, new: LinkState) -> None:
        if self.changes.full():
            self.changes.get_nowait()
        self.changes.put_nowait({**self.link.describe(), "state": new.value, "previous": old.value})

    async def next_change(self, timeout_s: float) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.changes.get(), timeout_s)
        except TimeoutError:
            return None


class Feed:
    """One client's stream: the generator StreamingResponse sends."""

    def __init__(
        self, request: Request, rt: Runtime, snaps: Snapshots, interval_s: float, cursor: int
    ) -> None:
        self.request = request
        self.rt = rt
        self.snaps = snaps
        self.interval_s = interval_s
        self.cursor = cursor

    async def stopped(self) -> bool:
        return server_exiting(self.request) or await self.request.is_disconnected()

    async def messages(self, with_events: bool) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        with Subscription(self.rt.link) as sub:
            yield f"retry: 1000\n\n{sse('link', {**self.rt.link.describe(), 'previous': None})}"
            next_tick = beat = loop.time()
            while not await self.stopped():
                wait_s = next_tick - loop.time()
                if wait_s > 0:
                    change = await sub.next_change(min(wait_s, WAKE_S))
                    if change is not None:
                        yield sse("link", change)
                    continue
                next_tick = loop.time() + self.interval_s
                yield sse("status", await self.snaps.get(self.interval_s / 2))
                if with_events:
                    async for message in self.new_events():
                        yield message
                if loop.time() - beat >= HEARTBEAT_S:
                    beat = loop.time()
                    yield f": heartbeat {int(time.time())}\n\n"

    async def new_events(self) -> AsyncIterator[str]:
        query = ledger.EventQuery(after=self.cursor, limit=EVENTS_PER_TICK)
        try:
            rows = await self.rt.db.read(ledger.list_events, query)
        except LedgerUnavailable:
            return  # the status message says the database is unavailable
        if rows:
            self.cursor = int(rows[-1]["seq"])
            body = {"events": [public(r, with_payload=False) for r in rows], "cursor": self.cursor}
            yield sse("events", body, event_id=self.cursor)


def _resume_seq(last_event_id: str) -> int:
    """The SSE id we sent is a ledger seq; anything else is refused (400), not guessed."""
    value = last_event_id.strip()
    if not _SEQ_RE.fullmatch(value) or int(value) > SEQ_MAX:
        raise InvalidEvent("Last-Event-ID must be a ledger seq (0 to 2^63-1)", 400)
    return int(value)


@router.get(
    "/stream", response_class=StreamingResponse, dependencies=[Depends(require(Scope.READ))]
)
async def stream(
    request: Request,
    rt: Runtime = Depends(runtime),
    snaps: Snapshots = Depends(snapshots),
    interval: Annotated[float, Query(ge=0.2, le=60.0, description="Seconds between status")] = 1.0,
    cursor: Annotated[
        int | None, Query(ge=0, le=SEQ_MAX, description="Ledger seq to send events after")
    ] = None,
    events: Annotated[bool, Query(description="Send new ledger rows")] = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: `link` on every Link change, `status` and `events` each interval."""
    if cursor is None and last_event_id:
        cursor = _resume_seq(last_event_id)  # an EventSource reconnecting: resume where it was
    if cursor is None:
        cursor = await max_seq(rt)
    feed = Feed(request, rt, snaps, interval, cursor)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        feed.messages(with_events=events), media_type="text/event-stream", headers=headers
    )
