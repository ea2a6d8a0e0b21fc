"""Security headers on every answer, the dashboard's, the docs' and the API's (errors too).

The policy allows only what Godel serves itself: no inline script or style (the dashboard
and the docs page load theirs from /static and /docs/assets), no framing, no referrer.
An answer that set a header itself keeps its own value.
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from godel.api.asgi import HttpMiddleware, on_response_start

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, on_response_start(send, _add_headers))


def _add_headers(start: Message) -> None:
    headers = list(start.get("headers", ()))
    present = {name.lower() for name, _ in headers}
    headers.extend(h for h in HEADERS if h[0] not in present)
    start["headers"] = headers
