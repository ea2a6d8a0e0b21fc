"""The clients each URL form gets: fail-fast settings everywhere, the Sentinel pool that asks
for the master on every connection, the cluster client that needs only the {godel} slot.
Nothing here connects: what is checked is how the clients are built."""

from __future__ import annotations

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from godel.config import Settings
from godel.errors import ConfigError
from godel.fastlane.address import parse_redis_url
from godel.fastlane.topology import GodelCluster, Topology

SETTINGS = Settings(embedded_redis=False, redis_socket_timeout_s=0.4, redis_block_timeout_s=1.0)


def topology(url: str) -> Topology:
    return Topology(SETTINGS, parse_redis_url(url))


async def test_standalone_client_fails_fast() -> None:
    t = topology("redis://u:pw@h:7/2")
    client, blocking = t.client(), t.client(blocking=True)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("h", 7, 2, "pw")
    assert kwargs["socket_timeout"] == 0.4 and kwargs["retry"].get_retries() == 0
    assert blocking.connection_pool.connection_kwargs["socket_timeout"] == 1.4
    assert t.keys.pending == "godel:queue:pending" and t.sentinel is None
    await client.aclose()
    await blocking.aclose()


async def test_sentinel_client_asks_the_sentinels_with_tls_and_credentials() -> None:
    t = topology("rediss+sentinel://u:pw@s1:26380,s2/mymaster/1?ssl_ca_certs=/ca.pem")
    client = t.client()
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.is_master
    assert pool.service_name == "mymaster" and pool.check_connection
    kwargs = pool.connection_kwargs
    assert kwargs["db"] == 1 and kwargs["password"] == "pw" and kwargs["ssl_ca_certs"] == "/ca.pem"
    assert (
        type(pool).__name__ == "SentinelConnectionPool" and "SSL" in pool.connection_class.__name__
    )
    assert t.sentinel is not None
    sentinels = [s.connection_pool.connection_kwargs for s in t.sentinel.sentinels]
    assert [(s["host"], s["port"]) for s in sentinels] == [("s1", 26380), ("s2", 26379)]
    assert all(s["password"] == "pw" and s["socket_timeout"] == 0.4 for s in sentinels)
    assert t.keys.pending == "godel:queue:pending"  # Sentinel keeps the contract names
    await client.aclose()
    await t.close()


async def test_cluster_client_needs_only_its_slot() -> None:
    t = topology("redis+cluster://u:pw@n1:7000,n2:7001?ssl_cert_reqs=none")
    client = t.client()
    assert isinstance(client, GodelCluster)
    assert not client.nodes_manager.require_full_coverage
    assert sorted(client.nodes_manager.startup_nodes) == ["n1:7000", "n2:7001"]
    assert client.retry.get_retries() == 0
    assert t.keys.pending == "{godel}:queue:pending"
    await client.aclose()


def test_a_cluster_option_redis_py_does_not_know_is_refused() -> None:
    with pytest.raises(ConfigError, match="'bogus' is not a cluster option"):
        topology("redis+cluster://n1:7000?bogus=1").client()
