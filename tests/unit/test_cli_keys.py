"""`godel keys`: what it sends to /admin/keys and what it prints (the secret alone on
stdout, once)."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from godel.cli import app
from tests.unit.test_cli import FakeGodel, error_lines

SECRET = "gdl_" + "s" * 43
MADE = {"name": "ingest", "scopes": ["publish", "read"], "source": "stored",
        "created_at": 1_796_020_833.0, "secret": SECRET}  # fmt: skip


def test_create_prints_the_secret_alone_on_stdout() -> None:
    fake = FakeGodel({("POST", "/admin/keys"): (201, MADE)})
    result = fake.invoke("keys", "create", "ingest", "--scope", "publish", "--scope", "read")
    assert result.exit_code == 0, result.output
    assert result.stdout == SECRET + "\n"
    assert (
        "created key ingest (publish+read)" in result.stderr and "shown only now" in result.stderr
    )
    (request,) = fake.requests
    assert json.loads(request.content) == {"name": "ingest", "scopes": ["publish", "read"]}
    assert request.headers["Authorization"] == "Bearer t"


def test_create_as_json_and_unknown_scopes() -> None:
    fake = FakeGodel({("POST", "/admin/keys"): (201, MADE)})
    result = fake.invoke("keys", "create", "ingest", "--scope", "publish", "--json")
    assert json.loads(result.stdout)["secret"] == SECRET
    bad = fake.invoke("keys", "create", "x", "--scope", "write")
    assert bad.exit_code == 2 and error_lines(bad) == [
        "error: unknown scope 'write'; scopes are publish, read, admin"
    ]
    assert len(fake.requests) == 1  # nothing sent for the bad one


def test_list_shows_names_scopes_and_sources() -> None:
    keys = [
        {"name": "admin", "scopes": ["admin"], "source": "admin-token", "created_at": None},
        {"name": "grafana", "scopes": ["read"], "source": "env", "created_at": None},
        {k: v for k, v in MADE.items() if k != "secret"},
    ]
    fake = FakeGodel({("GET", "/admin/keys"): {"keys": keys}})
    result = fake.invoke("keys", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "scopes", "source", "created"]
    assert lines[2].split()[:3] == ["grafana", "read", "env"]
    assert lines[3].split()[:3] == ["ingest", "publish+read", "stored"] and "UTC" in lines[3]


def test_revoke_names_the_key_in_the_path() -> None:
    fake = FakeGodel({("DELETE", "/admin/keys/ingest"): {"revoked": "ingest"}})
    result = fake.invoke("keys", "revoke", "ingest")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("revoked ingest;")
    missing = FakeGodel({}).invoke("keys", "revoke", "nobody")
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr


def test_a_401_without_a_credential_says_how_to_pass_one() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "unauthorized", "detail": "send a key"})

    fake = FakeGodel({("GET", "/health"): refuse})
    env = {"GODEL_ADMIN_TOKEN": "", "GODEL_API_KEY": ""}
    result = CliRunner().invoke(
        app, ["status", "--url", "http://godel.test"], obj=fake.transport, env=env
    )
    assert result.exit_code == 1
    assert error_lines(result) == [
        "error: the server wants a credential (HTTP 401): send a key; pass --token, "
        "GODEL_ADMIN_TOKEN or GODEL_API_KEY"
    ]


def test_godel_api_key_is_the_credential_when_no_admin_token() -> None:
    fake = FakeGodel({("GET", "/health"): (500, {"detail": "x"})})
    env = {"GODEL_API_KEY": "reader-key", "GODEL_ADMIN_TOKEN": ""}
    CliRunner().invoke(app, ["status", "--url", "http://g.test"], obj=fake.transport, env=env)
    assert fake.requests[0].headers["Authorization"] == "Bearer reader-key"
