"""Who is calling, and may they: `Authorization: Bearer <secret>` (or the dashboard's
session cookie) -> a Principal -> its scopes against the route's.

    no credential                  401  WWW-Authenticate: Bearer
    a credential nobody knows      401  WWW-Authenticate: Bearer error="invalid_token"
    a known one without the scope  403
    GODEL_AUTH_MODE=open           everything allowed (a warning at start, a banner on the page)

Where keys come from, cheapest first: GODEL_ADMIN_TOKEN and GODEL_API_KEYS sit in a dict
by the digest of their secret, built at start; keys made at run time live in the database
(`store.keys`) and each instance caches what it looked up (found or not) for
GODEL_KEY_CACHE_TTL_S, so a key created or revoked anywhere takes effect on every
instance within that time, without a restart. Only a token shaped like a generated secret
(`gdl_…`) is ever looked up in the database.

No secret is ever compared as it is: a presented token is hashed and found by its digest
(in the dict or by the table's index), so timing can tell at most something about the
digest of the caller's own guess, never about a stored secret; session cookies are checked
with `hmac.compare_digest`.

FastAPI routes take `Depends(require(Scope.READ))`; the ingest fast path (a plain
Starlette route) calls `authorize(request, Scope.PUBLISH)` first thing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Route

from godel.api.deps import api_state
from godel.api.session import COOKIE, Sessions
from godel.config import Settings
from godel.credentials import (
    ADMIN_TOKEN_NAME,
    SECRET_PREFIX,
    SHORT_SECRET,
    Scope,
    digest,
    grants,
    parse_scopes,
)

log = logging.getLogger("godel.api.auth")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-requested-with"
MAX_SECRET_CHARS = 256
CACHE_MAX_ENTRIES = 10_000

Lookup = Callable[[str], Awaitable[dict[str, Any] | None]]
# Declares the scheme in the OpenAPI document; the check itself is `Authenticator`'s.
BEARER = HTTPBearer(
    auto_error=False,
    description="An API key (GODEL_API_KEYS or `godel keys create`) or GODEL_ADMIN_TOKEN.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `digest` is its secret's (what a session cookie names)."""

    name: str
    scopes: frozenset[Scope]
    source: str  # admin-token | env | stored | open
    digest: str = ""

    def can(self, scope: Scope) -> bool:
        return grants(self.scopes, scope)


OPEN = Principal("open-mode", frozenset(Scope), "open")


def unauthorized(detail: str, invalid: bool = False) -> HTTPException:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str) -> HTTPException:
    return HTTPException(403, detail)


@dataclass(slots=True)
class _Cached:
    principal: Principal | None
    expires: float


class KeyRing:
    """Secrets -> Principals: the static keys, then the database through a TTL cache.

    Misses are cached too (a flood of one bad key costs one query per TTL), the cache is
    bounded (LRU), and concurrent lookups of one digest share a single query."""

    def __init__(
        self,
        static: dict[str, Principal],
        lookup: Lookup,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = CACHE_MAX_ENTRIES,
    ) -> None:
        self._static = static
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._pending: dict[str, asyncio.Task[Principal | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, admin_token: str, lookup: Lookup) -> KeyRing:
        static = {digest(admin_token): _admin(admin_token)}
        for key in settings.env_keys:
            secret = key.secret.get_secret_value()
            if len(secret) < SHORT_SECRET:
                log.warning("GODEL_API_KEYS: key %r has a short secret (< 16 characters)", key.name)
            static[digest(secret)] = Principal(key.name, key.scopes, "env", digest(secret))
        return cls(static, lookup, settings.key_cache_ttl_s)

    async def resolve(self, secret: str) -> Principal | None:
        """The Principal a bearer secret authenticates, or None."""
        found = self._static.get(digest(secret))
        if found is not None:
            return found
        if not secret.startswith(SECRET_PREFIX) or len(secret) > MAX_SECRET_CHARS:
            return None  # cannot be a stored key: no query
        return await self.resolve_digest(digest(secret))

    async def resolve_digest(self, key_digest: str) -> Principal | None:
        found = self._static.get(key_digest)
        if found is not None:
            return found
        cached = self._cache.get(key_digest)
        if cached is not None and cached.expires > self._clock():
            self._cache.move_to_end(key_digest)
            return cached.principal
        task = self._pending.get(key_digest)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key_digest))
            self._pending[key_digest] = task
            task.add_done_callback(lambda _: self._pending.pop(key_digest, None))
        # Shielded: one caller giving up must not cancel the query the others wait for.
        return await asyncio.shield(task)

    async def _load(self, key_digest: str) -> Principal | None:
        row = await self._lookup(key_digest)  # LedgerUnavailable -> 503, nothing cached
        principal = None
        if row is not None:
            principal = Principal(row["name"], parse_scopes(row["scopes"]), "stored", key_digest)
        self._cache[key_digest] = _Cached(principal, self._clock() + self._ttl_s)
        self._cache.move_to_end(key_digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return principal

    def forget(self) -> None:
        """Drop the cache (this instance revoked a key: no need to wait for the TTL here)."""
        self._cache.clear()


def _admin(token: str) -> Principal:
    return Principal(ADMIN_TOKEN_NAME, frozenset({Scope.ADMIN}), "admin-token", digest(token))


class Authenticator:
    """The one check every route goes through (see the module docstring)."""

    def __init__(self, settings: Settings, keyring: KeyRing, sessions: Sessions) -> None:
        self.open = settings.auth_mode == "open"
        self.metrics_need_read = settings.metrics_require_auth
        self.keyring = keyring
        self.sessions = sessions

    async def authenticate(self, request: Request) -> Principal | None:
        """The caller, None when it shows no credential; a bad bearer token is a 401."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise unauthorized("send the key as Authorization: Bearer <key>", invalid=True)
            principal = await self.keyring.resolve(token)
            if principal is None:
                raise unauthorized("the bearer credential is not valid", invalid=True)
            return principal
        return await self.from_cookie(request)

    async def from_cookie(self, request: Request) -> Principal | None:
        value = request.cookies.get(COOKIE)
        key_digest = self.sessions.verify(value) if value else None
        if key_digest is None:
            return None
        principal = await self.keyring.resolve_digest(key_digest)
        # CSRF: SameSite=Strict keeps the cookie off cross-site requests; a custom header
        # besides makes any cross-origin write need a CORS preflight, which is refused.
        unsafe = request.method not in SAFE_METHODS
        if principal is not None and unsafe and CSRF_HEADER not in request.headers:
            raise forbidden(f"a write with the session cookie needs the {CSRF_HEADER} header")
        return principal

    async def authorize(self, request: Request, needed: Scope) -> Principal:
        """The caller if it holds `needed`; else 401 (no or bad credential) or 403."""
        if self.open:
            principal: Principal | None = OPEN
        else:
            principal = await self.authenticate(request)
        if principal is None:
            raise unauthorized(f"send a key with the {needed} scope: Authorization: Bearer <key>")
        if not principal.can(needed):
            raise forbidden(f"key {principal.name!r} lacks the {needed} scope")
        request.state.principal = principal
        return principal


def authenticator(request: Request) -> Authenticator:
    auth = api_state(request.app).auth
    if auth is None:
        raise RuntimeError("create_app did not install the authenticator")
    return auth


async def authorize(request: Request, needed: Scope) -> Principal:
    """For plain Starlette routes (the ingest fast path): call first thing."""
    return await authenticator(request).authorize(request, needed)


def require(needed: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: `Depends(require(Scope.READ))`."""

    async def dependency(
        request: Request, _: HTTPAuthorizationCredentials | None = Security(BEARER)
    ) -> Principal:
        return await authorize(request, needed)

    dependency.__name__ = f"require_{needed}"
    return dependency


async def metrics_access(request: Request) -> None:
    """/metrics is open unless GODEL_METRICS_REQUIRE_AUTH is set."""
    if authenticator(request).metrics_need_read:
        await authorize(request, Scope.READ)


def guard_routes(routes: list[Any], needs: dict[str, Scope]) -> None:
    """Put the check in front of plain routes made elsewhere (FastAPI's /docs, /redoc,
    /openapi.json), which take no dependencies: each path in `needs` is wrapped."""
    for index, route in enumerate(routes):
        if not isinstance(route, Route) or route.path not in needs:
            continue
        routes[index] = Route(
            route.path,
            _guarded(route.endpoint, needs[route.path]),
            methods=sorted(route.methods or ()),
            name=route.name,
            include_in_schema=route.include_in_schema,
        )


def _guarded(endpoint: Callable[..., Any], needed: Scope) -> Callable[[Request], Awaitable[Any]]:
    async def guarded(request: Request) -> Any:
        await authorize(request, needed)
        return await endpoint(request)

    return guarded
