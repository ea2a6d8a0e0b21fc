"""Godel behind real Sentinels (one master, one replica, three Sentinels) under steady load,
through four failovers: the master killed (-9), partitioned (SIGSTOP, then back as a
replica), handed over by an operator (SENTINEL FAILOVER), and killed right after losing
its last writes to the replica (asynchronous replication).

Every time: every acknowledged event is processed exactly once, Godel falls back in between
and writes to the new master within 10 s of the Sentinels' +switch-master (the times are
printed as a distribution at the end of the run), and nothing Godel sent after the
failover reaches the old master. GODEL_HA_SOAK_S=<seconds> repeats each case for that long
(GODEL_HA_REPORT=<file> saves the times as JSON).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from pathlib import Path

import pytest
import redis

from godel.config import Settings
from godel.fastlane.link import LinkState
from tests.chaos.ha import LinkTimeline, Load, SwitchWatch, gated_registry, run_runbook_block
from tests.harness import Harness, assert_exactly_once, make_settings, running, wait_drained
from tests.support.fixtures_redis_ha import RecordTime
from tests.support.redis_sentinel import SentinelGroup, replication, role, wait_role
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until, wait_until_async

pytestmark = [pytest.mark.chaos]

WRITE_WITHIN_S = 10.0
PROBE_DEFAULTS = {
    name: Settings.model_fields[name].default
    for name in ("probe_backoff_min_s", "probe_backoff_max_s")
}
TEST_CLIENT = "godel-test"


class OldMasterMonitor:
    """MONITOR on a (returning) old master from a thread: every command it executes, with
    the server's time and the sending client's address."""

    LINE = re.compile(r"^(?P<at>[\d.]+) \[\d+ (?P<addr>[^\]]+)\] (?P<cmd>.*)$")

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.lines: list[tuple[float, str, list[str]]] = []
        self._client = server.client(client_name=TEST_CLIENT, socket_timeout=None)
        self._conn = self._client.connection_pool.get_connection()
        self._conn.send_command("CLIENT", "ID")
        self._id = int(self._conn.read_response())
        self._conn.send_command("MONITOR")
        self._conn.read_response()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                raw = self._conn.read_response()
            except (redis.RedisError, OSError):
                return
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            found = self.LINE.match(text)
            if found:
                args = re.findall(r'"((?:[^"\\]|\\.)*)"', found["cmd"])
                self.lines.append((float(found["at"]), found["addr"], args))

    def stop(self) -> None:
        with self.server.client() as conn:
            conn.execute_command("CLIENT", "KILL", "ID", self._id)
        self._thread.join(5)
        self._client.close()

    def godel_commands(self, since: float, new_master: RedisServer) -> list[str]:
        """Commands touching Godel's keys after `since` (server time), sent by anyone but
        the new master's replication stream (and Lua, which the script call shows first)."""
        link = f"{new_master.host}:{new_master.port}"
        return [
            " ".join(args)
            for at, addr, args in self.lines
            if at >= since and addr not in (link, "lua") and any("godel:" in a for a in args)
        ]


def foreign_clients(server: RedisServer) -> list[str]:
    """Clients of `server` other than Sentinels, replication links and this test's own."""
    with server.client(decode_responses=True) as conn:
        clients = conn.client_list()
    return [
        f"{c['addr']} name={c['name']} cmd={c['cmd']}"
        for c in clients
        if not c["name"].startswith(("sentinel-", TEST_CLIENT))
        and not set(c["flags"]) & {"M", "S"}
        and c["cmd"] != "client|list"
    ]


async def lose_the_last_writes(
    group: SentinelGroup, old: RedisServer, load: Load, gate: asyncio.Event
) -> tuple[set[str], float]:
    """Cut replication (the replica cannot resync: wrong masterauth), let Godel push events
    the replica never gets while workers hold (so they stay unprocessed), then kill -9 the
    master. Returns the ids the promoted replica lacks, and when the master was killed."""
    replica = next(s for s in group.servers if s is not old)
    gate.clear()
    replica.config_set("masterauth", "not-the-password")
    with old.client() as conn:
        conn.client_kill_filter(_type="replica")
    await wait_until_async(lambda: replication(replica)["master_link_status"] == "down", 10)
    await load.until_acked(60)

    def pending(server: RedisServer) -> set[str]:
        with server.client(decode_responses=True) as conn:
            return set(conn.lrange("godel:queue:pending", 0, -1))

    await wait_until_async(lambda: len(pending(old) - pending(replica)) >= 20, 10, "lost pushes")
    lost = pending(old) - pending(replica)
    killed_at = time.monotonic()
    await asyncio.to_thread(old.kill9)
    return lost, killed_at


async def fail_over(
    case: str,
    group: SentinelGroup,
    h: Harness,
    load: Load,
    gate: asyncio.Event,
    switches: SwitchWatch,
    record: RecordTime,
) -> set[str]:
    """One failover of kind `case`; returns the ids the new master lost (lost-writes)."""
    # From a steady state: replicas in sync (else no replica is fit to promote) and Godel
    # connected (a loaded machine can make the Sentinels doubt a master for a moment).
    await asyncio.to_thread(group.wait_healthy)
    await wait_until_async(lambda: h.rt.link.connected, 30, "Godel connected")
    timeline = LinkTimeline.of(h.rt.link)
    old = group.master()
    lost: set[str] = set()
    fault_at = time.monotonic()
    if case == "kill9":
        await asyncio.to_thread(old.kill9)
    elif case == "sigstop":
        await asyncio.to_thread(old.pause)
    elif case == "manual":
        await asyncio.to_thread(group.failover)
    else:
        lost, fault_at = await lose_the_last_writes(group, old, load, gate)
    switched_at, new_port = await switches.next_switch(fault_at)
    connected_at = await timeline.wait(LinkState.CONNECTED, after=fault_at)
    assert timeline.down_between(fault_at, connected_at), timeline  # fallback in between
    new = group.server_at(new_port)
    assert h.rt.link.redis.connection_pool.master_address == (new.host, new.port)
    latency = max(0.0, connected_at - switched_at)
    record("Sentinel: +switch-master -> Godel writing to the new master", case, latency)
    record("Sentinel: the fault -> Godel writing to the new master", case, connected_at - fault_at)
    assert latency < WRITE_WITHIN_S, f"Godel wrote to the new master {latency:.1f}s after"
    gate.set()
    await load.until_acked(50)  # flowing again, through the new master
    if case == "sigstop":
        await come_back_as_replica(old, new)
    elif case in ("kill9", "lost-writes"):
        await asyncio.to_thread(old.restart, False)  # back, empty: a replica for next time
        await asyncio.to_thread(wait_role, old, "slave")
    with new.client(decode_responses=True) as conn:
        assert conn.zcard("godel:workers") >= 1  # the workers' leases are on the new master
    return lost


async def come_back_as_replica(old: RedisServer, new: RedisServer) -> None:
    """SIGCONT the partitioned old master: the Sentinels demote it, and nothing Godel sent
    after the partition reaches it (what it executes on waking is what was already in its
    sockets before it was stopped)."""
    await asyncio.to_thread(old.resume)
    monitor = await asyncio.to_thread(OldMasterMonitor, old)
    try:
        woke = time.time()
        await asyncio.to_thread(wait_role, old, "slave")
        demoted = time.time()
        await asyncio.sleep(1.0)
        late = monitor.godel_commands(woke + 0.5, new)
        assert not late, f"Godel wrote to the old master after the failover: {late[:5]}"
        assert not monitor.godel_commands(demoted, new)
        assert not await asyncio.to_thread(foreign_clients, old)
    finally:
        await asyncio.to_thread(monitor.stop)


CASES = ("kill9", "sigstop", "manual", "lost-writes")


@pytest.mark.parametrize("case", CASES)
async def test_a_failover_under_load_loses_nothing_and_applies_nothing_twice(
    case: str,
    sentinel_group: SentinelGroup,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    ha_soak_s: float,
    record_time: RecordTime,
) -> None:
    caplog.set_level(logging.INFO, logger="godel")
    gate = asyncio.Event()
    gate.set()
    # The probe backs off as in production, so the times measured are production's.
    settings = make_settings(f"sqlite:///{tmp_path}/g.db", sentinel_group.url, **PROBE_DEFAULTS)
    registry = gated_registry(gate)
    lost: set[str] = set()
    async with (
        running(settings, workers=2, registry=registry) as h,
        SwitchWatch(sentinel_group.sentinels[0].port) as switches,
        Load(h) as load,
    ):
        await load.until_acked(100)
        soak_until = time.monotonic() + ha_soak_s
        while True:
            lost |= await fail_over(case, sentinel_group, h, load, gate, switches, record_time)
            if time.monotonic() >= soak_until:
                break
        await load.stop()
        await wait_drained(h.ledger_url, len(load.acked))
        assert set(load.statuses) == {202}, load.statuses
        await asyncio.to_thread(assert_exactly_once, h.ledger_url, load.acked)
        assert load.modes["redis"] > 0
        if lost:  # the new master never had them: only the reconciler could bring them back
            assert h.rt.replayer.reconciled_total >= 1
    assert "Entering fallback mode" in caplog.text
    assert "Exiting fallback mode" in caplog.text


async def test_workers_the_reaper_dead_letters_and_the_cache_follow_the_new_master(
    sentinel_group: SentinelGroup, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    gate.set()
    settings = make_settings(f"sqlite:///{tmp_path}/g.db", sentinel_group.url, retry_max_attempts=2)
    registry = gated_registry(gate, failing="ha.fail")
    async with running(settings, workers=1, registry=registry) as h:
        old = sentinel_group.master()
        await asyncio.to_thread(sentinel_group.failover)
        new = await asyncio.to_thread(sentinel_group.wait_master, old.port)
        await wait_until_async(
            lambda: (
                h.rt.link.connected
                and h.rt.link.redis.connection_pool.master_address == (new.host, new.port)
            ),
            15,
            "Godel on the new master",
        )
        # A worker that died holding a claim (its lease long expired): the reaper, on the
        # new master, gives the claim back and a worker processes it.
        orphan = (await h.post({"type": "agent.ping", "agent_id": "o-1"})).json()["id"]
        await wait_drained(h.ledger_url, 1)
        with new.client(decode_responses=True) as conn:
            conn.lpush("godel:queue:processing:ghost", orphan)
            conn.zadd("godel:workers", {"ghost": 1})
        await wait_until_async(lambda: _zscore(new, "ghost") is None, 10, "the reaper")
        # A dead letter is filed on the new master.
        dead = (await h.post({"type": "ha.fail"})).json()["id"]
        await wait_until_async(lambda: _lrange(new, "godel:queue:dead:ha.fail") == [dead], 15)
        # An agent read is cached on the new master.
        assert (await h.client.get("/api/v1/agents/o-1")).status_code == 200
        with new.client() as conn:
            assert conn.exists("godel:cache:agent:o-1")
    wait_until(lambda: role(old) == "slave", 15, "the old master to follow the new one")

    def replicated() -> bool:  # it holds the same, by replication
        with old.client() as conn:
            return bool(conn.exists("godel:cache:agent:o-1"))

    wait_until(replicated, 15, "the new master's writes on the demoted one")
    sentinel = sentinel_group.sentinels[0]
    run_runbook_block(
        0,
        {
            "-h redis -p 26379": f"-h 127.0.0.1 -p {sentinel.port}",
            "mymaster": sentinel_group.master_name,
        },
    )


def _zscore(server: RedisServer, member: str) -> float | None:
    with server.client() as conn:
        score: float | None = conn.zscore("godel:workers", member)
        return score


def _lrange(server: RedisServer, key: str) -> list[str]:
    with server.client(decode_responses=True) as conn:
        return list(conn.lrange(key, 0, -1))
