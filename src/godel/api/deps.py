"""Request dependencies: the runtime and the admin token check."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request

from godel.runtime import Runtime


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def require_admin(request: Request) -> None:
    """Admin endpoints take `Authorization: Bearer <GODEL_ADMIN_TOKEN>`."""
    expected: str = request.app.state.admin_token
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            "admin token required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(403, "admin token is not valid")
