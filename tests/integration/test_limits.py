"""A request is bounded before it is read (issue 9), against a real `godel serve`: sizes
from Content-Length or counted while a chunked body streams, header and body deadlines,
the JSON content type, security headers, request ids and the catch-all 500."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from godel.api import create_app
from godel.api.headers import CSP
from tests.harness import TOKEN, make_settings, migrate
from tests.servers import GodelServer, RedisServer, start_serve
from tests.support.settings import fast_settings
from tests.support.wait import wait_until

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIB = 1024 * 1024


@pytest.fixture
def server(run_process: Any, tmp_path: Path, redis_server: RedisServer) -> GodelServer:
    redis_server.reset()
    settings = fast_settings(
        f"sqlite:///{tmp_path}/godel.db",
        redis_server.url,
        header_timeout_s=1.0,
        body_timeout_s=1.0,
        max_body_bytes=MIB,
    )
    return start_serve(run_process, tmp_path / "serve", settings)


def connect(server: GodelServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer with a Content-Length (what Godel's errors have)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer; got {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def request_head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: godel", f"Authorization: Bearer {TOKEN}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def rss_peak_kib(pid: int) -> int:
    """VmHWM: the highest resident set size the process has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_declared_length_over_the_limit_is_413_before_any_body(server: GodelServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            request_head(
                "/api/v1/events", "Content-Type: application/json", "Content-Length: 1000000000"
            )
            + b'{"type": "'
        )
        started = time.monotonic()
        status, headers, body = read_answer(sock)
    assert status == 413 and time.monotonic() - started < 2
    assert orjson.loads(body)["error"] == "too_large"
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"


def chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    piece = b"[" + b"1," * (size // 2 - 1) + b"1]"
    sent = 0
    while sent < total:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
        sent += len(piece)
    yield b"0\r\n\r\n"


def test_a_400_mb_chunked_body_is_cut_at_the_limit(server: GodelServer) -> None:
    before = rss_peak_kib(server.process.pid)
    sent = 0
    with connect(server) as sock:
        sock.sendall(
            request_head(
                "/api/v1/events", "Content-Type: application/json", "Transfer-Encoding: chunked"
            )
        )
        try:
            for chunk in chunks(400 * MIB):
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: the rest is never read
        status, _, body = read_answer(sock)
    assert status == 413 and orjson.loads(body)["error"] == "too_large"
    grown_mib = (rss_peak_kib(server.process.pid) - before) / 1024
    assert grown_mib < 32, f"server peak RSS grew {grown_mib:.0f} MiB ({sent / MIB:.0f} MiB sent)"
    assert httpx.get(f"{server.url}/health/live").status_code == 200


def test_a_body_that_never_arrives_times_out(server: GodelServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            request_head("/api/v1/events", "Content-Type: application/json", "Content-Length: 100")
            + b'{"type"'
        )
        started = time.monotonic()
        status, headers, body = read_answer(sock)
    assert status == 408 and 0.8 < time.monotonic() - started < 5
    assert orjson.loads(body)["error"] == "request_timeout" and headers["connection"] == "close"


def test_headers_that_never_end_time_out(server: GodelServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: godel\r\nX-Slow: ")
        started = time.monotonic()
        status, _, body = read_answer(sock)
        assert status == 408 and 0.8 < time.monotonic() - started < 5
        assert orjson.loads(body)["error"] == "request_timeout"
        assert sock.recv(1) == b""  # closed
    with connect(server) as idle:  # a connection that says nothing is closed too
        idle.settimeout(5)
        status, _, _ = read_answer(idle)
        assert status == 408


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        (None, 415),
        ("application/json", 202),
        ("application/json; charset=utf-8", 202),
        ("Application/JSON", 202),
        ("application/cloudevents+json", 202),
    ],
)
def test_only_json_bodies_are_read(
    server: GodelServer, content_type: str | None, status: int
) -> None:
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = httpx.post(f"{server.url}/api/v1/events", content=b'{"type": "t.x"}', headers=headers)
    assert r.status_code == status, r.text
    if status == 415:
        assert r.json()["error"] == "unsupported_media_type"
        agent = httpx.post(f"{server.url}/api/v1/agents", content=b'{"id": "a"}', headers=headers)
        assert agent.status_code == 415, agent.text


def test_other_routes_take_small_bodies_only(server: GodelServer) -> None:
    body = orjson.dumps({"id": "big", "metadata": {"x": "y" * 70_000}})
    r = httpx.post(f"{server.url}/api/v1/agents", content=body, headers={**AUTH, **JSON})
    assert r.status_code == 413 and r.json()["error"] == "too_large"


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("path", ["/", "/docs", "/api/v1/events", "/health/live", "/nowhere"])
def test_every_answer_has_the_security_headers(server: GodelServer, path: str) -> None:
    r = httpx.get(f"{server.url}{path}", headers=AUTH)
    assert r.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-request-id"]


def test_pages_load_nothing_inline_or_from_elsewhere(server: GodelServer) -> None:
    for path in ("/", "/docs", "/login"):
        page = httpx.get(f"{server.url}{path}", headers=AUTH).text
        assert "style=" not in page and "<script>" not in page and " on" + "click" not in page
        # Links may lead elsewhere (the runbook); nothing may be loaded from there.
        loaded = re.findall(r'<(?!a\b)[^>]*\b(?:src|href)="(?:https?:)?//', page)
        assert "cdn." not in page and not loaded, (path, loaded)
    assets = httpx.get(f"{server.url}/docs/assets/swagger-ui-bundle.js")
    assert assets.status_code == 200 and len(assets.content) > 100_000


def test_a_sane_request_id_is_kept_and_another_replaced(server: GodelServer) -> None:
    kept = httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "trace-42.a:b"})
    assert kept.headers["x-request-id"] == "trace-42.a:b"
    odd = httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "a b<script>"})
    assert odd.headers["x-request-id"] not in {"", "a b<script>"}


async def test_an_unexpected_error_is_a_json_500_with_a_request_id(
    sqlite_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A route of the test's own raising what no handler knows: the client gets JSON and
    the id, the log gets the detail (the client never does)."""
    settings = make_settings(sqlite_url, redis_url, workers=0)
    migrate(sqlite_url)
    app = create_app(settings, workers=0)

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 host=db.internal user=godel")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://godel") as client:
            r = await client.get("/test-only/boom", headers={"X-Request-ID": "req-500"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == "internal" and body["request_id"] == "req-500"
    assert r.headers["x-request-id"] == "req-500" and "req-500" in body["detail"]
    for secret in ("hunter2", "db.internal", "RuntimeError"):
        assert secret not in r.text
    assert r.headers["content-security-policy"] == CSP
    assert "req-500" in caplog.text and "hunter2" in caplog.text  # the operator's copy


async def test_no_secret_in_503_bodies_or_health(redis_url: str) -> None:
    """The ledger is unreachable: 503s and /health say so without its host, user or
    password; Redis's password (refused by a server that has none) stays out too."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = closed.getsockname()[1]
    db = f"postgresql+psycopg://dbuser-7:pg-pw-9@127.0.0.1:{port}/ledger"
    with_password = redis_url.replace("redis://", "redis://:redis-pw-9@")
    settings = make_settings(db, with_password, workers=0)
    app = create_app(settings, workers=0)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://godel", headers=AUTH
            ) as client:
                posted = await client.post("/api/v1/events", json={"type": "t.x"})
                listed = await client.get("/api/v1/events")
                health = await client.get("/health")
    finally:
        closed.close()
    assert posted.status_code == 503 and posted.headers["retry-after"] == "1"
    assert listed.status_code == 503 and health.status_code == 200
    for answer in (posted, listed, health):
        for secret in ("pg-pw-9", "redis-pw-9", "dbuser-7", str(port)):
            assert secret not in answer.text, (secret, answer.text)


def test_past_the_connection_cap_a_json_503_at_once(
    run_process: Any, tmp_path: Path, redis_server: RedisServer
) -> None:
    """GODEL_MAX_CONNECTIONS: two idle connections fill a cap of 2; a request on a third is
    answered 503 in JSON at once (uvicorn's own answer is plain text) and closed; once they
    go, requests are served again."""
    settings = fast_settings(f"sqlite:///{tmp_path}/godel.db", redis_server.url, max_connections=2)
    server = start_serve(run_process, tmp_path / "serve", settings)
    held = [connect(server), connect(server)]
    try:
        extra = connect(server)
        extra.sendall(b"GET /health/live HTTP/1.1\r\nHost: godel\r\n\r\n")
        status, headers, body = read_answer(extra)
        assert status == 503 and headers["content-type"] == "application/json", headers
        assert orjson.loads(body)["error"] == "over_capacity"
        assert headers["retry-after"] == "1" and headers["connection"] == "close"
        assert headers["x-content-type-options"] == "nosniff"
        assert extra.recv(1) == b""  # closed
        extra.close()
        for sock in held:
            sock.close()  # the server sees them go a moment later
        wait_until(
            lambda: httpx.get(server.url + "/health/live", timeout=10).status_code == 200,
            10,
            "a request served once a connection closed",
        )
    finally:
        for sock in held:
            sock.close()
