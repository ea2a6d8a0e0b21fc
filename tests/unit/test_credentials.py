"""Scopes, GODEL_API_KEYS and the settings around credentials: parsed once at start, one
line naming the variable on an error, and never the secret."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from godel.cli import app
from godel.cli.keys import SCOPES
from godel.config import load_settings
from godel.credentials import (
    SECRET_PREFIX,
    Scope,
    digest,
    format_scopes,
    grants,
    new_secret,
    parse_api_keys,
    parse_scopes,
)
from godel.errors import ConfigError

SECRET = "s3cr3t-value-never-shown"


def test_admin_implies_the_other_scopes() -> None:
    assert grants({Scope.ADMIN}, Scope.READ) and grants({Scope.ADMIN}, Scope.PUBLISH)
    assert grants({Scope.READ}, Scope.READ) and not grants({Scope.READ}, Scope.PUBLISH)
    assert not grants({Scope.PUBLISH, Scope.READ}, Scope.ADMIN)


def test_scopes_parse_and_format_in_one_order() -> None:
    assert parse_scopes("read+publish") == {Scope.READ, Scope.PUBLISH}
    assert format_scopes({Scope.READ, Scope.PUBLISH}) == "publish+read"
    with pytest.raises(ValueError, match="unknown scope 'write'"):
        parse_scopes("read+write")


def test_the_cli_offers_the_same_scopes() -> None:
    assert tuple(s.value for s in Scope) == SCOPES


def test_env_keys_parse() -> None:
    keys = parse_api_keys(f" ingest:publish:{SECRET} , grafana:read+publish:a:b:c ,")
    assert [(k.name, k.scopes) for k in keys] == [
        ("ingest", {Scope.PUBLISH}),
        ("grafana", {Scope.READ, Scope.PUBLISH}),
    ]
    assert keys[0].secret.get_secret_value() == SECRET
    assert keys[1].secret.get_secret_value() == "a:b:c"  # a secret may hold colons
    assert SECRET not in repr(keys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SECRET, "entry 1 is not <name>:<scopes>:<secret>"),
        (f"a:read:{SECRET},b:read", "entry 2 ('b') is not <name>:<scopes>:<secret>"),
        (f"a:reed:{SECRET}", "entry 1 ('a'): unknown scope 'reed'"),
        (f"a:read:{SECRET},a:publish:other", "entry 2 ('a'): the name is used twice"),
        (f"a:read:{SECRET},b:publish:{SECRET}", "entry 2 ('b'): the same secret"),
        (f"admin:read:{SECRET}", "GODEL_ADMIN_TOKEN's"),
        (f"no spaces:read:{SECRET}", "a key name is"),
    ],
)
def test_env_key_errors_name_the_entry_never_the_secret(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_api_keys(text)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)


def test_settings_validate_the_keys_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GODEL_API_KEYS", f"grafana:raed:{SECRET}")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    line = str(caught.value)
    assert line.startswith("invalid GODEL_API_KEYS:") and "'raed'" in line
    assert SECRET not in line and "\n" not in line

    monkeypatch.setenv("GODEL_API_KEYS", f"grafana:read:{SECRET}")
    monkeypatch.setenv("GODEL_ADMIN_TOKEN", SECRET)
    with pytest.raises(ConfigError, match="GODEL_ADMIN_TOKEN's secret") as clash:
        load_settings()
    assert SECRET not in str(clash.value)

    monkeypatch.setenv("GODEL_ADMIN_TOKEN", "another")
    settings = load_settings()
    assert [k.name for k in settings.env_keys] == ["grafana"]
    assert SECRET not in repr(settings)
    monkeypatch.setenv("GODEL_API_KEYS", "  ")
    assert load_settings().env_keys == []


def test_serve_refuses_bad_keys_with_exit_2_and_one_line() -> None:
    env = {"GODEL_API_KEYS": f"ingest:publish+wrong:{SECRET}"}
    result = CliRunner().invoke(app, ["serve"], env=env)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "GODEL_API_KEYS" in lines[0] and "'wrong'" in lines[0]
    assert SECRET not in result.output


@pytest.mark.parametrize(
    ("name", "value"),
    [("GODEL_AUTH_MODE", "maybe"), ("GODEL_KEY_CACHE_TTL_S", "-1"), ("GODEL_SESSION_TTL_S", "1")],
)
def test_other_auth_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"invalid {name}"):
        load_settings()


def test_generated_secrets_are_random_and_stored_as_sha256() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith(SECRET_PREFIX) and len(a) == len(SECRET_PREFIX) + 43
    assert digest(a) == hashlib.sha256(a.encode()).hexdigest() and a not in digest(a)
