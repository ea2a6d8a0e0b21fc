"""Operator endpoints (the admin scope): force recovery, warm the cache."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends

from godel.api.auth import require
from godel.api.deps import runtime
from godel.credentials import Scope
from godel.errors import FastLaneClosed
from godel.fastlane.keys import cache_key
from godel.runtime import Runtime
from godel.store import agents

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require(Scope.ADMIN))])


@router.post("/recovery/redis")
async def recover_redis(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Probe Redis now and replay what the ledger holds; answers state, replayed, remaining."""
    return await rt.recovery.recover_now()


@router.post("/cache/warm")
async def warm_cache(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Load every agent from the database into the Redis cache."""
    if not rt.link.connected:
        raise FastLaneClosed("fallback", "the cache cannot be warmed while Redis is down")
    started = time.monotonic()
    warmed, after = 0, None
    while True:
        rows = await rt.db.read(agents.list_agents, None, 1000, after)
        if not rows:
            break
        warmed += await rt.cache.set_many({cache_key("agent", r["id"]): r for r in rows})
        after = rows[-1]["id"]
    return {"warmed": warmed, "duration_s": round(time.monotonic() - started, 3)}
