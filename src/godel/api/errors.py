"""HTTP errors, mapped in one place: every error answer is JSON with `error` and `detail`."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from godel.errors import InvalidEvent, LedgerUnavailable, NotFound, RedisUnavailable


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


def install(app: FastAPI) -> None:
    @app.exception_handler(InvalidEvent)
    async def _invalid(_: Request, exc: InvalidEvent) -> ORJSONResponse:
        return error(exc.status, str(exc), "invalid_event" if exc.status == 422 else None)

    @app.exception_handler(LedgerUnavailable)
    async def _ledger(_: Request, exc: LedgerUnavailable) -> ORJSONResponse:
        return error(
            503,
            f"the events ledger cannot commit right now; nothing was accepted ({exc})",
            "ledger_unavailable",
            {"Retry-After": "1"},
        )

    @app.exception_handler(RedisUnavailable)
    async def _redis(_: Request, exc: RedisUnavailable) -> ORJSONResponse:
        return error(
            503,
            f"Redis is unavailable ({exc.reason}); retry after recovery",
            "redis_unavailable",
            {"Retry-After": "5"},
        )

    @app.exception_handler(NotFound)
    async def _missing(_: Request, exc: NotFound) -> ORJSONResponse:
        return error(404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> ORJSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}")
        return error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> ORJSONResponse:
        return error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))
