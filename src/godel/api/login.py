"""The dashboard's sign-in: GET /login (the form), POST /login (a key in, a session cookie
out), POST /logout. The cookie is `godel.api.session`'s; the page works with the external
static/login.js and the stylesheet only (no inline script: the CSP forbids it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from godel.api.auth import CSRF_HEADER, authenticator, forbidden, unauthorized
from godel.api.dashboard import templates
from godel.api.errors import ORJSONResponse
from godel.api.session import clear_cookie, set_cookie
from godel.credentials import Scope

router = APIRouter(tags=["dashboard"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: SecretStr = Field(min_length=1, max_length=512, description="A key or the admin token.")


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "login.html", {"open_mode": authenticator(request).open}
    )


@router.post("/login")
async def login(body: LoginIn, request: Request) -> ORJSONResponse:
    """Exchange a key with the read scope for an HttpOnly, SameSite=Strict session cookie.
    Needs the X-Requested-With header (no cross-site form can send it)."""
    if CSRF_HEADER not in request.headers:
        raise forbidden(f"sign in from the dashboard's page (the {CSRF_HEADER} header)")
    auth = authenticator(request)
    principal = await auth.keyring.resolve(body.key.get_secret_value().strip())
    if principal is None:
        raise unauthorized("that key is not valid", invalid=True)
    if not principal.can(Scope.READ):
        raise forbidden(f"key {principal.name!r} lacks the read scope the dashboard needs")
    value, expires = auth.sessions.issue(principal.digest)
    content: dict[str, Any] = {
        "name": principal.name,
        "scopes": sorted(s.value for s in principal.scopes),
        "expires_at": expires,
    }
    response = ORJSONResponse(content)
    set_cookie(response, request, value, auth.sessions.ttl_s)
    return response


@router.post("/logout")
async def logout(request: Request) -> ORJSONResponse:
    """Delete the session cookie from this browser."""
    response = ORJSONResponse({"logged_out": True})
    clear_cookie(response, request)
    return response
