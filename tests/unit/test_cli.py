"""The `godel` CLI's own behaviour, in process (typer's CliRunner).

Error answers that exercise the client's whole request path come from a real HTTP server
on a loopback port that replies as Godel does (JSON with `detail`). Where the behaviour
under test is the CLI's (what it asks for, what it prints), `FakeGodel` answers through
an httpx.MockTransport handed to the command as the Typer context's object."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from godel.cli import app
from godel.cli.client import parse_sse
from godel.cli.render import banner, event_line, link_line
from tests.servers import free_port

runner = CliRunner()
NOW = 1_796_020_833.0  # 2026-11-30 06:40:33 UTC
Answer = dict[str, Any] | list[Any] | tuple[int, Any] | Callable[[httpx.Request], httpx.Response]


def error_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


class FakeGodel:
    """Answers by (method, path) like Godel does; records every request it sees."""

    def __init__(self, answers: dict[tuple[str, str], Answer]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get((request.method, self.path(request)))
        if answer is None:
            return httpx.Response(404, json={"error": "not_found", "detail": "no such thing"})
        if callable(answer):
            return answer(request)
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        return httpx.Response(status, json=body)

    @staticmethod
    def path(request: httpx.Request) -> str:
        return request.url.raw_path.decode().split("?", 1)[0]  # as sent: %2F stays

    def seen(self) -> list[tuple[str, str]]:
        return [(r.method, self.path(r)) for r in self.requests]

    def invoke(self, *args: str, input: str | None = None) -> Any:
        return runner.invoke(
            app, [*args, "--url", "http://godel.test", "--token", "t"], obj=self.transport,
            input=input,
        )  # fmt: skip


def health(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "ok",
        "state": "connected",
        "link": {"state": "connected", "since": NOW - 125, "reason": None,
                 "last_error": None, "redis_url": "redis://:***@r:6379/0"},
        "database": "ok",
        "queues": {"pending": 2, "processing": 1, "delayed": 0, "dead": {}, "workers": 1},
        "undispatched": 1,
        "events": {"processed": 9},
        "replay": {"replayed": 1, "duration_s": 0.123, "at": NOW - 60,
                   "replayed_total": 1, "reconciled_total": 0},
        "workers": ["w-0"],
        "uptime_s": 1197.3,
        "redis_memory": {"used": 2048, "max": 4096, "ratio": 0.5, "policy_safe": True,
                         "aof_enabled": True},
    }  # fmt: skip
    return body | changes


# -- the command line itself --------------------------------------------------------------


def walk(command: Any, path: str = "godel") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, f"{path} {name}")


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("status", "events", "dead", "recover", "cache", "demo", "serve", "worker", "db"):
        assert name in result.stdout


def test_every_argument_and_option_has_help() -> None:
    missing = [
        f"{path} {param.name}"
        for path, command in walk(get_command(app))
        for param in command.params
        if not getattr(param, "help", None)
    ]
    assert missing == []


@pytest.mark.parametrize(
    "args", [["--help"], ["status", "--help"], ["worker", "--help"], ["dead", "purge", "--help"]]
)
def test_flags_are_shown_as_flags(args: list[str]) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout
    assert "--no-burst" not in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("godel ") and result.stdout.split()[1][0].isdigit()


def test_importing_the_cli_imports_neither_sqlalchemy_nor_redis() -> None:
    code = (
        "import sys, godel.cli.main; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'redis'}); "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


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


# -- errors from a real HTTP server -------------------------------------------------------


class Replies(BaseHTTPRequestHandler):
    """Answers by path, the way Godel's error handler does: {"error", "detail"}."""

    seen: list[tuple[str, str, str | None]] = []
    ANSWERS = {
        "/admin/dead": (403, {"error": "forbidden", "detail": "key 'x' lacks the read scope"}),
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


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["status", "--check"],
        ["events", "publish", "agent.x", "--payload", "{}"],
        ["events", "get", "e1"],
        ["recover", "--token", "t"],
        ["cache", "warm", "--token", "t"],
        ["dead", "list", "--token", "t"],
        ["dead", "show", "e1", "--token", "t"],
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


def test_url_without_a_scheme_is_http(fake_godel: str) -> None:
    host_port = fake_godel.removeprefix("http://")
    result = runner.invoke(app, ["status", "--url", host_port])
    assert "UnsupportedProtocol" not in result.output
    assert Replies.seen == [("GET", "/health", None)]


def test_admin_commands_need_a_token_before_any_request(fake_godel: str) -> None:
    commands = (["recover"], ["cache", "warm"], ["dead", "list"], ["dead", "replay"],
                ["dead", "purge", "--yes"], ["dead", "show", "e1"])  # fmt: skip
    for args in commands:
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
        "error: the credential lacks a scope this needs (HTTP 403): key 'x' lacks the read "
        "scope; use a key with that scope, or GODEL_ADMIN_TOKEN"
    ]
    assert Replies.seen == [("GET", "/admin/dead", "Bearer wrong")]


def test_http_errors_show_the_servers_detail_on_one_line(fake_godel: str) -> None:
    cases = {
        ("status",): "GET /health failed with HTTP 500: database exploded second line",
        ("cache", "warm", "--token", "t"): "credential was not accepted (HTTP 401): token "
        "required; check --token, GODEL_ADMIN_TOKEN or GODEL_API_KEY",
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


# -- status -------------------------------------------------------------------------------


def test_status_reads_redis_memory_from_health() -> None:
    fake = FakeGodel({("GET", "/health"): health()})
    result = fake.invoke("status")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Redis connected since 2026-11-30 06:38:" in text and " UTC (" in text
    assert "2.0 KiB of 4.0 KiB (50%)" in text
    assert re.search(r"pending 2, processing 1, delayed 0, dead 0; 1 worker\s*$", text, re.M)
    assert "1 event in the ledger, not in Redis" in text
    assert "last replay 1 event in 0.12s" in text
    assert "19m 57s" in text and "1197" not in text
    assert fake.seen() == [("GET", "/health")]  # no /metrics scraping


def test_status_without_redis_memory_says_unknown() -> None:
    body = health()
    del body["redis_memory"]
    result = FakeGodel({("GET", "/health"): body}).invoke("status")
    assert result.exit_code == 0
    assert re.search(r"Redis memory\s+unknown", result.stdout)


def test_status_says_redis_connection_error_while_down() -> None:
    link = {"state": "fallback", "since": NOW, "reason": "oom", "last_error": None,
            "redis_url": "redis://r"}  # fmt: skip
    body = health(state="fallback", link=link, queues=None, undispatched=12)
    assert str(banner(body)).startswith("Redis Connection Error: fallback since 2026-11-30")
    result = FakeGodel({("GET", "/health"): body}).invoke("status")
    text = result.stdout
    assert "reason oom" in text and "12 events in the ledger, not in Redis" in text
    assert "unknown while Redis is unreachable" in text and "last seen before the outage" in text


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({}, None),
        ({"state": "fallback", "link": {"state": "fallback", "reason": "connection"}},
         "not healthy: Redis link fallback (connection)"),
        ({"database": "unavailable: timeout", "status": "degraded"},
         "not healthy: database unavailable: timeout"),
    ],
)  # fmt: skip
def test_status_check_is_a_probe(changes: dict[str, Any], why: str | None) -> None:
    result = FakeGodel({("GET", "/health"): health(**changes)}).invoke("status", "--check")
    if why is None:
        assert result.exit_code == 0
        assert result.stdout.strip() == "ok: Redis link connected, database ok"
    else:
        assert result.exit_code == 1
        assert error_lines(result) == [f"error: {why}"]


def test_status_json_is_the_health_answer() -> None:
    result = FakeGodel({("GET", "/health"): health()}).invoke("status", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == health()


# -- events -------------------------------------------------------------------------------

EVENT = {"id": "e1", "seq": 7, "type": "agent.status", "agent_id": "a-1", "status": "processing",
         "worker": "w-0", "attempts": 2, "last_error": "boom", "dispatched": True,
         "created_at": NOW, "updated_at": NOW + 1.5, "processed_at": None,
         "payload": {"status": "busy"}}  # fmt: skip


def test_events_get_is_readable() -> None:
    fake = FakeGodel({("GET", "/api/v1/events/e%2F1"): EVENT})
    result = fake.invoke("events", "get", "e/1")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "e1 (ledger #7)" in text and "processing (claimed by worker w-0)" in text
    assert "2026-11-30 06:40:33 UTC" in text and "2026-11-30 06:40:34 UTC" in text
    assert '"status": "busy"' in text and "boom" in text


def test_events_get_json_adds_utc_times() -> None:
    result = FakeGodel({("GET", "/api/v1/events/e1"): EVENT}).invoke(
        "events", "get", "e1", "--json"
    )
    body = json.loads(result.stdout)
    assert body["created_at"] == NOW and body["created_at_utc"] == "2026-11-30 06:40:33 UTC"
    assert body["processed_at_utc"] is None


def sse(*blocks: str) -> bytes:
    return "".join(f"{block}\n\n" for block in blocks).encode()


def events_block(seq: int) -> str:
    row = {"id": f"e{seq}", "seq": seq, "type": "a.b", "created_at": NOW, "status": "queued"}
    return f"id: {seq}\nevent: events\ndata: {json.dumps({'events': [row], 'cursor': seq})}"


def test_tail_reconnects_after_the_last_event() -> None:
    first = sse("retry: 1000", 'event: link\ndata: {"state": "connected", "previous": null}',
                events_block(5))  # fmt: skip
    answers = iter([first, sse(events_block(6))])
    fake = FakeGodel({})

    def stream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=next(answers))

    fake.answers[("GET", "/api/v1/stream")] = stream
    result = fake.invoke("events", "tail", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert [line.split()[3] for line in result.stdout.splitlines()] == ["e5", "e6"]
    assert result.stdout.startswith("2026-11-30T06:40:33Z #5 a.b e5 agent=- status=queued")
    assert "reconnecting…" in result.stderr and "closed the event stream" in result.stderr
    again = fake.requests[1]
    assert again.url.params["cursor"] == "5" and again.headers["Last-Event-ID"] == "5"


def test_tail_gives_up_after_retry_for() -> None:
    calls = 0

    def stream(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(200, content=sse(events_block(1)))
        raise httpx.ConnectError("Connection refused", request=request)

    result = FakeGodel({("GET", "/api/v1/stream"): stream}).invoke(
        "events", "tail", "--retry-for", "0.6"
    )
    assert result.exit_code == 1
    lines = error_lines(result)
    assert lines[0].startswith("reconnecting…") and len(lines) == 2, lines
    assert lines[1].startswith("error: gave up reconnecting after 0.6s: cannot connect")
    assert calls >= 3


def test_tail_does_not_retry_what_retrying_cannot_fix() -> None:
    def stream(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Last-Event-ID"):
            return httpx.Response(403, json={"detail": "key revoked"})
        return httpx.Response(200, content=sse(events_block(1)))

    fake = FakeGodel({("GET", "/api/v1/stream"): stream})
    result = fake.invoke("events", "tail")
    assert result.exit_code == 1 and "HTTP 403" in result.stderr
    assert len(fake.requests) == 2


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
    assert messages[1].data == {"events": [{"seq": 7}], "cursor": 7} and messages[1].id == "7"
    assert messages[0].id is None
    assert link_line(messages[0].data) == "link: connected -> fallback (connection)"


def test_event_line_keeps_the_runbooks_fields() -> None:
    row = {"seq": 5, "type": "agent.x", "id": "e1", "agent_id": None, "status": "queued",
           "created_at": NOW}  # fmt: skip
    fields = event_line(row).split()
    assert fields[0] == "2026-11-30T06:40:33Z"
    assert fields[2] == "agent.x" and fields[4] == "agent=-"  # awk $3 and $5


# -- dead letters, recovery, cache --------------------------------------------------------


def test_dead_show_adds_utc_times() -> None:
    dead = {"id": "d1", "created_at": NOW, "updated_at": NOW, "payload": {}, "attempts": 1}
    result = FakeGodel({("GET", "/admin/dead/events/d1"): dead}).invoke("dead", "show", "d1")
    body = json.loads(result.stdout)
    assert body["created_at"] == NOW and body["updated_at_utc"] == "2026-11-30 06:40:33 UTC"


def test_dead_show_of_an_event_that_is_not_dead_says_its_status() -> None:
    fake = FakeGodel({("GET", "/api/v1/events/e1"): EVENT | {"status": "processed"}})
    result = fake.invoke("dead", "show", "e1")
    assert result.exit_code == 1
    assert error_lines(result) == ["error: event e1 is not dead: its status is processed"]
    assert fake.seen() == [("GET", "/admin/dead/events/e1"), ("GET", "/api/v1/events/e1")]


def test_purge_asks_first_and_does_nothing_on_no() -> None:
    fake = FakeGodel({("GET", "/admin/dead"): {"types": {"a.b": 2}, "total": 2}})
    result = fake.invoke("dead", "purge", "--type", "a.b", input="n\n")
    assert result.exit_code == 1
    assert "Purge 2 dead events of type a.b?" in result.stdout
    assert "purge cancelled" in result.stderr
    assert fake.seen() == [("GET", "/admin/dead")]


def test_purge_with_nothing_dead_says_so() -> None:
    fake = FakeGodel({("GET", "/admin/dead"): {"types": {"c.d": 1}, "total": 1}})
    result = fake.invoke("dead", "purge", "--type", "a.b")
    assert result.exit_code == 0
    assert result.stdout.strip() == "no dead events of type a.b: nothing to purge"
    assert fake.seen() == [("GET", "/admin/dead")]


def test_counts_are_pluralised() -> None:
    fake = FakeGodel({
        ("GET", "/admin/dead"): {"types": {"a.b": 1}, "total": 1},
        ("POST", "/admin/dead/purge"): {"purged": 1},
        ("POST", "/admin/dead/replay"): {"replayed": 1},
        ("POST", "/admin/cache/warm"): {"warmed": 1, "duration_s": 0.5},
        ("GET", "/health"): health(undispatched=0),
        ("POST", "/admin/recovery/redis"): {"state": "connected", "replayed": 1,
                                            "duration_s": 75.2, "remaining": 0, "error": None},
    })  # fmt: skip
    lines = {
        ("dead", "purge", "--type", "a.b", "--yes"): "purged 1 dead event of type a.b",
        ("dead", "replay"): "replayed 1 dead event",
        ("cache", "warm"): "warmed 1 agent into the Redis cache in 0.5s",
        ("recover",): "link connected; replayed 1 event in 1m 15s; undispatched backlog 0",
    }
    for args, line in lines.items():
        result = fake.invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        assert result.stdout.strip().splitlines()[-1] == line


# -- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://godel:s3cret@db:5432/godel", "postgresql+psycopg://godel:***@db:5432/godel"),
        ("postgresql://u:p@ss@w@rd@db/godel", "postgresql://u:***@db/godel"),
        ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
        ("postgresql://db/godel?user=u&password=pw&sslmode=require",
         "postgresql://db/godel?user=u&password=***&sslmode=require"),
        ("postgresql://u:a@b@db/x?password=c", "postgresql://u:***@db/x?password=***"),
        ("postgresql://db:5432/godel?application_name=me@host", None),
        ("redis://user@redis:6379/0", None),
        ("sqlite:////var/lib/godel/godel.db", None),
    ],
)  # fmt: skip
def test_redact_url(url: str, shown: str | None) -> None:
    from godel.redaction import redact_url

    assert redact_url(url) == (url if shown is None else shown)


def test_redact_text_finds_urls_and_split_passwords() -> None:
    from godel.redaction import redact_text

    text = "cannot reach postgresql://u:pw@h/db: refused"
    assert redact_text(text) == "cannot reach postgresql://u:***@h/db: refused"
    # A driver that parsed `u:s3c@ret@h` as host `ret@h` names that host in its error.
    url = "postgresql://u:s3c@ret@h/db"
    assert redact_text("failed to resolve host 'ret@h'", url) == "failed to resolve host '***@h'"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.123, "0.12s"), (10 / 3, "3.33s"), (10, "10s"), (59.9, "59.9s"), (60, "1m"),
     (1197.3, "19m 57s"), (3600 * 3 + 125, "3h 2m"), (86400 * 2 + 3600 * 3, "2d 3h")],
)  # fmt: skip
def test_fmt_duration(seconds: float, text: str) -> None:
    from godel.cli.render import fmt_duration

    assert fmt_duration(seconds) == text


def test_fmt_time_and_plural() -> None:
    from godel.cli.render import fmt_number, fmt_time, plural

    assert fmt_time(NOW) == "2026-11-30 06:40:33 UTC" and fmt_time(None) == "-"
    assert [plural(n, "worker") for n in (0, 1, 2)] == ["0 workers", "1 worker", "2 workers"]
    assert [fmt_number(x) for x in (50.0, 12.5, 10 / 3)] == ["50", "12.5", "3.33"]
