"""HTTP load: N keep-alive connections, each sending one request at a time, recording every
request (start, end, status) so both rates and outage latencies come from one run.

Two clients, same protocol (HTTP/1.1 keep-alive, one connection per concurrent sender):
- `httpx`: an httpx.AsyncClient per connection. One pool per connection because httpcore's
  pool scans every connection on every request (encode/httpx#3215), which on 2 cores costs
  more than the request itself once 16 connections share one pool.
- `raw`: a minimal asyncio HTTP/1.1 client (a few hundred lines less Python per request), for
  when httpx itself is the ceiling; the "client ceiling" column tells which case applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import orjson

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` on every lock it takes; without the package each try is
    # a failed import that scans sys.path (about 1 ms per request here). A None entry in
    # sys.modules makes the same ImportError immediate. Installing sniffio has the same effect.
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

import httpx

from bench.godel_side import ADMIN_TOKEN

CLIENTS = ("httpx", "raw")
TIMEOUT_S = 10.0
AUTHORIZATION = f"Bearer {ADMIN_TOKEN}"  # ingest wants a credential (the bench's own token)


@dataclass(frozen=True)
class Record:
    start: float  # monotonic
    end: float
    status: int  # HTTP status, or -1 for a transport error or timeout
    events: int


def one_body(i: int) -> bytes:
    return orjson.dumps({"type": "bench.noop", "payload": {"n": i}})


def batch_body(size: int) -> Callable[[int], bytes]:
    def make(i: int) -> bytes:
        base = i * size
        return orjson.dumps(
            {"events": [{"type": "bench.noop", "payload": {"n": base + k}} for k in range(size)]}
        )

    return make


class Conn(Protocol):
    async def post(self, body: bytes) -> int: ...

    async def aclose(self) -> None: ...


class HttpxConn:
    def __init__(self, url: str) -> None:
        self.url = url
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(limits=limits, timeout=TIMEOUT_S)

    async def post(self, body: bytes) -> int:
        try:
            resp = await self.client.post(
                self.url,
                content=body,
                headers={"content-type": "application/json", "authorization": AUTHORIZATION},
            )
        except httpx.HTTPError:
            return -1
        return resp.status_code

    async def aclose(self) -> None:
        await self.client.aclose()


class RawConn:
    """HTTP/1.1 keep-alive POSTs over one asyncio stream; reconnects after an error."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"authorization: {AUTHORIZATION}\r\n"
            "content-type: application/json\r\ncontent-length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        try:
            return await asyncio.wait_for(self._post(body), TIMEOUT_S)
        except (
            TimeoutError,
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            await self.aclose()
            return -1

    async def _post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
        }
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            await self._skip_chunks()
        if headers.get("connection", "").lower() == "close":
            await self.aclose()
        return status

    async def _skip_chunks(self) -> None:
        assert self.reader is not None
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await self.reader.readexactly(size + 2)
            if size == 0:
                return

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@contextlib.asynccontextmanager
async def connections(kind: str, url: str, n: int) -> AsyncIterator[list[Conn]]:
    conns: list[Conn] = [HttpxConn(url) if kind == "httpx" else RawConn(url) for _ in range(n)]
    try:
        yield conns
    finally:
        await asyncio.gather(*(c.aclose() for c in conns))


async def load(
    conns: list[Conn],
    make_body: Callable[[int], bytes],
    events_per_request: int,
    count: int | None = None,
    until: float | None = None,
) -> list[Record]:
    """Send `count` requests, or keep sending until the monotonic time `until`."""
    counter = itertools.count()
    records: list[Record] = []

    async def sender(conn: Conn) -> None:
        while True:
            i = next(counter)
            if count is not None and i >= count:
                return
            if until is not None and time.monotonic() >= until:
                return
            body = make_body(i)
            t0 = time.monotonic()
            status = await conn.post(body)
            records.append(Record(t0, time.monotonic(), status, events_per_request))

    await asyncio.gather(*(sender(c) for c in conns))
    return records


def ok(r: Record) -> bool:
    return 200 <= r.status < 300


def accepted(records: list[Record]) -> int:
    return sum(r.events for r in records if ok(r))


def rate(records: list[Record]) -> float:
    """Accepted events per second over the span of the run."""
    if not records:
        return 0.0
    span = max(r.end for r in records) - min(r.start for r in records)
    return accepted(records) / span if span > 0 else 0.0


async def measure(
    kind: str,
    url: str,
    make_body: Callable[[int], bytes],
    events_per_request: int,
    concurrency: int,
    requests: int,
) -> tuple[float, list[Record], int]:
    """(accepted events/s, the timed records, events accepted during the warm-up)."""
    async with connections(kind, url, concurrency) as conns:
        # Warm-up: open every keep-alive connection before the clock starts.
        warm = await load(conns, make_body, events_per_request, count=concurrency)
        records = await load(conns, make_body, events_per_request, count=requests)
    return rate(records), records, accepted(warm)
