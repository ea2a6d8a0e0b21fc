"""The FastAPI application and its lifespan (the Runtime is created and closed there)."""

from __future__ import annotations

import inspect
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from godel import metrics
from godel.api import (
    admin,
    agents,
    auth,
    dashboard,
    dead,
    errors,
    events,
    health,
    history,
    keys,
    login,
    openapi,
    stream,
)
from godel.api import workers as workers_api
from godel.api.asgi import HttpMiddleware, on_response_start
from godel.api.auth import Authenticator, KeyRing
from godel.api.deps import ApiState, api_state
from godel.api.headers import SecurityHeaders
from godel.api.limits import RequestLimits
from godel.api.session import Sessions, signing_key
from godel.config import Settings
from godel.credentials import Scope as KeyScope
from godel.handlers import Registry
from godel.runtime import Runtime, settle_heap
from godel.store import keys as store_keys

log = logging.getLogger("godel.api")


class TimingMiddleware(HttpMiddleware):
    """Records godel_http_request_duration_seconds by route template (bounded labels)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        def note_status(start: Message) -> None:
            nonlocal status
            status = start["status"]

        try:
            await self.app(scope, receive, on_response_start(send, note_status))
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
    settle: bool = False,
) -> FastAPI:
    """Build the API. `redis_url` overrides the settings (the embedded redis-server);
    `registry` replaces the default handlers (built-ins plus GODEL_HANDLERS); `settle`:
    this process runs the app alone (`godel serve`), so its start-up heap is frozen once
    started (runtime.settle_heap)."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(settings, redis_url, registry=registry)
        api_state(app).runtime = rt
        await rt.start(workers=settings.workers if workers is None else workers)
        # The dashboard's history is the API's: worker-only processes do not sample it.
        rt.maintenance.every("history", rt.history.interval_s, rt.history.sample)
        if settle:
            settle_heap()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(
        **_telemetry_as_configured_now(),
        title="Godel",
        version="0.1.0",
        lifespan=lifespan,
        description="Control plane API: a lossless event pipeline on Redis.",
        redoc_url=None,  # ReDoc needs inline styles the CSP refuses; /docs has Swagger UI
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.godel = state = ApiState(settings)
    state.auth = build_authenticator(settings, token or secrets.token_urlsafe(32), state)
    app.add_middleware(RequestLimits, settings=settings)  # innermost of these four
    app.add_middleware(TimingMiddleware)
    app.add_middleware(errors.RequestContext)
    app.add_middleware(SecurityHeaders)  # outermost: the catch-all's 500 gets them too
    errors.install(app)
    routers = (events, agents, admin, dead, keys, health, stream, history, workers_api, dashboard)
    for module in (*routers, login):
        app.include_router(module.router)
    events.install_fast_path(app)
    openapi.install(app, settings)
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    auth.guard_routes(app.router.routes, {path: KeyScope.READ for path in docs if path})
    return app


def _telemetry_as_configured_now() -> dict[str, Any]:
    """FastAPI (0.16x) asks OpenTelemetry on every request whether a tracer or meter provider
    is set, reading os.environ each time: about 5 % of an ingest request. Asked once here
    instead: telemetry stays on when a provider is configured before the app is built (as
    `opentelemetry-instrument` does), off otherwise."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    try:
        from opentelemetry import metrics as otel_metrics
        from opentelemetry import trace
    except ImportError:
        return {}

    def configured(provider: object) -> bool:
        return "Proxy" not in type(provider).__name__ and "NoOp" not in type(provider).__name__

    return {
        "telemetry": {
            "tracing": configured(trace.get_tracer_provider()),
            "metrics": configured(otel_metrics.get_meter_provider()),
        }
    }


def build_authenticator(settings: Settings, admin_token: str, state: ApiState) -> Authenticator:
    """Keys of the environment in memory; stored keys through the runtime's database."""

    async def lookup(key_digest: str) -> dict[str, Any] | None:
        return await state.rt.db.read(store_keys.find_by_digest, key_digest)

    if settings.auth_mode == "open":
        log.warning(
            "GODEL_AUTH_MODE=open: every request is allowed without a credential; "
            "for local experiments only, never expose this instance"
        )
    keyring = KeyRing.from_settings(settings, admin_token, lookup)
    session_secret = settings.session_secret.get_secret_value() if settings.session_secret else None
    sessions = Sessions(signing_key(session_secret, admin_token), settings.session_ttl_s)
    return Authenticator(settings, keyring, sessions)
