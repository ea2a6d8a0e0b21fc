"""PostgreSQL failing under load: the primary lost and a streaming replica promoted, a
primary fenced read-only while it still answers, a restart on the same host, and a
replica cut off from its primary before the primary is lost (synchronous: nothing is
acknowledged meanwhile; asynchronous: the loss the failover runbook warns of, shown).

Godel (in process, two workers) runs on a multi-host URL (`host=primary&host=replica&
target_session_attrs=read-write`) and the replica is synchronous, as the failover runbook
asks (but in the asynchronous case): so every `202` is on the replica before the client
sees it. Clients resend a batch
answered 503 with the same ids until it is acknowledged. In every case: 503 (never a 202)
while no server takes writes, Godel back on its own once one does, and the ledger holds
exactly the acknowledged events, each applied once.

The outage and reconnection times, as the clients saw them, are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select

from godel.store.schema import events
from tests.harness import Harness, make_settings, running
from tests.servers import PostgresServer, find_postgres_bin_dir
from tests.support.clients import Posters
from tests.support.ledger import assert_exactly_once, ledger_counts, reading, wait_drained
from tests.support.postgres_replica import PostgresReplica, fence, multi_host_url, replicated

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]
DB = "godel"
NO_PRIMARY_S = 1.0  # how long the test leaves Godel without a primary


def report(what: str, **times_s: float) -> None:
    shown = ", ".join(f"{k} {v:.2f}s" for k, v in times_s.items())
    print(f"\n[database failover] {what}: {shown}")


async def assert_no_primary(h: Harness) -> None:
    """What a client and the readiness probe get while no server takes writes."""
    refused = await h.post({"type": "agent.ping", "agent_id": "probe"})
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == "ledger_unavailable"
    assert (await h.client.get("/health/ready")).status_code == 503


async def no_primary_then(
    h: Harness,
    load: Posters,
    lost_at: float,
    restore: Callable[[], object],
    labels: tuple[str, str],
) -> dict[str, float]:
    """While no server takes writes: 503s and no 202; then `restore` one (promote the
    replica, restart the primary) and time the return, under `labels` (the restoring, the
    wait after it for a 202)."""
    first_503 = await load.until_answer(503, after=lost_at)
    await asyncio.sleep(NO_PRIMARY_S)
    await assert_no_primary(h)
    restore_at = time.monotonic()
    await asyncio.to_thread(restore)
    restored = time.monotonic()
    # 202s answered in the window are commits made before the primary went (in flight).
    late = load.statuses(after=first_503 + 0.5, before=restore_at)
    assert late[202] == 0, f"202 answered while no server took writes: {late}"
    back = await load.until_answer(202, after=restored)
    await load.until_acked(100)
    return {
        "to first 503": first_503 - lost_at,
        labels[0]: restored - restore_at,
        labels[1]: back - restored,
    }


async def no_primary_then_promote(
    h: Harness, load: Posters, replica: PostgresReplica, lost_at: float
) -> dict[str, float]:
    return await no_primary_then(
        h, load, lost_at, replica.promote, ("promotion", "promoted to first 202")
    )


async def test_primary_lost_and_replica_promoted(
    pg_pair: tuple[PostgresServer, PostgresReplica], redis_url: str
) -> None:
    primary, replica = pg_pair
    settings = make_settings(multi_host_url(DB, primary, replica), redis_url)
    async with running(settings, workers=2) as h, Posters([h.client], "lost") as load:
        await load.until_acked(150)
        lost_at = time.monotonic()
        await asyncio.to_thread(primary.crash)  # kill -9: the host is gone
        times = await no_primary_then_promote(h, load, replica, lost_at)
        await load.stop()
        await wait_drained(replica.database_url(DB), len(load.acked), timeout_s=30)
    report("primary killed, replica promoted", **times)
    await asyncio.to_thread(assert_exactly_once, replica.database_url(DB), load.acked)


async def test_fenced_primary_still_answering_is_left_for_the_promoted_replica(
    pg_pair: tuple[PostgresServer, PostgresReplica], redis_url: str
) -> None:
    """The old primary stays up, read-only (fenced, or demoted and back as a standby): its
    pooled connections pass pre-ping, so only the read-only error can drop them."""
    primary, replica = pg_pair
    settings = make_settings(multi_host_url(DB, primary, replica), redis_url)
    async with running(settings, workers=2) as h, Posters([h.client], "fenced") as load:
        await load.until_acked(150)
        fenced_at = time.monotonic()
        await asyncio.to_thread(fence, primary)
        times = await no_primary_then_promote(h, load, replica, fenced_at)
        await load.stop()
        await wait_drained(replica.database_url(DB), len(load.acked), timeout_s=30)
        assert (await h.client.get("/health/ready")).status_code == 200
    report("primary fenced read-only, replica promoted", **times)
    assert primary.is_running()
    await asyncio.to_thread(assert_exactly_once, replica.database_url(DB), load.acked)


async def test_postgres_restart_on_the_same_host(
    private_postgres: PostgresServer, redis_url: str
) -> None:
    url = private_postgres.create_database()
    async with running(make_settings(url, redis_url), workers=2) as h, Posters([h.client]) as load:
        await load.until_acked(150)
        down_at = time.monotonic()
        await asyncio.to_thread(private_postgres.halt)
        times = await no_primary_then(
            h, load, down_at, private_postgres.restart, ("restart", "accepting to first 202")
        )
        await load.stop()
        await wait_drained(url, len(load.acked), timeout_s=30)
    report("restart on the same host", **times)
    await asyncio.to_thread(assert_exactly_once, url, load.acked)


def ledger_ids(url: str) -> set[str]:
    with reading(url) as conn:
        return {str(i) for i in conn.execute(select(events.c.id)).scalars()}


@pytest.mark.parametrize("sync", [True, False], ids=["synchronous", "asynchronous"])
async def test_a_replica_cut_off_then_promoted(sync: bool, redis_url: str) -> None:
    """The replica is cut off its primary (a partition), the primary is lost, the replica
    is promoted. Synchronous: commits wait for a replica, so nothing is acknowledged while
    it is cut off, and nothing acknowledged is lost. Asynchronous: the primary goes on
    acknowledging, and the promotion loses those events: the runbook's warning, shown
    (Godel drops their ids from Redis, since the new ledger has no row for them)."""
    if find_postgres_bin_dir() is None:
        pytest.skip("PostgreSQL binaries not found (scripts/setup-dev.sh installs them)")
    with replicated(DB, sync=sync) as (primary, replica):
        settings = make_settings(multi_host_url(DB, primary, replica), redis_url)
        async with running(settings, workers=2) as h, Posters([h.client], "behind") as load:
            await load.until_acked(100)
            await asyncio.to_thread(replica.cut_off)
            cut_at = time.monotonic()
            await asyncio.sleep(NO_PRIMARY_S)
            while_behind = load.statuses(after=cut_at + 0.1)[202]
            await asyncio.to_thread(primary.crash)
            await asyncio.to_thread(replica.promote)
            await load.until_acked(100)
            await load.stop()
            url = replica.database_url(DB)
            kept = await asyncio.to_thread(ledger_ids, url)
            await wait_drained(url, len(kept), timeout_s=30)
        lost = load.acked - kept
        print(
            f"\n[database failover] replica cut off, {'' if sync else 'a'}synchronous: "
            f"{while_behind} answers 202 meanwhile, {len(lost)} acknowledged events lost"
        )
        if sync:
            assert while_behind == 0
            await asyncio.to_thread(assert_exactly_once, url, load.acked)
        else:
            assert while_behind > 0 and lost, "the asynchronous replica kept everything"
            assert kept <= load.acked
            assert await asyncio.to_thread(ledger_counts, url) == {"processed": len(kept)}
