"""The dashboard's session cookie: a signed, expiring reference to the key that logged in.

    godel_session = v1.<digest of the key's secret>.<expiry, epoch s>.<HMAC-SHA256, base64url>

Never the secret itself. Stateless, so any API instance accepts a cookie another one
issued, provided they share the signing key: GODEL_SESSION_SECRET, else one derived from
GODEL_ADMIN_TOKEN (rotating either ends every session). Each use resolves the digest to
the key again, so revoking the key ends its sessions too (within GODEL_KEY_CACHE_TTL_S),
and the session has the key's current scopes. Logging out deletes the browser's cookie;
a copy taken before stays valid until it expires (GODEL_SESSION_TTL_S).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "godel_session"
VERSION = "v1"
CONTEXT = b"godel dashboard session v1"


def signing_key(session_secret: str | None, admin_token: str) -> bytes:
    """The HMAC key: from GODEL_SESSION_SECRET when set, else from the admin token; the
    context string keeps it apart from any other use of the same secret."""
    base = session_secret or admin_token
    return hmac.new(base.encode(), CONTEXT, hashlib.sha256).digest()


class Sessions:
    """Issues and checks session cookie values."""

    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _sign(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def issue(self, key_digest: str, now: float | None = None) -> tuple[str, int]:
        """A cookie value for the key with this digest, and when it expires."""
        expires = int((time.time() if now is None else now) + self.ttl_s)
        body = f"{VERSION}.{key_digest}.{expires}"
        return f"{body}.{self._sign(body)}", expires

    def verify(self, value: str, now: float | None = None) -> str | None:
        """The key digest a genuine, unexpired value names; None for anything else."""
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != VERSION or not parts[2].isdigit():
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3].encode(), self._sign(body).encode()):
            return None
        if int(parts[2]) <= (time.time() if now is None else now):
            return None
        return parts[1]


def is_https(request: Request) -> bool:
    """Served over https, directly or behind a proxy that says so (X-Forwarded-Proto)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, value: str, max_age_s: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=is_https(request)
    )
