"""uvicorn's Server, telling the app when shutdown begins.

uvicorn waits for open responses before it runs the lifespan shutdown, and tells no running
response; live streams would hold shutdown until the graceful timeout. This Server mirrors
`should_exit` into the API state's `exiting`, which streams check."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from godel.api.deps import api_state
from godel.api.headers import HEADERS


class ApiServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        self._app = app
        self._should_exit = False
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value:
            api_state(self._app).exiting = True


def protocol_with_header_timeout(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, plus a deadline for the request line and headers.

    uvicorn times out idle keep-alive connections but not a client that connects and
    never finishes its headers (slowloris): each would hold a connection for ever. The
    timer runs from the connection (or from a request's first byte) to the end of its
    headers; when it fires, the connection gets a JSON 408 and is closed. Bodies have
    their own deadline (`api.limits`)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            _complete_headers(self, super().on_headers_complete)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being answered: its headers did arrive
            body = HEADER_TIMEOUT_BODY % timeout_s
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()

    return HeaderTimeoutProtocol


def _over_limit(protocol: Any) -> bool:
    """uvicorn's own test for its 503 (httptools_impl.on_headers_complete)."""
    limit = protocol.limit_concurrency
    return limit is not None and (
        len(protocol.connections) >= limit or len(protocol.tasks) >= limit
    )


def _complete_headers(protocol: Any, complete: Callable[[], None]) -> None:
    """uvicorn's on_headers_complete. Past GODEL_MAX_CONNECTIONS its own answer is a
    plain-text 503; ours is the same 503 at once, in JSON: uvicorn is told there is no
    limit for this one request, and the app that answers it is `over_capacity`."""
    if not _over_limit(protocol):
        complete()
        return
    app, limit = protocol.app, protocol.limit_concurrency
    protocol.app, protocol.limit_concurrency = over_capacity, None
    try:
        complete()
    finally:
        protocol.app, protocol.limit_concurrency = app, limit
    protocol.logger.warning("Exceeded concurrency limit (GODEL_MAX_CONNECTIONS)")


OVER_CAPACITY_BODY = (
    b'{"error":"over_capacity","detail":"this instance has GODEL_MAX_CONNECTIONS open '
    b'connections and requests; retry shortly"}'
)


async def over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer past GODEL_MAX_CONNECTIONS: 503 and the connection closed, at once."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(OVER_CAPACITY_BODY)),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
        *HEADERS,
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": OVER_CAPACITY_BODY, "more_body": False})


HEADER_TIMEOUT_BODY = (
    b'{"error":"request_timeout","detail":"the request headers did not arrive within %g s"}'
)
