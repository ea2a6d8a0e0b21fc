"""The API's typed state and request dependencies (the runtime, the admin token check)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Request

from godel.config import Settings
from godel.runtime import Runtime

if TYPE_CHECKING:
    from godel.api.stream import Snapshots


@dataclass(slots=True)
class ApiState:
    """Everything the routes share, kept in `app.state.godel`."""

    settings: Settings
    admin_token: str
    runtime: Runtime | None = None  # set by the lifespan
    snapshots: Snapshots | None = None  # the dashboard's shared snapshot, made on first use
    exiting: bool = False  # `godel serve` is shutting down: streams end

    @property
    def rt(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("the API's lifespan has not started the runtime")
        return self.runtime


def api_state(app: FastAPI) -> ApiState:
    state: ApiState = app.state.godel
    return state


async def runtime(request: Request) -> Runtime:
    return api_state(request.app).rt


async def require_admin(request: Request) -> None:
    """Admin endpoints take `Authorization: Bearer <GODEL_ADMIN_TOKEN>`."""
    expected = api_state(request.app).admin_token
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
