"""uvicorn's Server, telling the app when shutdown begins.

uvicorn waits for open responses before it runs the lifespan shutdown, and tells no running
response; live streams would hold shutdown until the graceful timeout. This Server mirrors
`should_exit` into the API state's `exiting`, which streams check."""

from __future__ import annotations

import asyncio

import uvicorn
from fastapi import FastAPI

from godel.api.deps import api_state


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
            super().on_headers_complete()

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


HEADER_TIMEOUT_BODY = (
    b'{"error":"request_timeout","detail":"the request headers did not arrive within %g s"}'
)
