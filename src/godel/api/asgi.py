"""What Godel's ASGI middleware share: acting on HTTP requests only, and seeing (or
changing) an answer's status and headers as it starts."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMiddleware:
    """Runs `handle` for HTTP requests; every other scope (lifespan, websocket) goes
    straight to the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


def on_response_start(send: Send, hook: Callable[[Message], None]) -> Send:
    """`send`, calling `hook` on the `http.response.start` message before it goes out."""

    async def send_after_hook(message: Message) -> None:
        if message["type"] == "http.response.start":
            hook(message)
        await send(message)

    return send_after_hook
