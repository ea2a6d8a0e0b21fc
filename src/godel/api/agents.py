"""/api/v1/agents: register agents and read them through the cache."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from godel.api.auth import require
from godel.api.deps import runtime
from godel.api.limits import require_json
from godel.credentials import Scope
from godel.errors import InvalidEvent, NotFound
from godel.fastlane.keys import cache_key
from godel.intake import (
    AGENT_STATUS_RE,
    ID_RE,
    MAX_AGENT_NAME_LEN,
    MAX_DEPTH,
    MAX_NAME_LEN,
    encode,
)
from godel.runtime import Runtime
from godel.store import agents

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])
AgentId = Annotated[str, Path(pattern=ID_RE.pattern, max_length=MAX_NAME_LEN)]


class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_RE.pattern, max_length=MAX_NAME_LEN)
    name: str | None = Field(default=None, max_length=MAX_AGENT_NAME_LEN)
    status: str = Field(default="idle", pattern=AGENT_STATUS_RE.pattern)
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="A JSON object of at most GODEL_MAX_AGENT_METADATA_BYTES (serialised, "
        f"UTF-8), nested at most {MAX_DEPTH} levels, integers within signed 64 bits, no NUL.",
    )

    @field_validator("name")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("holds a NUL character")
        return value

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            encode(value, "metadata")
        except InvalidEvent as exc:
            raise ValueError(str(exc)) from None
        return value


@router.post(
    "", status_code=201, dependencies=[Depends(require(Scope.ADMIN)), Depends(require_json)]
)
async def register(agent: AgentIn, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    size = len(orjson.dumps(agent.metadata))
    limit = rt.settings.max_agent_metadata_bytes
    if size > limit:
        raise InvalidEvent(f"metadata is {size} bytes serialised; the limit is {limit}")
    row = await rt.db.write(agents.upsert_agent, agent.id, agent.name, agent.status, agent.metadata)
    await rt.cache.delete(cache_key("agent", agent.id))
    return row


@router.get("", dependencies=[Depends(require(Scope.READ))])
async def list_agents(
    rt: Runtime = Depends(runtime),
    status: Annotated[str | None, Query(pattern=AGENT_STATUS_RE.pattern)] = None,
    cursor: Annotated[
        str | None, Query(max_length=MAX_NAME_LEN, description="A `next_cursor` (an agent id).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await rt.db.read(agents.list_agents, status, limit, cursor)
    return {"agents": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/{agent_id}", dependencies=[Depends(require(Scope.READ))])
async def get_agent(agent_id: AgentId, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
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
