"""The KeyRing: static keys without a query, stored keys through a TTL cache that also
remembers misses, coalesces concurrent lookups and stays bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from godel.api.auth import KeyRing, Principal
from godel.credentials import Scope, digest, new_secret
from godel.errors import LedgerUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Table:
    """Stands in for the api_keys table: digests -> rows; counts lookups."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.lookups: list[str] = []
        self.gate: asyncio.Event | None = None
        self.down = False

    def add(self, name: str, scopes: str) -> str:
        secret = new_secret()
        self.rows[digest(secret)] = {"name": name, "scopes": scopes}
        return secret

    async def lookup(self, key_digest: str) -> dict[str, Any] | None:
        self.lookups.append(key_digest)
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise LedgerUnavailable("connection refused")
        return self.rows.get(key_digest)


def ring(table: Table, clock: Clock, **kw: Any) -> KeyRing:
    admin = Principal("admin", frozenset({Scope.ADMIN}), "admin-token", digest("tok"))
    return KeyRing({digest("tok"): admin}, table.lookup, 5.0, clock=clock, **kw)


async def test_static_keys_and_foreign_tokens_never_query() -> None:
    table, clock = Table(), Clock()
    keys = ring(table, clock)
    found = await keys.resolve("tok")
    assert found is not None and found.name == "admin"
    assert await keys.resolve("not-a-generated-secret") is None
    assert await keys.resolve("gdl_" + "x" * 400) is None  # too long to be ours
    assert table.lookups == []


async def test_stored_keys_are_cached_for_the_ttl_hits_and_misses_alike() -> None:
    table, clock = Table(), Clock()
    keys = ring(table, clock)
    secret = table.add("ingest", "publish")
    missing = new_secret()
    for _ in range(3):
        found = await keys.resolve(secret)
        assert found is not None and found.scopes == {Scope.PUBLISH} and found.source == "stored"
        assert await keys.resolve(missing) is None
    assert len(table.lookups) == 2
    del table.rows[digest(secret)]  # revoked elsewhere
    clock.now += 4.9
    assert await keys.resolve(secret) is not None  # still cached
    clock.now += 0.2
    assert await keys.resolve(secret) is None  # the TTL is the revocation bound
    keys.forget()
    assert await keys.resolve(missing) is None
    assert len(table.lookups) == 4


async def test_concurrent_lookups_share_one_query() -> None:
    table, clock = Table(), Clock()
    keys = ring(table, clock)
    secret = table.add("ingest", "publish")
    table.gate = asyncio.Event()
    waiting = [asyncio.create_task(keys.resolve(secret)) for _ in range(20)]
    await asyncio.sleep(0)
    table.gate.set()
    assert {p.name for p in await asyncio.gather(*waiting) if p} == {"ingest"}
    assert len(table.lookups) == 1


async def test_the_cache_is_bounded() -> None:
    table, clock = Table(), Clock()
    keys = ring(table, clock, max_entries=2)
    a, b, c = (table.add(n, "read") for n in "abc")
    for secret in (a, b, c, c, b):
        await keys.resolve(secret)
    assert len(table.lookups) == 3
    await keys.resolve(a)  # the least recently used went out
    assert len(table.lookups) == 4


async def test_an_unreachable_database_is_not_cached_as_a_miss() -> None:
    table, clock = Table(), Clock()
    keys = ring(table, clock)
    secret = table.add("ingest", "publish")
    table.down = True
    with pytest.raises(LedgerUnavailable):
        await keys.resolve(secret)
    table.down = False
    assert await keys.resolve(secret) is not None
