"""HTTP errors, mapped in one place: every error answer is JSON (`ErrorBody`) with `error`,
`detail` and the request's id, also sent as the `X-Request-ID` header.

exception            status  error                     headers
InvalidEvent         its own invalid_event (422) / by status
IdConflict           409     conflict                  (body: `ids`)
RateLimited          429     rate_limited              Retry-After (body: `limit`)
NotFound             404     not_found
LedgerUnavailable    503     ledger_unavailable        Retry-After: 1
RedisUnavailable     503     redis_unavailable         Retry-After: 5
RequestValidation    422     invalid
HTTPException        its own by status                 its own
anything else        500     internal                  (`RequestContext`: the log has it)
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

from godel.api.asgi import HttpMiddleware, on_response_start
from godel.errors import (
    IdConflict,
    InvalidEvent,
    LedgerUnavailable,
    NotFound,
    RateLimited,
    RedisUnavailable,
)

log = logging.getLogger("godel.api")
REQUEST_ID_HEADER = "x-request-id"
# An incoming X-Request-ID is kept when it looks like an id (a proxy's or the client's), so
# one id follows a request through every log; anything else is replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ErrorBody(BaseModel):
    """Every error answer."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Machine-readable kind, e.g. invalid_event, rate_limited.")
    detail: str = Field(description="What was wrong, for a person.")
    request_id: str | None = Field(
        default=None, description="This request's id (also the X-Request-ID header)."
    )


class ORJSONResponse(JSONResponse):
    """JSON rendered by orjson (FastAPI's own class of this name is deprecated)."""

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def error(
    status: int,
    detail: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> ORJSONResponse:
    body = {"error": code or _CODES.get(status, "error"), "detail": detail, **extra}
    if request_id:
        body["request_id"] = request_id
    return ORJSONResponse(body, status_code=status, headers=headers)


def error_bytes(status: int, detail: str, request_id: str | None) -> bytes:
    """An error body for code that answers below the app (the ASGI middlewares)."""
    body = {"error": _CODES.get(status, "error"), "detail": detail}
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


def request_id_of(scope: Scope) -> str | None:
    rid: str | None = scope.get("state", {}).get("request_id")
    return rid


Rendered = tuple[int, str, str | None, dict[str, str] | None, dict[str, Any]]


def _invalid(exc: InvalidEvent) -> Rendered:
    code = exc.code or ("invalid_event" if exc.status == 422 else None)
    return exc.status, str(exc), code, None, {}


def _conflict(exc: IdConflict) -> Rendered:
    return 409, str(exc), "conflict", None, {"ids": exc.ids}


def _rate(exc: RateLimited) -> Rendered:
    headers = {"Retry-After": str(exc.retry_after_s)}
    return 429, str(exc), "rate_limited", headers, {"limit": {"kind": exc.limit, "name": exc.name}}


def _ledger(exc: LedgerUnavailable) -> Rendered:
    # The driver's message names hosts, ports and users: the log gets it, the client not.
    log.warning("ledger unavailable: %s", exc)
    detail = "the events ledger cannot commit right now; nothing was accepted"
    return 503, detail, "ledger_unavailable", {"Retry-After": "1"}, {}


def _redis(exc: RedisUnavailable) -> Rendered:
    detail = f"Redis is unavailable ({exc.reason}); retry after recovery"
    return 503, detail, "redis_unavailable", {"Retry-After": "5"}, {}


def _missing(exc: NotFound) -> Rendered:
    return 404, str(exc), None, None, {}


def _validation(exc: RequestValidationError) -> Rendered:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg')}")
    return 422, "; ".join(parts)[:2000] or "invalid request", None, None, {}


def _http(exc: HTTPException) -> Rendered:
    return exc.status_code, str(exc.detail), None, getattr(exc, "headers", None), {}


# Most specific first: `install` registers them in this order and Starlette picks by MRO.
HANDLERS: dict[type[Exception], Callable[..., Rendered]] = {
    IdConflict: _conflict,
    InvalidEvent: _invalid,
    RateLimited: _rate,
    NotFound: _missing,
    LedgerUnavailable: _ledger,
    RedisUnavailable: _redis,
    RequestValidationError: _validation,
    HTTPException: _http,
}


def install(app: FastAPI) -> None:
    for kind, render in HANDLERS.items():
        app.add_exception_handler(kind, _handler(render))


def _handler(
    render: Callable[..., Rendered],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        status, detail, code, headers, extra = render(exc)
        return error(status, detail, code, headers, request_id_of(request.scope), **extra)

    return handle


class RequestContext(HttpMiddleware):
    """Outermost: gives each request an id (`X-Request-ID`, kept from the client when
    sane) and turns any exception nothing else handled into a JSON 500 naming that id.
    The exception itself (SQL, hosts, users) goes to the log only."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = _incoming_id(scope) or secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        header = (REQUEST_ID_HEADER.encode(), rid.encode())
        started = False

        def add_id(start: Message) -> None:
            nonlocal started
            started = True
            start["headers"] = [*start.get("headers", ()), header]

        send_with_id = on_response_start(send, add_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            method, path = scope["method"], scope["path"]
            log.exception("unhandled error on %s %s [request %s]", method, path, rid)
            if started:
                raise  # the answer is half sent: only closing the connection tells the client
            detail = f"an unexpected error; the server log has it under request id {rid}"
            body = error_bytes(500, detail, rid)
            await send_with_id(_start(500, body))
            await send_with_id({"type": "http.response.body", "body": body})


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_REQUEST_ID.fullmatch(text) else None
    return None


def _start(status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> Message:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    return {"type": "http.response.start", "status": status, "headers": headers}


async def answer(
    send: Send,
    status: int,
    detail: str,
    scope: Scope,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a whole JSON error from an ASGI middleware."""
    body = error_bytes(status, detail, request_id_of(scope))
    await send(_start(status, body, extra))
    await send({"type": "http.response.body", "body": body})
