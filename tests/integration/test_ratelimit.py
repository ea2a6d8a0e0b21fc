"""Rate limits on ingest (docs/runbooks/AGENT_STORM.md): token buckets per agent and per
key, counted in events, a request taken whole or refused whole with 429 + Retry-After;
shared by API instances through Redis, per process while Redis is away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.harness import Harness, make_settings, running
from tests.servers import RedisServer

SLOW = 0.01  # tokens per second: nothing refills during a test


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value("godel_events_refused_total", {"reason": reason})
    return value or 0.0


def ping(agent: str, n: int = 1) -> dict[str, Any]:
    events = [{"type": "agent.ping", "agent_id": agent} for _ in range(n)]
    return {"events": events}


async def test_a_storm_gets_429_with_retry_after(ledger_url: str, redis_url: str) -> None:
    settings = make_settings(ledger_url, redis_url, agent_rate_per_s=SLOW, agent_burst=20)
    before = refused("rate_limit_agent")
    async with running(settings, workers=0) as h:
        codes = [(await h.post(ping("storm", 4))).status_code for _ in range(6)]
        assert codes == [202] * 5 + [429], codes
        r = await h.post(ping("storm"))
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        body = r.json()
        assert body["error"] == "rate_limited" and body["limit"] == {
            "kind": "agent",
            "name": "storm",
        }
        assert "'storm'" in body["detail"] and body["request_id"]
        # Other agents are not held back by the storm.
        assert (await h.post(ping("calm", 5))).status_code == 202
        assert await h.counts() == {"queued": 25}
    assert refused("rate_limit_agent") - before == 5  # counted in events: 4 + 1


async def test_a_batch_is_taken_whole_or_refused_whole(ledger_url: str, redis_url: str) -> None:
    settings = make_settings(ledger_url, redis_url, agent_rate_per_s=SLOW, agent_burst=10)
    async with running(settings, workers=0) as h:
        assert (await h.post(ping("a", 8))).status_code == 202
        mixed = {"events": ping("a", 3)["events"] + ping("b", 3)["events"]}
        assert (await h.post(mixed)).status_code == 429
        assert await h.counts() == {"queued": 8}  # nothing of b's was taken or stored
        assert (await h.post(ping("b", 10))).status_code == 202  # b's bucket is still full
        too_big = await h.post(ping("c", 11))  # more than a burst: waiting cannot help
        assert too_big.status_code == 413 and "burst" in too_big.json()["detail"]


async def test_a_key_has_its_own_limit(ledger_url: str, redis_url: str) -> None:
    settings = make_settings(
        ledger_url, redis_url, key_rate_per_s=SLOW, key_burst=5, agent_rate_per_s=0
    )
    async with running(settings, workers=0) as h:
        assert (await h.post(ping("x", 5))).status_code == 202
        r = await h.post({"type": "t.no-agent"})
        assert r.status_code == 429 and r.json()["limit"]["kind"] == "key", r.text


async def test_zero_turns_the_limits_off(ledger_url: str, redis_url: str) -> None:
    settings = make_settings(ledger_url, redis_url, agent_rate_per_s=0, agent_burst=1)
    async with running(settings, workers=0) as h:
        for _ in range(3):
            assert (await h.post(ping("free", 50))).status_code == 202


@asynccontextmanager
async def two_instances(settings: Any) -> AsyncIterator[tuple[Harness, Harness]]:
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(running(settings, workers=0))
        two = await stack.enter_async_context(running(settings, workers=0))
        yield one, two


async def accepted_of(hs: tuple[Harness, ...], agent: str, rounds: int) -> int:
    total = 0
    for _ in range(rounds):
        for h in hs:
            r = await h.post(ping(agent, 2))
            assert r.status_code in {202, 429}, r.text
            total += 2 if r.status_code == 202 else 0
    return total


async def test_the_limit_holds_across_instances_sharing_redis(
    ledger_url: str, redis_url: str
) -> None:
    settings = make_settings(ledger_url, redis_url, agent_rate_per_s=SLOW, agent_burst=10)
    async with two_instances(settings) as hs:
        assert all(h.rt.link.connected for h in hs)
        assert await accepted_of(hs, "shared", rounds=10) == 10  # one bucket, not two


async def test_with_redis_down_each_process_limits_alone(
    ledger_url: str, fresh_redis: RedisServer
) -> None:
    settings = make_settings(ledger_url, fresh_redis.url, agent_rate_per_s=SLOW, agent_burst=10)
    async with two_instances(settings) as hs:
        fresh_redis.kill9()
        for h in hs:  # the first call to notice the outage moves the Link to fallback
            r = await h.post(ping("warmup"))
            assert r.status_code == 202 and not h.rt.link.connected
        got = await accepted_of(hs, "alone", rounds=10)
        assert got == 20, got  # each process has its own bucket of 10
        r = await hs[0].post(ping("alone"))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert (await hs[0].post(ping("other"))).json()["mode"] == "fallback"


async def test_the_buckets_live_in_redis_with_a_ttl(ledger_url: str, redis_url: str) -> None:
    import redis

    settings = make_settings(ledger_url, redis_url, agent_rate_per_s=100, agent_burst=200)
    async with running(settings, workers=0) as h:
        assert (await h.post(ping("ttl", 3))).status_code == 202
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        state = client.hgetall("godel:ratelimit:agent:ttl")
        # 3 taken, plus a lease of min(2 % of the burst, 0.05 s of the rate) = 4 ahead
        assert float(state["tokens"]) == pytest.approx(200 - 3 - 4, abs=1)
        assert 0 < client.pttl("godel:ratelimit:agent:ttl") <= 3000
    finally:
        client.close()


async def test_no_limit_means_no_redis_call(ledger_url: str, redis_url: str) -> None:
    settings = make_settings(ledger_url, redis_url, agent_rate_per_s=0)
    async with running(settings, workers=0) as h:
        assert not h.rt.limiter.enabled
        r = await h.post(ping("z"))
        assert r.status_code == 202 and isinstance(r, httpx.Response)


async def test_a_lease_spares_redis_a_call_per_request(ledger_url: str, redis_url: str) -> None:
    import redis

    settings = make_settings(ledger_url, redis_url, agent_rate_per_s=1000, agent_burst=5000)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with running(settings, workers=0) as h:
            client.config_resetstat()
            for _ in range(40):
                assert (await h.post(ping("leased"))).status_code == 202
            # 40 events, leases of 50: one rate-limit call, not 40 (the rest of the EVALs
            # are the upkeep's: promote, reap)
            evals = client.info("commandstats").get("cmdstat_eval", {}).get("calls", 0)
        assert evals <= 8, evals
        state = client.hgetall("godel:ratelimit:agent:leased")
        assert float(state["tokens"]) == pytest.approx(5000 - 1 - 50, abs=2)
    finally:
        client.close()


async def test_a_storm_is_refused_without_a_redis_call_each(
    ledger_url: str, redis_url: str
) -> None:
    """After the first refusal the agent's next requests are refused in the process (what
    Redis would answer, proven by the refill since): a refusal must cost less than an
    acceptance, or a storm of them slows every other agent (bench rows 10a-10c)."""
    import redis

    settings = make_settings(ledger_url, redis_url, agent_rate_per_s=SLOW, agent_burst=5)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with running(settings, workers=0) as h:
            assert (await h.post(ping("storm", 5))).status_code == 202
            client.config_resetstat()
            answers = [await h.post(ping("storm")) for _ in range(40)]
            evals = client.info("commandstats").get("cmdstat_eval", {}).get("calls", 0)
            assert {r.status_code for r in answers} == {429}
            assert all(int(r.headers["Retry-After"]) >= 1 for r in answers)
            assert (await h.post(ping("calm"))).status_code == 202  # others go on
            assert await h.counts() == {"queued": 6}
        # One rate-limit call for the first refusal, not 40 (the rest are the upkeep's).
        assert evals <= 8, evals
    finally:
        client.close()


async def test_a_refusal_is_held_before_it_is_sent(ledger_url: str, redis_url: str) -> None:
    """GODEL_RATE_LIMIT_HOLD_MS: a 429 goes out no sooner than the hold, so a client that
    resends at once sends one request per connection per hold; accepted events are not
    held, and a hold is never longer than the Retry-After it answers."""
    settings = make_settings(
        ledger_url, redis_url, agent_rate_per_s=SLOW, agent_burst=5, rate_limit_hold_ms=300
    )
    async with running(settings, workers=0) as h:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await h.post(ping("held", 5))).status_code == 202
        accepted_s = loop.time() - started
        started = loop.time()
        refusals = await asyncio.gather(*(h.post(ping("held")) for _ in range(3)))
        held_s = loop.time() - started
        assert {r.status_code for r in refusals} == {429}
        assert held_s >= 0.3  # concurrent: held side by side, not one after another
        assert accepted_s < 0.3 <= held_s


async def test_a_hold_is_never_longer_than_the_retry_after(ledger_url: str, redis_url: str) -> None:
    settings = make_settings(
        ledger_url, redis_url, agent_rate_per_s=10, agent_burst=5, rate_limit_hold_ms=3000
    )
    async with running(settings, workers=0) as h:
        assert (await h.post(ping("brief", 5))).status_code == 202
        loop = asyncio.get_running_loop()
        started = loop.time()
        r = await h.post(ping("brief"))  # 0.1 s short: Retry-After 1
        elapsed = loop.time() - started
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert 1.0 <= elapsed < 3.0


async def test_a_burst_of_requests_waits_for_redis_connections(
    ledger_url: str, redis_url: str
) -> None:
    """300 requests at once from 300 agents: each asks the shared buckets, more at once
    than the Redis pool has connections. They wait for one; the pool is never exhausted,
    which redis-py reports as an error the Link would take for an outage."""
    settings = make_settings(ledger_url, redis_url)  # the default limits
    async with running(settings, workers=0) as h:
        answers = await asyncio.gather(*(h.post(ping(f"burst-{i}")) for i in range(300)))
        assert {r.status_code for r in answers} == {202}
        assert h.rt.link.connected, h.rt.link.describe()
        assert await h.counts() == {"queued": 300}
