"""The fleet: 3 `godel serve` (GODEL_WORKERS=0) and 3 `godel worker` processes on one
PostgreSQL and one Redis, under load from several clients spread over the three APIs.

Soak (GODEL_FLEET_SOAK_S, 20 s by default; GODEL_FLEET_SEED replays a run): two fault
lanes run at once. One kills (-9) a random API or worker process and starts it again;
the other hits Redis: kill -9 (AOF on: it comes back with what it had written), SIGSTOP,
out of memory (maxmemory below use, noeviction), restart without its data. Every kind of
fault happens at least once. Then: no acknowledged event lost, none applied twice (the
ledger holds exactly the 202s, every agent's `events_applied` equals its events), and
every worker process consuming (each one's processed counter > 0 since its last start).

Replay and reconcile, once per event, counted exactly. Counters die with a process
killed -9 (and a replay it claimed but never pushed is the reconciler's, by design), so
during the soak the recovery counters are only reported. The exact count is taken after
it, with the fleet intact and the workers held (tests.chaos.gate), so nothing consumes
`godel:queue:pending` and the list is the history of what recovery pushed:
1. Redis killed, G gated events accepted in fallback: each worker claims a batch from the
   ledger and holds it until its claim expires; all G are undispatched. Redis back (from
   its AOF): the six processes race to replay. Then the sum of the
   `godel_replayed_events_total` increases over the six is G, and pending holds each of
   the G ids exactly once (and otherwise only ids of processed events: see
   `assert_pushed_once`).
2. Redis restarted empty: the six race to reconcile. The sum of the
   `godel_reconciled_events_total` increases is G, and pending holds the G ids, none twice.
A second push of any event would show in both: a sum above G and an id twice in the list.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from godel.event import Status
from godel.store import ledger
from tests.chaos.test_processes import GATE, live_claims
from tests.servers import RedisServer
from tests.support.clients import Posters
from tests.support.fleet import RECONCILED, REPLAYED, Fleet
from tests.support.ledger import assert_exactly_once, reading, undispatched, wait_drained
from tests.support.settings import TOKEN, fast_settings
from tests.support.wait import wait_until_async

SOAK_S = float(os.environ.get("GODEL_FLEET_SOAK_S", "20"))
pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(SOAK_S + 150)]
SEED = int(os.environ.get("GODEL_FLEET_SEED", str(random.randrange(1 << 30))))
APIS, WORKERS = 3, 3
GATED = 60  # more than the workers' batches together (3 x 10): every worker holds one
REDIS_FAULTS = ("kill9", "pause", "oom", "restart_empty")


@pytest.fixture
def redis(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_factory(appendonly=True)


@pytest.fixture
def fleet(pg_url: str, redis: RedisServer, fleet_factory: Callable[..., Fleet]) -> Fleet:
    settings = fast_settings(pg_url, redis.url, handlers=GATE, worker_batch_size=10)
    return fleet_factory(settings, apis=APIS, workers=WORKERS)


def redis_fault(redis: RedisServer, kind: str) -> None:
    if kind == "kill9":
        redis.kill9()
        time.sleep(0.5)
        redis.restart(keep_data=True)
    elif kind == "pause":
        redis.pause()
        time.sleep(1.5)
        redis.resume()
    elif kind == "oom":
        redis.config_set("maxmemory", 1)
        time.sleep(1.5)
        redis.config_set("maxmemory", 0)
    else:
        redis.restart(keep_data=False)


async def fault_lane(
    rng: random.Random, kinds: tuple[str, ...], act: Callable[[str], None], log: list[str]
) -> None:
    """Every kind once (shuffled), then random ones, until the soak ends."""
    order = list(kinds)
    rng.shuffle(order)
    end = time.monotonic() + SOAK_S
    while order or time.monotonic() < end:
        kind = order.pop() if order else rng.choice(kinds)
        log.append(kind)
        await asyncio.to_thread(act, kind)
        await asyncio.sleep(rng.uniform(0.5, 2.0))


async def soak(fleet: Fleet, redis: RedisServer, rng: random.Random) -> list[str]:
    log: list[str] = []

    def kill(kind: str) -> None:
        if kind == "kill api":
            fleet.kill_api(rng.randrange(APIS))
        else:
            fleet.kill_worker(rng.randrange(WORKERS))

    await asyncio.gather(
        fault_lane(rng, ("kill api", "kill worker"), kill, log),
        fault_lane(rng, REDIS_FAULTS, lambda kind: redis_fault(redis, kind), log),
    )
    return log


async def all_connected(fleet: Fleet) -> None:
    for api in fleet.apis:
        await asyncio.to_thread(api.wait_state, "connected", None, 30)


async def every_worker_consuming(fleet: Fleet) -> list[float]:
    counts: list[float] = []

    def consuming() -> bool:
        counts[:] = [w.processed() for w in fleet.workers]
        return all(n > 0 for n in counts)

    await wait_until_async(
        consuming,
        30,
        "every worker process consuming",
        interval_s=0.2,
        detail=lambda: f"processed since the last start, per worker: {counts}",
    )
    return counts


async def test_fleet_through_process_kills_and_redis_faults(
    fleet: Fleet, redis: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    print(f"\n[fleet] seed {SEED} (GODEL_FLEET_SEED), soak {SOAK_S}s (GODEL_FLEET_SOAK_S)")
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(c) for c in fleet.clients(TOKEN)]
        acked = await soak_under_load(fleet, redis, pg_url, clients, rng)
        gate = tmp_path / "gate"  # tests.chaos.gate holds events that name it
        gated = await replay_race(fleet, redis, pg_url, clients[0], gate)
        await reconcile_race(fleet, redis, gated)
    gate.unlink()
    await wait_drained(pg_url, len(acked | gated), timeout_s=60)
    await asyncio.to_thread(assert_exactly_once, pg_url, acked | gated)


async def soak_under_load(
    fleet: Fleet,
    redis: RedisServer,
    pg_url: str,
    clients: list[httpx.AsyncClient],
    rng: random.Random,
) -> set[str]:
    async with Posters(clients, "load", concurrency=6) as load:
        await load.until_acked(100)
        faults = await soak(fleet, redis, rng)
        await all_connected(fleet)
        await load.until_acked(100)  # the healed fleet takes load
        consumed = await every_worker_consuming(fleet)
        await load.stop()
    await wait_drained(pg_url, len(load.acked), timeout_s=60)
    await asyncio.to_thread(assert_exactly_once, pg_url, load.acked)
    pushed = await asyncio.to_thread(fleet.pushed_by_recovery)
    print(
        f"[fleet] faults {faults}; restarts {fleet.restarts}; {len(load.acked)} events, "
        f"answers {dict(load.statuses())}; processed since last start per worker {consumed}; "
        f"recovery pushes of the live processes {pushed}"
    )
    assert set(faults) >= set(REDIS_FAULTS) | {"kill api", "kill worker"}
    return load.acked


def pending_ids(redis: RedisServer) -> list[str]:
    with redis.client(decode_responses=True) as r:
        return list(r.lrange("godel:queue:pending", 0, -1))


def assert_pushed_once(redis: RedisServer, pg_url: str, gated: set[str]) -> list[str]:
    """Each gated id is in pending exactly once. Any other id there must be an event already
    processed: recovery never pushes one (its SQL claims take unprocessed rows only). The
    reaper may: the AOF (fsync every second) restored a worker's processing list without
    the last LREMs of the drain, and that worker's lease, long expired; workers drop such
    ids as duplicates (seen: 10 and 30 ids, a batch or three)."""
    pending = Counter(pending_ids(redis))
    assert {i: pending[i] for i in gated if pending[i] != 1} == {}
    others = sorted(set(pending) - gated)
    with reading(pg_url) as conn:
        found = ledger.statuses(conn, others) if others else {}
    assert set(found.values()) <= {Status.PROCESSED}, found
    return others


async def replay_race(
    fleet: Fleet, redis: RedisServer, pg_url: str, client: httpx.AsyncClient, gate: Path
) -> set[str]:
    gate.touch()
    await asyncio.to_thread(redis.kill9)
    for api in fleet.apis:
        await asyncio.to_thread(api.wait_state, "fallback")
    body = {
        "events": [
            {
                "type": "agent.ping",
                "id": f"gated-{i}",
                "agent_id": f"g{i % 3}",
                "payload": {"gate": str(gate)},
            }
            for i in range(GATED)
        ]
    }
    r = await client.post("/api/v1/events", json=body)
    assert r.status_code == 202 and r.json()["mode"] == "fallback", r.text
    gated = set(r.json()["ids"])

    def every_worker_held() -> bool:
        return len(list(gate.parent.glob("held-*"))) == WORKERS

    await wait_until_async(every_worker_held, 30, "every worker holding a batch at the gate")
    await wait_until_async(lambda: live_claims(pg_url) == 0, 30, "the held claims to expire")
    assert await asyncio.to_thread(undispatched, pg_url) == GATED

    before = await asyncio.to_thread(fleet.pushed_by_recovery)
    await asyncio.to_thread(redis.restart, True)
    await wait_until_async(lambda: undispatched(pg_url) == 0, 30, "the backlog replayed")
    await all_connected(fleet)
    after = await asyncio.to_thread(fleet.pushed_by_recovery)
    assert after[REPLAYED] - before[REPLAYED] == GATED, (before, after)
    others = await asyncio.to_thread(assert_pushed_once, redis, pg_url, gated)
    print(f"[fleet] replay race: {GATED} replayed once each; {len(others)} processed ids put back")
    return gated


async def reconcile_race(fleet: Fleet, redis: RedisServer, gated: set[str]) -> None:
    before = await asyncio.to_thread(fleet.pushed_by_recovery)
    await asyncio.to_thread(redis.restart, False)

    def reconciled() -> float:
        return fleet.total(RECONCILED) - before[RECONCILED]

    await wait_until_async(
        lambda: reconciled() >= GATED, 30, "the lost ids reconciled", interval_s=0.2
    )
    await asyncio.sleep(2.0)  # past the reconcile deadline: a late second push would show
    after = await asyncio.to_thread(fleet.pushed_by_recovery)
    assert after[RECONCILED] - before[RECONCILED] == GATED, (before, after)
    assert after[REPLAYED] == before[REPLAYED]
    pending = await asyncio.to_thread(pending_ids, redis)
    assert sorted(pending) == sorted(gated)  # Redis came back empty: nothing else is there
