"""Requests are bounded before they are read.

`RequestLimits` (ASGI middleware, in front of every route):
- a path or query string holding NUL (`%00`) is refused at once (422): no database can
  store it and some cannot even compare with it;
- a `Content-Length` over the route's limit is refused at once (413), nothing read;
- a body without a length (chunked) is counted as it streams and cut at the limit (413),
  so no more than the limit is ever held in memory;
- the whole body must arrive within GODEL_BODY_TIMEOUT_S (408), so a client that
  declares a body and never sends it holds nothing for long.
Headers and idle connections are bounded by the server (see `api.server`).

Bodies of POST /api/v1/events may be GODEL_MAX_BODY_BYTES; every other body (agent
registration, keys, the login form) at most SMALL_BODY_BYTES.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from godel import metrics
from godel.api.asgi import HttpMiddleware, on_response_start
from godel.api.errors import answer
from godel.config import Settings
from godel.errors import InvalidEvent
from godel.intake import MAX_DEPTH

EVENTS_PATH = "/api/v1/events"
SMALL_BODY_BYTES = 64 * 1024
CLOSE = [(b"connection", b"close")]  # the rest of an unread body must not be parsed as a request


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        detail = f"the request body is larger than {limit} bytes"
        super().__init__(413, detail, headers={"Connection": "close"})


class BodyTimeout(HTTPException):
    def __init__(self, timeout_s: float) -> None:
        detail = f"the request body did not arrive within {timeout_s:g} s"
        super().__init__(408, detail, headers={"Connection": "close"})


def is_json(content_type: str | None) -> bool:
    """`application/json` or `application/<anything>+json`, any parameters (charset)."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        return True
    return mime.startswith("application/") and mime.endswith("+json")


def check_json(content_type: str | None) -> None:
    """415 unless the body is declared JSON: a browser form or `text/plain` from another
    site (sent without a CORS preflight) never reaches the parser."""
    if not is_json(content_type):
        shown = (content_type or "none")[:80]
        raise InvalidEvent(f"send the body as application/json (content type was {shown})", 415)


async def require_json(request: Request) -> None:
    """A FastAPI dependency for routes that take a JSON body."""
    check_json(request.headers.get("content-type"))


def _content_length(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text: str = value.decode("latin-1")
            return text
    return None


def _refused(scope: Scope, reason: str) -> None:
    if scope["path"] == EVENTS_PATH:
        metrics.EVENTS_REFUSED.labels(reason).inc()


class _Body:
    """`receive` for one request: counts body bytes and keeps the body's deadline; once
    the body is complete, calls pass straight through (a stream waits on `receive` for the
    client's disconnect as long as it likes)."""

    def __init__(self, scope: Scope, receive: Receive, limit: int, timeout_s: float) -> None:
        self.scope = scope
        self.inner = receive
        self.limit = limit
        self.timeout_s = timeout_s
        self.deadline = asyncio.get_running_loop().time() + timeout_s
        self.seen = 0
        self.done = False

    async def receive(self) -> Message:
        if self.done:
            return await self.inner()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self.inner()
        except TimeoutError:
            _refused(self.scope, "timeout")
            raise BodyTimeout(self.timeout_s) from None
        if message["type"] != "http.request":
            self.done = True
            return message
        self.seen += len(message.get("body", b""))
        if self.seen > self.limit:
            _refused(self.scope, "too_large")
            raise BodyTooLarge(self.limit)
        self.done = not message.get("more_body", False)
        return message


class RequestLimits(HttpMiddleware):
    """See the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(app)
        self.max_body = settings.max_body_bytes
        self.timeout_s = settings.body_timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            await answer(send, 422, "the path or query holds a NUL character (%00)", scope)
            return
        limit = self.max_body if scope["path"] == EVENTS_PATH else SMALL_BODY_BYTES
        declared = _content_length(scope)
        if declared is not None:
            if not declared.isascii() or not declared.isdigit() or len(declared) > 18:
                await answer(send, 400, "Content-Length is not a byte count", scope, CLOSE)
                return
            if int(declared) > limit:
                _refused(scope, "too_large")
                detail = f"the request body is {declared} bytes; the limit is {limit}"
                await answer(send, 413, detail, scope, CLOSE)
                return
        body = _Body(scope, receive, limit, self.timeout_s)
        started = False

        def note_start(start: Message) -> None:
            nonlocal started
            started = True

        try:
            await self.app(scope, body.receive, on_response_start(send, note_start))
        except (BodyTooLarge, BodyTimeout) as exc:  # raised outside any exception handler
            if started:
                raise
            await answer(send, exc.status_code, str(exc.detail), scope, CLOSE)


def limits_summary(settings: Settings) -> dict[str, Any]:
    """The limits, as the OpenAPI document states them."""
    return {
        "max_body_bytes": settings.max_body_bytes,
        "other_routes_max_body_bytes": SMALL_BODY_BYTES,
        "max_payload_bytes": settings.max_payload_bytes,
        "max_batch_events": settings.max_batch_events,
        "max_agent_metadata_bytes": settings.max_agent_metadata_bytes,
        "max_json_depth": MAX_DEPTH,
        "body_timeout_s": settings.body_timeout_s,
        "header_timeout_s": settings.header_timeout_s,
        "agent_rate_per_s": settings.agent_rate_per_s,
        "agent_burst": settings.agent_burst,
        "key_rate_per_s": settings.key_rate_per_s,
        "key_burst": settings.key_burst,
    }
