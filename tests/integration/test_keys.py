"""Keys made at run time (/admin/keys) and the dashboard's session cookie, against a real
SQLite ledger and redis-server, with two API instances sharing them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from godel.api.deps import api_state
from godel.config import Settings
from tests.harness import TOKEN, Harness, make_settings, running

TTL_S = 0.5
READ_KEY = "reader-secret-0123456789abcdef"
PUBLISH_KEY = "publisher-secret-0123456789ab"
XHR = {"X-Requested-With": "test"}


def settings_for(sqlite_url: str, redis_url: str, **overrides: Any) -> Settings:
    keys = f"viewer:read:{READ_KEY},ingest:publish:{PUBLISH_KEY}"
    return make_settings(sqlite_url, redis_url, api_keys=keys, key_cache_ttl_s=TTL_S, **overrides)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def publish(h: Harness, secret: str) -> int:
    r = await h.anon.post("/api/v1/events", json={"type": "k.x"}, headers=bearer(secret))
    return r.status_code


async def until_status(h: Harness, secret: str, status: int, within_s: float) -> float:
    """Seconds until a publish with `secret` answers `status`; fails after `within_s`."""
    started = time.monotonic()
    while (code := await publish(h, secret)) != status:
        assert time.monotonic() - started < within_s, f"still {code} after {within_s}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def database_bytes(sqlite_url: str) -> bytes:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_a_key_made_on_one_instance_works_on_another_until_revoked(
    sqlite_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(sqlite_url, redis_url)
    caplog.set_level(logging.DEBUG)
    async with running(settings, workers=0) as one, running(settings, workers=0) as two:
        unknown = "gdl_" + "x" * 43
        assert await publish(two, unknown) == 401  # a miss, cached on instance two

        made = await one.client.post("/admin/keys", json={"name": "svc", "scopes": ["publish"]})
        assert made.status_code == 201, made.text
        body = made.json()
        secret = body.pop("secret")
        assert body == {
            "name": "svc",
            "scopes": ["publish"],
            "source": "stored",
            "created_at": body["created_at"],
        }
        assert secret.startswith("gdl_") and len(secret) == 47
        # No restart: instance two sees it, once its cached miss (if any) has expired.
        await until_status(two, secret, 202, within_s=TTL_S + 2)
        scoped = await two.anon.get("/health", headers=bearer(secret))
        assert scoped.status_code == 403  # publish only

        listed = (await two.client.get("/admin/keys")).json()["keys"]
        assert {(k["name"], k["source"]) for k in listed} == {
            ("admin", "admin-token"),
            ("viewer", "env"),
            ("ingest", "env"),
            ("svc", "stored"),
        }
        assert "secret" not in str(listed) and "digest" not in str(listed)

        # Hashed at rest: the database holds the SHA-256 digest, never the secret.
        raw = database_bytes(sqlite_url)
        assert secret.encode() not in raw
        assert hashlib.sha256(secret.encode()).hexdigest().encode() in raw
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("SELECT name, digest, scopes FROM api_keys").fetchall()
        assert rows == [("svc", hashlib.sha256(secret.encode()).hexdigest(), "publish")]

        assert await publish(two, secret) == 202  # cached as valid on two
        revoked = await one.client.delete("/admin/keys/svc")
        assert revoked.status_code == 200 and revoked.json() == {"revoked": "svc"}
        assert await publish(one, secret) == 401  # at once where it was revoked
        took = await until_status(two, secret, 401, within_s=TTL_S + 2)
        assert took <= TTL_S + 0.5, f"revocation took {took:.2f}s on the other instance"

    secrets_seen = [secret, READ_KEY, PUBLISH_KEY, TOKEN]
    assert not [s for s in secrets_seen if s in caplog.text], "a secret reached the log"


async def test_key_names_and_scopes_are_checked(sqlite_url: str, redis_url: str) -> None:
    async with running(settings_for(sqlite_url, redis_url), workers=0) as h:
        ok = await h.client.post("/admin/keys", json={"name": "a.b-c_1", "scopes": ["read"]})
        assert ok.status_code == 201
        cases = [
            ({"name": "a.b-c_1", "scopes": ["read"]}, 409),  # taken
            ({"name": "viewer", "scopes": ["read"]}, 409),  # an environment key's
            ({"name": "admin", "scopes": ["read"]}, 409),  # GODEL_ADMIN_TOKEN's
            ({"name": "no spaces", "scopes": ["read"]}, 422),
            ({"name": "x\n", "scopes": ["read"]}, 422),
            ({"name": "x", "scopes": ["write"]}, 422),
            ({"name": "x", "scopes": []}, 422),
            ({"name": "x", "scopes": ["read"], "secret": "mine"}, 422),  # never chosen
        ]
        for body, status in cases:
            r = await h.client.post("/admin/keys", json=body)
            assert r.status_code == status, (body, r.text)
            assert {"error", "detail"} <= set(r.json())
        assert (await h.client.delete("/admin/keys/nobody")).status_code == 404
        env = await h.client.delete("/admin/keys/viewer")
        assert env.status_code == 409 and "environment" in env.json()["detail"]


def cookie_header(response: httpx.Response) -> str:
    header: str = response.headers["set-cookie"]
    return header


async def login(h: Harness, secret: str, **headers: str) -> httpx.Response:
    return await h.anon.post("/login", json={"key": secret}, headers={**XHR, **headers})


def session(response: httpx.Response) -> dict[str, str]:
    value = response.cookies["godel_session"]
    return {"Cookie": f"godel_session={value}"}


async def test_login_sets_a_strict_http_only_cookie_that_is_not_the_secret(
    sqlite_url: str, redis_url: str
) -> None:
    async with running(settings_for(sqlite_url, redis_url), workers=0) as h:
        assert (await h.anon.get("/login")).status_code == 200
        no_xhr = await h.anon.post("/login", json={"key": READ_KEY})
        assert no_xhr.status_code == 403  # a cross-site form cannot sign anyone in
        bad = await login(h, "not-a-key")
        assert bad.status_code == 401 and "set-cookie" not in bad.headers
        publish_only = await login(h, PUBLISH_KEY)
        assert publish_only.status_code == 403 and "read scope" in publish_only.json()["detail"]

        r = await login(h, READ_KEY)
        assert r.status_code == 200 and r.json()["name"] == "viewer"
        header = cookie_header(r)
        assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/" in header
        assert "Secure" not in header  # plain http
        assert READ_KEY not in header
        assert hashlib.sha256(READ_KEY.encode()).hexdigest() in header  # names the key

        behind_tls = await login(h, READ_KEY, **{"X-Forwarded-Proto": "https"})
        assert "Secure" in cookie_header(behind_tls)


async def test_the_cookie_reads_but_writes_need_an_admin_login_and_the_header(
    sqlite_url: str, redis_url: str
) -> None:
    async with running(settings_for(sqlite_url, redis_url), workers=0) as h:
        reader = session(await login(h, READ_KEY))
        page = await h.anon.get("/", headers=reader)
        assert page.status_code == 200 and 'id="who">viewer<' in page.text
        assert 'id="admin-note"' in page.text
        assert (await h.anon.get("/health", headers=reader)).status_code == 200
        api_state(h.app).exiting = True  # the stream answers its first message and ends
        stream = await h.anon.get("/api/v1/stream", headers=reader)
        assert stream.status_code == 200 and "event: link" in stream.text
        api_state(h.app).exiting = False
        denied = await h.anon.post("/admin/cache/warm", headers={**reader, **XHR})
        assert denied.status_code == 403 and "admin scope" in denied.json()["detail"]

        admin = session(await login(h, TOKEN))
        page = await h.anon.get("/", headers=admin)
        assert 'id="who">admin<' in page.text and 'id="admin-note"' not in page.text
        csrf = await h.anon.post("/admin/cache/warm", headers=admin)
        assert csrf.status_code == 403 and "x-requested-with" in csrf.json()["detail"]
        assert (await h.anon.post("/admin/cache/warm", headers={**admin, **XHR})).status_code == 200

        forged = {"Cookie": admin["Cookie"][:-3] + "abc"}
        assert (await h.anon.get("/health", headers=forged)).status_code == 401
        redirect = await h.anon.get("/", headers=forged)
        assert redirect.status_code == 303 and redirect.headers["location"] == "/login"
        assert "godel_session=" in cookie_header(redirect)  # the dead cookie is removed

        out = await h.anon.post("/logout", headers=admin)
        assert out.status_code == 200
        assert re.search(r"godel_session=.*(Max-Age=0|expires=)", cookie_header(out), re.I)


async def test_a_session_is_accepted_by_every_instance_and_ends_with_its_key(
    sqlite_url: str, redis_url: str
) -> None:
    settings = settings_for(sqlite_url, redis_url)
    async with running(settings, workers=0) as one, running(settings, workers=0) as two:
        made = await one.client.post("/admin/keys", json={"name": "ops", "scopes": ["read"]})
        cookie = session(await login(one, made.json()["secret"]))
        assert (await two.anon.get("/", headers=cookie)).status_code == 200
        await one.client.delete("/admin/keys/ops")
        assert (await one.anon.get("/", headers=cookie)).status_code == 303
        started = time.monotonic()
        while (await two.anon.get("/health", headers=cookie)).status_code != 401:
            assert time.monotonic() - started < TTL_S + 2
            await asyncio.sleep(0.02)


async def test_bearer_renders_the_dashboard_without_a_login(
    sqlite_url: str, redis_url: str
) -> None:
    async with running(settings_for(sqlite_url, redis_url), workers=0) as h:
        assert (await h.anon.get("/")).headers["location"] == "/login"
        page = await h.anon.get("/", headers=bearer(READ_KEY))
        assert page.status_code == 200 and "Redis connected" in page.text


async def test_pages_carry_no_inline_script(sqlite_url: str, redis_url: str) -> None:
    async with running(settings_for(sqlite_url, redis_url), workers=0) as h:
        for path in ("/login", "/"):
            html = (await h.client.get(path)).text
            assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
            assert not re.search(r"\son[a-z]+=", html), path
        assert (await h.anon.get("/static/login.js")).status_code == 200
