"""The `godel` CLI's argument handling and error lines, in process (typer's CliRunner).

HTTP error answers come from a real HTTP server on a loopback port that replies as Godel
does (JSON with `detail`), so the client's whole request path is exercised."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from godel.cli import app
from godel.client import parse_sse
from godel.views import banner, event_line, link_line, status_view
from tests.servers import free_port

runner = CliRunner()


def error_lines(result: object) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]


class Replies(BaseHTTPRequestHandler):
    """Answers by path, the way Godel's error handler does: {"error", "detail"}."""

    seen: list[tuple[str, str, str | None]] = []
    ANSWERS = {
        "/admin/dead": (403, {"error": "forbidden", "detail": "admin token is not valid"}),
        "/admin/cache/warm": (401, {"error": "unauthorized", "detail": "token required"}),
        "/health": (500, {"error": "error", "detail": "database exploded\nsecond line"}),
        "/api/v1/events": (503, {"error": "ledger_unavailable", "detail": "cannot commit"}),
    }

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        self.seen.append((self.command, path, self.headers.get("Authorization")))
        status, body = self.ANSWERS.get(path, (404, {"error": "not_found", "detail": "nope"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_godel() -> Iterator[str]:
    Replies.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Replies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("status", "events", "dead", "recover", "cache", "demo", "serve", "worker", "db"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "--payload is not valid JSON"),
        ("[1, 2]", "--payload must be a JSON object"),
        ('"text"', "--payload must be a JSON object"),
    ],
)
def test_bad_payload_is_a_usage_error_of_one_line(payload: str, message: str) -> None:
    # No server at this URL: the payload must be rejected before any request is made.
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(
        app, ["events", "publish", "agent.x", "--payload", payload, "--url", url]
    )
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["events", "publish", "agent.x", "--payload", "{}"],
        ["recover", "--token", "t"],
        ["cache", "warm", "--token", "t"],
        ["dead", "list", "--token", "t"],
        ["events", "tail", "--limit", "1"],
    ],
)
def test_unreachable_server_is_one_line_and_exit_1(args: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, [*args, "--url", url])
    assert result.exit_code == 1, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert f"cannot connect to Godel at {url}" in lines[0] and "GODEL_URL" in lines[0]


def test_url_comes_from_godel_url(fake_godel: str) -> None:
    result = runner.invoke(app, ["status"], env={"GODEL_URL": fake_godel})
    assert result.exit_code == 1
    assert Replies.seen == [("GET", "/health", None)]


def test_admin_commands_need_a_token_before_any_request(fake_godel: str) -> None:
    for args in (["recover"], ["cache", "warm"], ["dead", "list"], ["dead", "replay"]):
        result = runner.invoke(app, [*args, "--url", fake_godel], env={"GODEL_ADMIN_TOKEN": ""})
        assert result.exit_code == 1, (args, result.output)
        lines = error_lines(result)
        assert len(lines) == 1 and "GODEL_ADMIN_TOKEN" in lines[0], result.stderr
    assert [s for s in Replies.seen if s[1].startswith("/admin")] == []


def test_refused_token_is_explained(fake_godel: str) -> None:
    result = runner.invoke(
        app, ["dead", "list", "--url", fake_godel], env={"GODEL_ADMIN_TOKEN": "wrong"}
    )
    assert result.exit_code == 1
    assert error_lines(result) == [
        "error: the admin token was refused (HTTP 403): admin token is not valid; "
        "check --token or GODEL_ADMIN_TOKEN"
    ]
    assert Replies.seen == [("GET", "/admin/dead", "Bearer wrong")]


def test_http_errors_show_the_servers_detail_on_one_line(fake_godel: str) -> None:
    cases = {
        ("status",): "GET /health failed with HTTP 500: database exploded second line",
        ("cache", "warm", "--token", "t"): "wants the admin token (HTTP 401): token required",
        ("events", "publish", "a.b"): "POST /api/v1/events failed with HTTP 503: cannot commit",
        ("dead", "show", "x/y", "--token", "t"): "HTTP 404: nope",
    }
    for args, message in cases.items():
        result = runner.invoke(app, [*args, "--url", fake_godel])
        assert result.exit_code == 1, (args, result.output)
        lines = error_lines(result)
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
    # The id is one path segment even when it contains a slash.
    assert ("GET", "/admin/dead/events/x%2Fy", "Bearer t") in Replies.seen


def test_purge_asks_first_and_does_nothing_on_no(fake_godel: str) -> None:
    result = runner.invoke(
        app, ["dead", "purge", "--type", "a.b", "--url", fake_godel, "--token", "t"], input="n\n"
    )
    assert result.exit_code == 1
    assert "Purge dead events of type a.b?" in result.stdout
    assert "purge cancelled" in result.stderr
    assert Replies.seen == []


def test_parse_sse_decodes_events_and_skips_comments() -> None:
    lines = [
        "retry: 1000",
        "",
        "event: link",
        'data: {"state": "fallback", "previous": "connected", "reason": "connection"}',
        "",
        ": heartbeat 123",
        "",
        "id: 7",
        "event: events",
        'data: {"events": [{"seq": 7}],',
        'data:  "cursor": 7}',
        "",
    ]
    messages = list(parse_sse(iter(lines)))
    assert [m.name for m in messages] == ["link", "events"]
    assert messages[1].data == {"events": [{"seq": 7}], "cursor": 7}
    assert link_line(messages[0].data) == "link: connected -> fallback (connection)"


def test_status_view_says_redis_connection_error_while_down() -> None:
    health = {
        "state": "fallback",
        "link": {"state": "fallback", "since": 1.0, "reason": "oom", "redis_url": "redis://r"},
        "queues": None,
        "undispatched": 12,
        "events": {"processed": 3},
        "replay": {},
    }
    assert str(banner(health)).startswith("Redis Connection Error: fallback since")
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(status_view(health, {"used": 2048.0, "max": 4096.0}))
    text = console.export_text()
    assert "reason oom" in text and "12 events in the ledger, not in Redis" in text
    assert "unknown while Redis is unreachable" in text and "(50%)" in text


def test_event_line_is_one_line() -> None:
    row = {"seq": 5, "type": "agent.x", "id": "e1", "agent_id": None, "status": "queued"}
    assert event_line(row).endswith("#5 agent.x e1 agent=- status=queued attempts=0")
