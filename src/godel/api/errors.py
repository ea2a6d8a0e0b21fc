"""HTTP errors, mapped in one place: every error answer is JSON with `error` and `detail`.

exception            status  error                     headers
InvalidEvent         its own invalid_event (422) / by status
NotFound             404     not_found
LedgerUnavailable    503     ledger_unavailable        Retry-After: 1
RedisUnavailable     503     redis_unavailable         Retry-After: 5
RequestValidation    422     invalid
HTTPException        its own by status                 its own
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from godel.errors import InvalidEvent, LedgerUnavailable, NotFound, RedisUnavailable

log = logging.getLogger("godel.api")


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
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}


def error(
    status: int, detail: str, code: str | None = None, headers: dict[str, str] | None = None
) -> ORJSONResponse:
    return ORJSONResponse(
        {"error": code or _CODES.get(status, "error"), "detail": detail},
        status_code=status,
        headers=headers,
    )


def _invalid(exc: InvalidEvent) -> ORJSONResponse:
    return error(exc.status, str(exc), "invalid_event" if exc.status == 422 else None)


def _ledger(exc: LedgerUnavailable) -> ORJSONResponse:
    # The driver's message names hosts, ports and users: the log gets it, the client not.
    log.warning("ledger unavailable: %s", exc)
    return error(
        503,
        "the events ledger cannot commit right now; nothing was accepted",
        "ledger_unavailable",
        {"Retry-After": "1"},
    )


def _redis(exc: RedisUnavailable) -> ORJSONResponse:
    return error(
        503,
        f"Redis is unavailable ({exc.reason}); retry after recovery",
        "redis_unavailable",
        {"Retry-After": "5"},
    )


def _missing(exc: NotFound) -> ORJSONResponse:
    return error(404, str(exc))


def _validation(exc: RequestValidationError) -> ORJSONResponse:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg')}")
    return error(422, "; ".join(parts) or "invalid request")


def _http(exc: HTTPException) -> ORJSONResponse:
    return error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


HANDLERS: dict[type[Exception], Callable[..., ORJSONResponse]] = {
    InvalidEvent: _invalid,
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
    render: Callable[..., ORJSONResponse],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(_: Request, exc: Exception) -> Response:
        return render(exc)

    return handle
