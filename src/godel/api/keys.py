"""/admin/keys: API keys made and revoked at run time (the admin scope).

The secret is made here, answered once by the create and never again: the database keeps
its SHA-256 digest only. Every instance sees a new or revoked key within
GODEL_KEY_CACHE_TTL_S (see `godel.api.auth`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from godel.api.auth import authenticator, require
from godel.api.deps import runtime
from godel.credentials import (
    ADMIN_TOKEN_NAME,
    NAME_PATTERN,
    Scope,
    digest,
    format_scopes,
    new_secret,
    parse_scopes,
)
from godel.errors import Conflict, NotFound
from godel.runtime import Runtime
from godel.store import keys

ADMIN = [Depends(require(Scope.ADMIN))]
router = APIRouter(prefix="/admin/keys", tags=["keys"], dependencies=ADMIN)
KeyName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64)]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN, max_length=64, description="Letters, digits, '.', '_', '-'."
    )
    scopes: list[Scope] = Field(min_length=1, max_length=3)


def _env_names(rt: Runtime) -> set[str]:
    return {k.name for k in rt.settings.env_keys} | {ADMIN_TOKEN_NAME}


def _public(row: dict[str, Any], source: str) -> dict[str, Any]:
    scopes = parse_scopes(row["scopes"])
    return {
        "name": row["name"],
        "scopes": [s.value for s in Scope if s in scopes],
        "source": source,
        "created_at": row.get("created_at"),
    }


@router.post("", status_code=201)
async def create_key(key: KeyIn, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Make a key; the answer holds its `secret`, shown this once."""
    if key.name in _env_names(rt):
        raise HTTPException(409, f"{key.name!r} is a key of the environment; pick another name")
    secret = new_secret()
    try:
        scopes = format_scopes(key.scopes)
        row = await rt.db.write(keys.create_key, key.name, digest(secret), scopes)
    except Conflict as err:
        raise HTTPException(409, str(err)) from None
    return {**_public(row, "stored"), "secret": secret}


@router.get("")
async def list_keys(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Every key by name and scopes, never a secret: the environment's, then the stored."""
    env = [
        _public({"name": k.name, "scopes": format_scopes(k.scopes)}, "env")
        for k in rt.settings.env_keys
    ]
    admin = _public({"name": ADMIN_TOKEN_NAME, "scopes": "admin"}, "admin-token")
    stored = [_public(row, "stored") for row in await rt.db.read(keys.list_keys)]
    return {"keys": [admin, *env, *stored]}


@router.delete("/{name}")
async def revoke_key(
    name: KeyName, request: Request, rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Revoke a stored key: here at once, on every other instance within the cache TTL."""
    if name in _env_names(rt):
        raise HTTPException(409, f"{name!r} comes from the environment; remove it there")
    if not await rt.db.write(keys.revoke_key, name):
        raise NotFound(f"no stored key named {name!r}")
    authenticator(request).keyring.forget()
    return {"revoked": name}
