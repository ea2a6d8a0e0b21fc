"""Every route of the app x {no credential, a key without the scope, a key with it}.

The routes come from the app's own route table: a route missing from EXPECTED fails the
test, so a new route cannot ship without deciding who may call it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from godel.api.deps import api_state
from godel.config import Settings
from godel.credentials import Scope
from tests.harness import TOKEN, Harness, make_settings, running

OPEN = "open"
DASHBOARD = "dashboard"  # read; without a credential a redirect to /login, not a 401
Need = Scope | str
EXPECTED: dict[tuple[str, str], Need] = {
    ("POST", "/api/v1/events"): Scope.PUBLISH,
    ("GET", "/api/v1/events"): Scope.READ,
    ("GET", "/api/v1/events/{event_id}"): Scope.READ,
    ("POST", "/api/v1/agents"): Scope.ADMIN,
    ("GET", "/api/v1/agents"): Scope.READ,
    ("GET", "/api/v1/agents/{agent_id}"): Scope.READ,
    ("GET", "/api/v1/stream"): Scope.READ,
    ("GET", "/api/v1/history"): Scope.READ,
    ("GET", "/api/v1/workers"): Scope.READ,
    ("POST", "/admin/recovery/redis"): Scope.ADMIN,
    ("POST", "/admin/cache/warm"): Scope.ADMIN,
    ("GET", "/admin/dead"): Scope.READ,
    ("GET", "/admin/dead/events"): Scope.READ,
    ("GET", "/admin/dead/events/{event_id}"): Scope.READ,
    ("POST", "/admin/dead/replay"): Scope.ADMIN,
    ("POST", "/admin/dead/purge"): Scope.ADMIN,
    ("POST", "/admin/keys"): Scope.ADMIN,
    ("GET", "/admin/keys"): Scope.ADMIN,
    ("DELETE", "/admin/keys/{name}"): Scope.ADMIN,
    ("GET", "/health"): Scope.READ,
    ("GET", "/health/live"): OPEN,
    ("GET", "/health/ready"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/"): DASHBOARD,
    ("GET", "/login"): OPEN,
    ("POST", "/login"): OPEN,
    ("POST", "/logout"): OPEN,
    ("GET", "/static/{path}"): OPEN,
    ("GET", "/openapi.json"): Scope.READ,
    ("GET", "/docs"): Scope.READ,
    ("GET", "/docs/assets/{path}"): OPEN,  # Swagger UI's files, like /static
}
KEYS = {
    "pub": (Scope.PUBLISH, "pub-secret-0123456789abcdef"),
    "reader": (Scope.READ, "read-secret-0123456789abcdef"),
    "both": ("publish+read", "both-secret-0123456789abcdef"),
}
# A key holding everything but the needed scope, and one holding it.
WRONG = {Scope.PUBLISH: "reader", Scope.READ: "pub", DASHBOARD: "pub", Scope.ADMIN: "both"}
RIGHT = {Scope.PUBLISH: "pub", Scope.READ: "reader", DASHBOARD: "reader", Scope.ADMIN: None}
SAMPLE = {"event_id": "e-1", "agent_id": "a-1", "name": "nobody", "path": "x.css"}
BODIES = {("POST", "/api/v1/events"): {"type": "auth.check"}}


def settings_for(sqlite_url: str, redis_url: str, **overrides: Any) -> Settings:
    keys = ",".join(f"{name}:{scope}:{secret}" for name, (scope, secret) in KEYS.items())
    return make_settings(sqlite_url, redis_url, api_keys=keys, **overrides)


def routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, the included routers' too, as FastAPI resolves them."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, Mount):
            yield "GET", f"{context.path}/{{path}}"
        else:
            assert context.path is not None, context
            for method in sorted((context.methods or set()) - {"HEAD"}):
                yield method, context.path


def bearer(key: str | None) -> dict[str, str]:
    secret = TOKEN if key is None else KEYS[key][1]
    return {"Authorization": f"Bearer {secret}"}


async def call(h: Harness, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    url = path.format(**SAMPLE)
    # Every request carries the dashboard's CSRF header: what is tested here is the scope.
    headers = {**headers, "X-Requested-With": "test"}
    body = BODIES.get((method, path))
    return await h.anon.request(method, url, headers=headers, json=body, follow_redirects=False)


@pytest.fixture
def settings(sqlite_url: str, redis_url: str) -> Settings:
    return settings_for(sqlite_url, redis_url)


async def test_every_route_has_an_expected_scope(settings: Settings) -> None:
    async with running(settings, workers=0) as h:
        found = set(routes(h.app))
    assert found - set(EXPECTED) == set(), "add these routes to EXPECTED (who may call them?)"
    assert set(EXPECTED) - found == set(), "EXPECTED names routes the app no longer has"


async def test_every_route_without_with_the_wrong_and_with_the_right_scope(
    settings: Settings,
) -> None:
    problems: list[str] = []
    async with running(settings, workers=0) as h:
        # A stream ends at once when the server is exiting: it can be asked for in-process.
        api_state(h.app).exiting = True
        for (method, path), need in sorted(EXPECTED.items()):
            where = f"{method} {path}"
            anonymous = await call(h, method, path, {})
            if need == OPEN:
                if anonymous.status_code in (401, 403):
                    problems.append(f"{where}: open route answered {anonymous.status_code}")
                continue
            if need == DASHBOARD:
                if anonymous.status_code != 303 or anonymous.headers["location"] != "/login":
                    problems.append(f"{where}: no credential gave {anonymous.status_code}")
            elif anonymous.status_code != 401 or anonymous.json()["error"] != "unauthorized":
                problems.append(f"{where}: no credential gave {anonymous.status_code}")
            elif anonymous.headers.get("www-authenticate") != "Bearer":
                problems.append(f"{where}: 401 without WWW-Authenticate: Bearer")
            wrong = await call(h, method, path, bearer(WRONG[need]))
            if wrong.status_code != 403 or wrong.json()["error"] != "forbidden":
                problems.append(f"{where}: key {WRONG[need]} gave {wrong.status_code}")
            right = await call(h, method, path, bearer(RIGHT[need]))
            if right.status_code in (401, 403) or right.status_code >= 500:
                problems.append(f"{where}: key {RIGHT[need]} gave {right.status_code}")
    assert not problems, "\n".join(problems)


async def test_admin_implies_read_and_publish(settings: Settings) -> None:
    async with running(settings, workers=0) as h:
        assert (await h.client.get("/api/v1/events")).status_code == 200
        assert (await h.post({"type": "auth.admin"})).status_code == 202
        assert (await h.client.get("/")).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-secret", "Bearer gdl_not-stored-anywhere", "Basic dXNlcjpwYXNz", "Bearer"],
)
async def test_a_credential_nobody_knows_is_401_invalid_token(
    settings: Settings, header: str
) -> None:
    async with running(settings, workers=0) as h:
        r = await h.anon.get("/health", headers={"Authorization": header})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        r = await h.anon.get("/", headers={"Authorization": header})
        assert r.status_code == 401  # a bad key is an error, not a trip to the login page


async def test_metrics_can_require_read(sqlite_url: str, redis_url: str) -> None:
    settings = settings_for(sqlite_url, redis_url, metrics_require_auth=True)
    async with running(settings, workers=0) as h:
        assert (await h.anon.get("/metrics")).status_code == 401
        assert (await h.anon.get("/metrics", headers=bearer("pub"))).status_code == 403
        r = await h.anon.get("/metrics", headers=bearer("reader"))
        assert r.status_code == 200 and "godel_redis_up" in r.text
        assert (await h.anon.get("/health/ready")).status_code == 200


async def test_open_mode_allows_everything_and_says_so(
    sqlite_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(sqlite_url, redis_url, auth_mode="open")
    with caplog.at_level(logging.WARNING):
        async with running(settings, workers=0) as h:
            api_state(h.app).exiting = True
            for (method, path), _ in sorted(EXPECTED.items()):
                r = await call(h, method, path, {})
                assert r.status_code not in (401, 403, 303), (method, path, r.status_code)
            page = (await h.anon.get("/")).text
            assert 'id="open-mode"' in page and "GODEL_AUTH_MODE=open" in page
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("GODEL_AUTH_MODE=open" in r.getMessage() for r in warnings)


async def test_required_mode_has_no_open_banner(settings: Settings) -> None:
    async with running(settings, workers=0) as h:
        page = (await h.client.get("/")).text
        assert 'id="open-mode"' not in page and 'id="who">admin<' in page
