"""The FastAPI application and its lifespan (the Runtime is created and closed there)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from godel import metrics
from godel.api import admin, agents, dashboard, dead, errors, events, health, stream
from godel.api.deps import ApiState, api_state
from godel.config import Settings
from godel.handlers import Registry
from godel.runtime import Runtime

log = logging.getLogger("godel.api")


class TimingMiddleware:
    """Records godel_http_request_duration_seconds by route template (bounded labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            metrics.HTTP_SECONDS.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - started
            )


def create_app(
    settings: Settings,
    *,
    redis_url: str | None = None,
    workers: int | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    """Build the API. `redis_url` overrides the settings (the embedded redis-server);
    `registry` replaces the default handlers (built-ins plus GODEL_HANDLERS)."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(settings, redis_url, registry=registry)
        api_state(app).runtime = rt
        await rt.start(workers=settings.workers if workers is None else workers)
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(
        title="Godel",
        version="0.1.0",
        lifespan=lifespan,
        description="Control plane API: a lossless event pipeline on Redis.",
    )
    app.state.godel = ApiState(settings, admin_token=token or secrets.token_urlsafe(32))
    app.add_middleware(TimingMiddleware)
    errors.install(app)
    for module in (events, agents, admin, dead, health, stream, dashboard):
        app.include_router(module.router)
    events.install_fast_path(app)
    return app
