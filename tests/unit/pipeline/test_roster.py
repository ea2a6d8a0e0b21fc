"""pipeline.roster: the workers' rows in the ledger (start, heartbeat, stop) and what each
holds, on real SQLite and PostgreSQL and a real redis-server, with the fast lane open
(`redis`) and closed (`ledger`)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import pytest

from godel.store import ledger
from godel.store import workers as table
from tests.unit.pipeline.test_worker import PATHS, registry, runtime, submit, worker


async def by_name(rt: Any) -> dict[str, dict[str, Any]]:
    report = await rt.roster.report()
    return {w["name"]: w for w in report["workers"]}


@pytest.mark.parametrize("path", PATHS)
async def test_a_worker_joins_beats_and_leaves(path: str, ledger_url: str, redis_url: str) -> None:
    async with runtime(path, ledger_url, redis_url) as rt:
        await submit(rt, [{"type": "t.x"} for _ in range(3)])

        async def ok(event: Any) -> None:
            return None

        w = worker(rt, registry(("t.*", ok, False)))
        w.roster = rt.roster
        started = time.time()
        await rt.roster.join(w.name)
        alive = (await by_name(rt))[w.name]
        assert alive["status"] == "alive" and alive["stopped_at"] is None
        assert (alive["host"], alive["pid"]) == (socket.gethostname(), os.getpid())
        assert alive["started_at"] >= started - 1
        assert alive["held_ledger"] == 0
        assert alive["held_redis"] == (0 if path == "redis" else None)

        assert await w.run(asyncio.Event(), burst=True) == 3
        stopped = (await by_name(rt))[w.name]
        assert stopped["status"] == "stopped" and stopped["processed"] == 3
        assert stopped["stopped_at"] == stopped["heartbeat_at"] >= stopped["started_at"]
        report = await rt.roster.report()
        assert report["alive"] == 0 and report["redis"] is (path == "redis")


@pytest.mark.parametrize("path", PATHS)
async def test_what_each_worker_holds(path: str, ledger_url: str, redis_url: str) -> None:
    async with runtime(path, ledger_url, redis_url) as rt:
        await submit(rt, [{"type": "t.x"} for _ in range(5)])
        await rt.roster.join("w-a")
        if path == "redis":
            assert len(await rt.lane.claim("w-a", 4, 30)) == 4
        else:
            claimed = await rt.db.write(ledger.claim_from_ledger, "w-a", 4, time.time(), 30)
            assert len(claimed) == 4
        held = (await by_name(rt))["w-a"]
        expected = (4, 0) if path == "redis" else (None, 4)
        assert (held["held_redis"], held["held_ledger"]) == expected


async def test_silent_workers_and_old_rows(ledger_url: str, redis_url: str) -> None:
    async with runtime("redis", ledger_url, redis_url) as rt:
        await rt.roster.join("w-quiet")
        await rt.db.write(table.beat, "w-quiet", time.time() - 100, 7)
        quiet = (await by_name(rt))["w-quiet"]
        assert quiet["status"] == "silent" and quiet["processed"] == 7
        assert "w-quiet" not in {w["name"] for w in (await rt.roster.report(50))["workers"]}
        await rt.db.write(table.beat, "w-quiet", time.time() - 2 * 24 * 3600, 7)
        await rt.roster.join("w-new")  # a start forgets workers not heard of for a day
        assert [r["name"] for r in await rt.db.read(table.list_workers, 0.0)] == ["w-new"]


async def test_a_redis_lease_without_a_row_is_listed(ledger_url: str, redis_url: str) -> None:
    async with runtime("redis", ledger_url, redis_url) as rt:
        await rt.lane.heartbeat("ghost", 30)
        ghost = (await by_name(rt))["ghost"]
        assert (ghost["status"], ghost["held_redis"], ghost["host"]) == ("leased", 0, None)


async def test_a_heartbeat_after_the_row_was_pruned_joins_again(
    ledger_url: str, redis_url: str
) -> None:
    async with runtime("ledger", ledger_url, redis_url) as rt:
        rt.roster.beat_s = 0.0
        await rt.roster.beat("w-back", 3)  # no row: the beat finds none and joins
        assert (await by_name(rt))["w-back"]["status"] == "alive"
