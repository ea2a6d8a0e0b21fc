"""Every exit of the recovery sequence ends in `connected`, or in `fallback` with the probe
running: a fake Redis client injected into the Link, a scripted ledger side."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from redis import exceptions as rex

from godel.config import Settings
from godel.fastlane.link import Link, LinkState
from godel.pipeline.recovery import Recovery
from tests.unit.fastlane.fakes import FAST, Abort, FakeRedis, ScriptedRefill, down, ledger_down

# The background probe sleeps for a minute: only the operator's call recovers in the test.
SLOW_PROBE = FAST.model_copy(update={"probe_backoff_min_s": 60.0, "probe_backoff_max_s": 60.0})


@asynccontextmanager
async def recovery(
    refill: ScriptedRefill, settings: Settings = FAST
) -> AsyncIterator[tuple[Recovery, Link, FakeRedis]]:
    fake = FakeRedis()
    link = Link(settings, "redis://fake:1/0", client=fake)  # type: ignore[arg-type]
    rec = Recovery(settings, link=link, refill=refill)
    try:
        yield rec, link, fake
    finally:
        await rec.stop()
        assert not rec.probing  # shutdown leaves no probe behind
        await link.close()


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def settled(rec: Recovery, link: Link) -> bool:
    """The invariant: never stuck recovering; in fallback only with a probe running."""
    return link.connected or (link.state is LinkState.FALLBACK and rec.probing)


async def test_start_with_redis_up_replays_and_connects() -> None:
    async with recovery(ScriptedRefill(7)) as (rec, link, _):
        await rec.start()
        assert link.connected and not rec.probing
        assert rec.last.replayed == 7 and rec.last.at is not None


async def test_start_with_redis_down_probes_until_it_answers() -> None:
    async with recovery(ScriptedRefill()) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()
        assert link.state is LinkState.FALLBACK and link.reason == "connection" and rec.probing
        fake.fail_with = None
        await eventually(lambda: link.connected, "the probe to reconnect")
        await eventually(lambda: not rec.probing, "the probe to end once connected")


@pytest.mark.parametrize(
    "raised",
    [
        pytest.param(ledger_down(), id="ledger-down-during-replay"),
        pytest.param(rex.ResponseError("ERR something Godel did not expect"), id="unclassified"),
        pytest.param(RuntimeError("a bug in the replay"), id="any-exception"),
    ],
)
async def test_a_failed_replay_falls_back_and_the_probe_recovers_alone(
    raised: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="godel")
    refill = ScriptedRefill(raised, 5)
    async with recovery(refill) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()
        fake.fail_with = None  # Redis is back; the first replay fails, the next succeeds
        await eventually(lambda: refill.replays >= 1, "the first replay")
        await eventually(lambda: settled(rec, link), "fallback with the probe armed")
        await eventually(lambda: link.connected, "the probe's second recovery")
        assert refill.replays >= 2 and rec.last.replayed == 5
        assert "Redis recovery failed; back to fallback" in caplog.text
        assert "Exiting fallback mode: replayed 5 events" in caplog.text


async def test_redis_failing_again_during_replay_keeps_probing() -> None:
    async with recovery(ScriptedRefill()) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()

        async def replay_while_redis_dies() -> int:
            fake.fail_with = down()  # Redis dies mid-replay: the replay's own call says so
            await link.call_recovering(lambda r: r.set("k", "v"))
            return 0

        rec.refill.replay = replay_while_redis_dies  # type: ignore[method-assign]
        fake.fail_with = None
        await eventually(lambda: link.state is LinkState.FALLBACK and rec.probing, "fallback")
        assert link.reason == "connection"
        rec.refill.replay = ScriptedRefill(3).replay  # type: ignore[method-assign]
        fake.fail_with = None
        await eventually(lambda: link.connected, "recovery once Redis stays up")


async def test_operator_recovery_reports_a_failed_replay_and_leaves_the_probe_armed() -> None:
    async with recovery(ScriptedRefill(ledger_down())) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()
        fake.fail_with = None
        result = await rec.recover_now()
        assert result["state"] in ("fallback", "connected")
        assert settled(rec, link)
        if result["state"] == "fallback":  # the probe may have won the race: either is right
            assert "LedgerUnavailable" in (result["error"] or "")
        await eventually(lambda: link.connected, "the probe's recovery")


async def test_a_cancelled_recovery_falls_back_with_the_probe_armed() -> None:
    never = asyncio.Event()
    refill = ScriptedRefill(never, 2)
    async with recovery(refill, SLOW_PROBE) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()
        fake.fail_with = None
        request = asyncio.create_task(rec.recover_now())
        await refill.started.wait()
        assert link.state is LinkState.RECOVERING
        request.cancel()  # the client went away mid-replay
        with pytest.raises(asyncio.CancelledError):
            await request
        assert link.state is LinkState.FALLBACK and rec.probing
        result = await rec.recover_now()  # and the next attempt reopens the lane
        assert result["state"] == "connected" and link.connected


async def test_a_base_exception_falls_back_and_the_probe_restarts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refill = ScriptedRefill(Abort("not an Exception"), 4)
    async with recovery(refill) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()
        fake.fail_with = None
        # The probe task dies of Abort; its done-callback starts a new one.
        await eventually(lambda: refill.replays >= 1, "the first replay")
        await eventually(lambda: link.connected, "the restarted probe's recovery")
        assert "the Redis probe failed; restarting it" in caplog.text


async def test_an_operator_base_exception_propagates_after_falling_back() -> None:
    refill = ScriptedRefill(Abort("operator's task"))
    async with recovery(refill, SLOW_PROBE) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()
        fake.fail_with = None
        with pytest.raises(Abort):
            await rec.recover_now()
        assert link.state is LinkState.FALLBACK and rec.probing


async def test_cancellation_during_shutdown_stops_probing() -> None:
    never = asyncio.Event()
    async with recovery(ScriptedRefill(never)) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()
        fake.fail_with = None
        await eventually(lambda: link.state is LinkState.RECOVERING, "a replay in progress")
        await rec.stop()  # shutdown cancels the probe mid-replay
        assert link.state is LinkState.FALLBACK and not rec.probing


async def test_a_failed_operator_recovery_of_a_connected_link_reports_and_stays_connected() -> None:
    async with recovery(ScriptedRefill(0, 0, ledger_down())) as (rec, link, _):
        await rec.start()
        assert link.connected
        with pytest.raises(Exception, match="Connection refused"):
            await rec.recover_now()  # the ledger failed; Redis is fine: the lane stays open
        assert link.connected


async def test_fallback_from_any_call_re_arms_the_probe() -> None:
    async with recovery(ScriptedRefill()) as (rec, link, fake):
        await rec.start()
        assert link.connected and not rec.probing
        for _ in range(3):  # outage after outage: each one is probed and recovered
            fake.fail_with = down()
            with pytest.raises(Exception, match="Connection refused"):
                await link.call(lambda r: r.ping())
            assert rec.probing
            fake.fail_with = None
            await eventually(lambda: link.connected, "recovery")


async def test_a_failover_announced_during_the_replay_keeps_the_lane_closed() -> None:
    held = asyncio.Event()
    refill = ScriptedRefill(held, 2)
    async with recovery(refill) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()
        fake.fail_with = None
        await refill.started.wait()
        assert link.state is LinkState.RECOVERING
        # A Sentinel announces +switch-master while the replay writes: the clients may have
        # been pointed at the old master, so the lane must not reopen on this probe.
        link.enter_fallback("failover", "Sentinel +switch-master: a:1 -> b:2")
        held.set()
        await eventually(lambda: refill.replays >= 2, "a second probe and replay")
        await eventually(lambda: link.connected, "recovery after the failover")
        assert fake.connection_pool.disconnects >= 2  # the pools were dropped again


async def test_a_failover_announced_wakes_a_backed_off_probe() -> None:
    async with recovery(ScriptedRefill(), SLOW_PROBE) as (rec, link, fake):
        fake.fail_with = down()
        await rec.start()  # in fallback; the probe sleeps for a minute before trying again
        fake.fail_with = None  # the Sentinels promoted a replica that takes writes
        link.failover_announced("Sentinel +switch-master: a:1 -> b:2")
        assert link.reason == "failover"
        await eventually(lambda: link.connected, "the probe, woken by the announcement")
