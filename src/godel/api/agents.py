"""/api/v1/agents: register agents and read them through the cache."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from godel.api.deps import runtime
from godel.errors import NotFound
from godel.fastlane.keys import cache_key
from godel.runtime import Runtime
from godel.store import agents

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", max_length=128)
    name: str | None = Field(default=None, max_length=256)
    status: str = Field(default="idle", pattern=r"^[a-z_]{1,32}$")
    metadata: dict[str, Any] = Field(default_factory=dict)


@router.post("", status_code=201)
async def register(agent: AgentIn, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    row = await rt.db.write(agents.upsert_agent, agent.id, agent.name, agent.status, agent.metadata)
    await rt.cache.delete(cache_key("agent", agent.id))
    return row


@router.get("")
async def list_agents(
    rt: Runtime = Depends(runtime),
    status: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await rt.db.read(agents.list_agents, status, limit, cursor)
    return {"agents": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/{agent_id}")
async def get_agent(agent_id: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Read through the cache: Redis (or memory in fallback), then the database."""
    key = cache_key("agent", agent_id)
    cached = await rt.cache.get(key)
    if cached is not None:
        return cached
    row = await rt.db.read(agents.get_agent, agent_id)
    if row is None:
        raise NotFound(f"no agent with id {agent_id!r}")
    await rt.cache.set(key, row)
    return row
