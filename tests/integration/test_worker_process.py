"""`godel worker` as its own process: processes, exports metrics, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import httpx

from tests.harness import assert_exactly_once, make_settings, running, wait_drained
from tests.servers import GODEL_BIN, ProcessRunner, free_port, godel_env
from tests.support.settings import fast_settings


async def test_worker_process_metrics_and_sigterm(
    sqlite_url: str, redis_url: str, run_process: Callable[..., ProcessRunner]
) -> None:
    port = free_port()
    env = godel_env(fast_settings(sqlite_url, redis_url))
    async with running(make_settings(sqlite_url, redis_url), workers=0) as h:
        worker = run_process(
            [str(GODEL_BIN), "worker", "--metrics-port", str(port)],
            env=env,
            name="w",
            inherit_env=False,
        )
        r = await h.post({"events": [{"type": "agent.ping", "agent_id": "w"}] * 30})
        assert r.status_code == 202
        await wait_drained(h.ledger_url, 30, timeout_s=30)
        assert_exactly_once(h.ledger_url, r.json()["ids"])
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
