"""The FastAPI + arq peer (runs in bench/.venvs/arq): what a Python team would build instead of
Godel, a FastAPI endpoint calling arq's `enqueue_job`, plus an arq worker process.

    python arq_app.py serve  --redis-url URL --port P --token T    uvicorn (uvloop, httptools)
    python arq_app.py worker --redis-url URL [--poll-delay S] [--max-jobs N]

POST /api/v1/events takes Godel's body for one event ({"type", "payload", ...}), checks the
bearer token as Godel does, validates with a Pydantic model (the FastAPI idiom) and answers
202 with the job id once Redis has it. The worker runs no-op jobs until SIGTERM.
"""

from __future__ import annotations

import argparse
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from fastapi import FastAPI, Header, HTTPException
from peer_tasks import noop
from pydantic import BaseModel, Field


class EventIn(BaseModel):
    type: str = Field(max_length=128)
    id: str | None = None
    agent_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


def make_app(redis_url: str, token: str) -> FastAPI:
    pools: dict[str, ArqRedis] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools["arq"] = await create_pool(RedisSettings.from_dsn(redis_url))
        yield
        await pools["arq"].aclose()

    app = FastAPI(lifespan=lifespan)
    expected = f"Bearer {token}".encode()

    @app.post("/api/v1/events", status_code=202)
    async def post_event(event: EventIn, authorization: str = Header("")) -> dict[str, Any]:
        if not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(401, "unauthorized")
        job = await pools["arq"].enqueue_job("noop", event.payload, _job_id=event.id)
        if job is None:  # the id is queued already: arq's idempotency
            return {"id": event.id, "duplicate": True}
        return {"id": job.job_id}

    @app.get("/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def serve(redis_url: str, port: int, token: str) -> None:
    import uvicorn

    uvicorn.run(
        make_app(redis_url, token),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=2048,
    )


def work(redis_url: str, poll_delay: float, max_jobs: int) -> None:
    worker = Worker(
        functions=[noop],
        redis_settings=RedisSettings.from_dsn(redis_url),
        poll_delay=poll_delay,
        max_jobs=max_jobs,
        handle_signals=True,  # SIGTERM: stop, as the `arq` command does
    )
    worker.run()


def main() -> None:
    p = argparse.ArgumentParser(description="FastAPI + arq peer")
    p.add_argument("role", choices=["serve", "worker"])
    p.add_argument("--redis-url", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default="")
    p.add_argument("--poll-delay", type=float, default=0.005)
    p.add_argument("--max-jobs", type=int, default=100)
    a = p.parse_args()
    if a.role == "serve":
        serve(a.redis_url, a.port, a.token)
    else:
        work(a.redis_url, a.poll_delay, a.max_jobs)


if __name__ == "__main__":
    main()
