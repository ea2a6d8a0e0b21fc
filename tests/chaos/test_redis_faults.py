"""Real faults injected into a real redis-server while events are being posted.

For every fault: each event answered 202 is processed exactly once, no request fails
with a 5xx, and the log and the metrics show the fallback and its end.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.chaos.ha import Load
from tests.harness import (
    Harness,
    assert_exactly_once,
    make_settings,
    running,
    wait_drained,
    wait_until_async,
)
from tests.servers import RedisServer

pytestmark = [pytest.mark.chaos]
Fault = Callable[[RedisServer], Awaitable[Callable[[], Awaitable[None]]]]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def kill9(server: RedisServer) -> Callable[[], Awaitable[None]]:
    await asyncio.to_thread(server.kill9)
    return lambda: asyncio.to_thread(server.restart, True)


async def sigstop(server: RedisServer) -> Callable[[], Awaitable[None]]:
    await asyncio.to_thread(server.pause)
    return lambda: asyncio.to_thread(server.resume)


async def oom(server: RedisServer) -> Callable[[], Awaitable[None]]:
    server.config_set("maxmemory-policy", "noeviction")
    server.config_set("maxmemory", 1)  # below used memory: every write is refused with OOM

    async def heal() -> None:
        server.config_set("maxmemory", 0)

    return heal


async def misconf(server: RedisServer) -> Callable[[], Awaitable[None]]:
    doomed = server.data_dir.parent / "gone"
    doomed.mkdir()
    server.config_set("stop-writes-on-bgsave-error", "yes")
    server.config_set("save", "3600 1")  # Redis refuses writes only when snapshots are on
    server.config_set("dir", str(doomed))
    shutil.rmtree(doomed)  # the next background save cannot create its file
    with server.client(decode_responses=True) as conn:
        conn.bgsave()
    await _wait_bgsave(server, "err")

    async def heal() -> None:
        server.config_set("dir", str(server.data_dir))  # the operator fixes the disk
        with server.client() as conn:
            conn.bgsave()
        await _wait_bgsave(server, "ok")

    return heal


async def _wait_bgsave(server: RedisServer, status: str) -> None:
    def done() -> bool:
        with server.client(decode_responses=True) as conn:
            info = conn.info("persistence")
        return bool(info["rdb_last_bgsave_status"] == status and not info["rdb_bgsave_in_progress"])

    await wait_until_async(done, 15, f"bgsave status {status}")


def readonly(master: RedisServer) -> Fault:
    async def inject(server: RedisServer) -> Callable[[], Awaitable[None]]:
        server.replicaof(master.host, master.port)  # a failover that demoted our server

        async def heal() -> None:
            server.replicaof_no_one()

        return heal

    return inject


async def restart(server: RedisServer) -> Callable[[], Awaitable[None]]:
    await asyncio.to_thread(server.restart, True)
    return _noop


async def restart_empty(server: RedisServer) -> Callable[[], Awaitable[None]]:
    await asyncio.to_thread(server.restart, False)
    return _noop


async def _noop() -> None:
    return None


PROTECTED = ("--enable-protected-configs", "yes")  # lets misconf() move `dir`
CASES: dict[str, tuple[Fault | None, bool]] = {
    "kill9": (kill9, True),
    "sigstop": (sigstop, False),
    "oom": (oom, False),
    "misconf": (misconf, False),
    "readonly": (None, False),
    "restart-aof": (restart, True),
    "restart-empty": (restart_empty, False),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_fault_loses_nothing_and_applies_nothing_twice(
    case: str,
    redis_factory: Callable[..., RedisServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="godel")
    inject, aof = CASES[case]
    server = redis_factory(appendonly=aof, extra_args=PROTECTED if case == "misconf" else ())
    if inject is None:
        inject = readonly(redis_factory())
    settings = make_settings(f"sqlite:///{tmp_path}/g.db", server.url)
    entered = metric("godel_redis_fallback_transitions_total", to="fallback")
    async with running(settings, workers=2) as h, Load(h) as poster:
        await poster.until_acked(100)
        heal = await inject(server)
        if case.startswith("restart"):
            await poster.until_acked(100)  # the restart itself was the outage
        else:
            await wait_until_async(lambda: _state(h, "fallback"), 15, "fallback")
            await poster.until_acked(100)  # accepted while Redis is unusable
            await heal()
        await wait_until_async(lambda: _state(h, "connected"), 30, "recovery")
        await poster.until_acked(100)
        await poster.stop()
        try:
            await wait_drained(h.ledger_url, len(poster.acked))
        except TimeoutError as exc:
            health = (await h.client.get("/health")).json()
            raise AssertionError(f"{exc}; acked {len(poster.acked)}; {health}") from None
        assert set(poster.statuses) == {202}, poster.statuses
        await asyncio.to_thread(assert_exactly_once, h.ledger_url, poster.acked)
    assert "Entering fallback mode" in caplog.text
    assert "Exiting fallback mode" in caplog.text
    assert metric("godel_redis_fallback_transitions_total", to="fallback") > entered
    assert poster.modes["redis"] > 0


def _state(h: Harness, state: str) -> bool:
    return h.rt.link.state.value == state
