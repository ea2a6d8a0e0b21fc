"""The API's typed state and the runtime dependency (credentials: `godel.api.auth`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from godel.config import Settings
from godel.runtime import Runtime

if TYPE_CHECKING:
    from godel.api.auth import Authenticator
    from godel.api.stream import Snapshots


@dataclass(slots=True)
class ApiState:
    """Everything the routes share, kept in `app.state.godel`."""

    settings: Settings
    auth: Authenticator | None = None  # set by create_app
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
