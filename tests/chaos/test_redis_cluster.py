"""Godel on a real three-master Redis Cluster (redis+cluster://): every key in the {godel}
slot, so each Lua script, MULTI and multi-key DEL touches one node.

- ingest, processing, retries, dead letters, depths and the cache, with the keys where the
  runbook says (`{godel}:queue:pending` ...) and nothing outside that slot;
- the node serving {godel} killed under load: fallback, then, once it is back, replay (its
  AOF kept the queues) or reconcile (it came back empty: the sentinel key is gone);
- a node Godel does not use killed: Godel stays connected, and even starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
import redis

from godel.fastlane.link import LinkState
from tests.chaos.ha import LinkTimeline, Load, gated_registry, run_runbook_block
from tests.harness import assert_exactly_once, ledger_counts, make_settings, running, wait_drained
from tests.support.fixtures_redis_ha import ClusterFactory, RecordTime
from tests.support.redis_cluster import RedisClusterSet
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until, wait_until_async

pytestmark = [pytest.mark.chaos]

PENDING = "{godel}:queue:pending"
GODEL_SLOT = 11626


def _all_keys(cluster: RedisClusterSet) -> dict[int, list[str]]:
    """Every key of every running node, by the node's port."""
    found: dict[int, list[str]] = {}
    for node in cluster.nodes:
        if node.ping():
            with node.client(decode_responses=True) as conn:
                found[node.port] = sorted(conn.scan_iter(count=1000))
    return found


async def test_the_pipeline_runs_on_a_cluster_in_one_slot(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory()
    gate = asyncio.Event()
    gate.set()
    settings = make_settings(f"sqlite:///{tmp_path}/g.db", cluster.url, retry_max_attempts=2)
    async with running(settings, workers=2, registry=gated_registry(gate, failing="c.fail")) as h:
        assert h.rt.link.connected
        ids = [(await h.post({"type": "agent.ping", "agent_id": f"a-{i % 3}"})).json()["id"]
               for i in range(30)]  # fmt: skip
        dead = (await h.post({"type": "c.fail"})).json()["id"]
        await wait_until_async(
            lambda: ledger_counts(h.ledger_url) == {"processed": 30, "dead": 1}, 30, "processed"
        )
        assert (await h.client.get("/api/v1/agents/a-1")).status_code == 200  # cached
        health = (await h.client.get("/health")).json()
        assert health["queues"]["dead"] == {"c.fail": 1} and health["queues"]["workers"] == 2
        gate.clear()  # workers hold: the next events wait in {godel}:queue:pending
        held = [(await h.post({"type": "agent.ping", "agent_id": "a-0"})).json()["id"]
                for _ in range(3)]  # fmt: skip
        node = cluster.node_for(PENDING)
        with node.client(decode_responses=True) as conn:
            await wait_until_async(lambda: conn.llen(PENDING) >= 1, 10, "ids in pending")
            assert set(conn.lrange(PENDING, 0, -1)) <= set(held)
            assert conn.lrange("{godel}:queue:dead:c.fail", 0, -1) == [dead]
            assert conn.exists("{godel}:cache:agent:a-1", "{godel}:link:sentinel") == 2
        gate.set()
        await wait_drained(h.ledger_url, 33)
        assert ids
    keys = _all_keys(cluster)
    assert not [k for port, ks in keys.items() if port != node.port for k in ks]
    assert all(cluster.keyslot(k) == GODEL_SLOT for k in keys[node.port])
    # The runbook's cluster-mode commands, against this cluster (a dead list is there).
    any_node = cluster.nodes[0]
    await asyncio.to_thread(
        run_runbook_block, 1, {"-h redis-cluster": f"-h {any_node.host} -p {any_node.port}"}
    )


CASES = {
    # case: (the node keeps its data (AOF), the reconciler is needed)
    "restart-aof": (True, False),
    "restart-empty": (False, True),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_losing_the_godel_node_falls_back_and_recovers_exactly_once(
    case: str,
    cluster_factory: ClusterFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    record_time: RecordTime,
) -> None:
    caplog.set_level(logging.INFO, logger="godel")
    aof, reconciles = CASES[case]
    cluster = cluster_factory(appendonly=aof)
    node = cluster.node_for(PENDING)
    gate = asyncio.Event()
    gate.set()
    settings = make_settings(f"sqlite:///{tmp_path}/g.db", cluster.url)
    async with (
        running(settings, workers=2, registry=gated_registry(gate)) as h,
        Load(h) as load,
    ):
        timeline = LinkTimeline.of(h.rt.link)
        await load.until_acked(100)
        gate.clear()  # what is pushed now stays in Redis: the restart may take it away
        await load.until_acked(50)
        killed_at = time.monotonic()
        await asyncio.to_thread(node.kill9)
        await timeline.wait(LinkState.FALLBACK, after=killed_at, timeout_s=15)
        assert h.rt.link.reason in ("connection", "clusterdown"), h.rt.link.describe()
        await load.until_acked(100)  # accepted while the {godel} slot is unreachable
        await asyncio.to_thread(node.restart, aof)
        back_at = node.up_since
        ok_at = await asyncio.to_thread(wait_until, lambda: _state_ok(node), 30, "cluster ok")
        connected_at = await timeline.wait(LinkState.CONNECTED, after=killed_at, timeout_s=30)
        record_time("Cluster: the {godel} node restarted -> Godel connected", case,
                    connected_at - back_at)  # fmt: skip
        record_time("Cluster: that node's cluster_state ok -> Godel connected", case,
                    max(0.0, connected_at - ok_at))  # fmt: skip
        gate.set()
        await load.until_acked(100)
        await load.stop()
        await wait_drained(h.ledger_url, len(load.acked))
        assert set(load.statuses) == {202}, load.statuses
        await asyncio.to_thread(assert_exactly_once, h.ledger_url, load.acked)
        assert load.modes["fallback"] > 0 and load.modes["redis"] > 0
        if reconciles:  # the node came back empty: its pushed ids were pushed again
            assert h.rt.replayer.reconciled_total > 0
    assert "Entering fallback mode" in caplog.text and "Exiting fallback mode" in caplog.text
    if reconciles:
        assert "sentinel key missing" in caplog.text


async def test_a_node_godel_does_not_use_can_be_down(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory()
    godel_node = cluster.node_for(PENDING)
    # The node of slot 0 is redis-py's default node: COMMAND is read from it at start.
    other = next(n for n in cluster.nodes if n is not godel_node and _serves_slot(n, 0))
    other.kill9()
    settings = make_settings(f"sqlite:///{tmp_path}/g.db", cluster.url)
    async with running(settings, workers=1) as h, Load(h) as load:
        assert h.rt.link.connected, h.rt.link.describe()
        await load.until_acked(100)
        await load.stop()
        await wait_drained(h.ledger_url, len(load.acked))
        await asyncio.to_thread(assert_exactly_once, h.ledger_url, load.acked)
        assert load.modes == {"redis": load.modes["redis"]}  # never in fallback
        assert h.rt.link.connected


def _state_ok(node: RedisServer) -> bool:
    try:
        with node.client(decode_responses=True) as conn:
            return "cluster_state:ok" in conn.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False


def _serves_slot(node: RedisServer, slot: int) -> bool:
    with node.client() as conn:
        try:
            ranges = conn.execute_command("CLUSTER", "SLOTS")
        except redis.RedisError:
            return False
        return any(int(m[1]) == node.port and s <= slot <= e for s, e, m, *_ in ranges)


async def test_with_full_coverage_required_any_node_down_is_clusterdown(
    cluster_factory: ClusterFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis's default (`cluster-require-full-coverage yes`): once a node is marked failed
    the whole cluster refuses commands, the {godel} slot's node included."""
    caplog.set_level(logging.WARNING, logger="godel")
    cluster = cluster_factory(require_full_coverage=True)
    godel_node = cluster.node_for(PENDING)
    other = next(n for n in cluster.nodes if n is not godel_node)
    settings = make_settings(f"sqlite:///{tmp_path}/g.db", cluster.url)
    async with running(settings, workers=1) as h, Load(h) as load:
        await load.until_acked(50)
        await asyncio.to_thread(other.kill9)
        await wait_until_async(lambda: h.rt.link.reason == "clusterdown", 20, "CLUSTERDOWN")
        await load.until_acked(50)  # accepted in fallback meanwhile
        await asyncio.to_thread(other.restart, False)
        await wait_until_async(lambda: h.rt.link.connected, 30, "the cluster to be whole again")
        await load.until_acked(50)
        await load.stop()
        await wait_drained(h.ledger_url, len(load.acked))
        await asyncio.to_thread(assert_exactly_once, h.ledger_url, load.acked)
    # The reason logged on entry is whatever error came first (a connection to the killed
    # node may close before the cluster is marked failed); the wait above checked that the
    # link's reason became clusterdown.
    assert "Entering fallback mode" in caplog.text
