"""`godel worker` as its own process: processes, exports metrics, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.harness import all_processed, make_settings, running, wait_until
from tests.servers import ProcessRunner, free_port

GODEL = str(Path(sys.executable).parent / "godel")


async def test_worker_process_metrics_and_sigterm(
    sqlite_url: str, redis_url: str, run_process: Callable[..., ProcessRunner]
) -> None:
    port = free_port()
    env = {"GODEL_DATABASE_URL": sqlite_url, "GODEL_REDIS_URL": redis_url}
    async with running(make_settings(sqlite_url, redis_url), workers=0) as h:
        worker = run_process([GODEL, "worker", "--metrics-port", str(port)], env=env, name="w")
        r = await h.post({"events": [{"type": "agent.ping", "agent_id": "w"}] * 30})
        assert r.status_code == 202
        await wait_until(lambda: all_processed(h.rt, 30), 30, "the worker process")
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        line = next(
            x
            for x in text.splitlines()
            if x.startswith('godel_events_processed_total{outcome="processed"}')
        )
        assert float(line.split()[-1]) == 30.0
        code = await asyncio.to_thread(worker.terminate, signal.SIGTERM, 20.0)
        assert code == 0, worker.log_tail()
