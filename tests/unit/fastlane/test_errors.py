from __future__ import annotations

import ssl

import pytest
from redis import exceptions as rex
from redis.asyncio.sentinel import MasterNotFoundError

from godel.fastlane.errors import classify


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (rex.ConnectionError("Error 111 connecting. Connection refused."), "connection"),
        (ConnectionResetError(), "connection"),
        (rex.TimeoutError("Timeout reading"), "timeout"),
        (rex.BusyLoadingError("Redis is loading the dataset in memory"), "loading"),
        (rex.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"), "oom"),
        (rex.ResponseError("MISCONF Redis is configured to save RDB snapshots"), "misconf"),
        (rex.ReadOnlyError("You can't write against a read only replica."), "readonly"),
        (rex.MasterDownError("Link with MASTER is down"), "masterdown"),
        (rex.ClusterDownError("The cluster is down"), "clusterdown"),
        (rex.AuthenticationError("invalid username-password pair"), "auth"),
        (rex.NoPermissionError("this user has no permissions"), "auth"),
        (rex.ResponseError("UNBLOCKED force unblock from blocking operation"), "unblocked"),
        (rex.ResponseError("Error running script: -OOM command not allowed"), "oom"),
        (
            rex.ResponseError(
                "Command # 1 (LREM godel:queue:processing:w 1 a) of pipeline caused error: "
                '("MISCONF Redis is configured to save RDB snapshots")'
            ),
            "misconf",
        ),
        (
            rex.ResponseError("Command # 2 (LPUSH k x) of pipeline caused error: ('READONLY x')"),
            "readonly",
        ),
    ],
)
def test_outages_are_classified(exc: BaseException, reason: str) -> None:
    assert classify(exc) == reason


@pytest.mark.parametrize(
    "exc",
    [
        rex.ResponseError("WRONGTYPE Operation against a key"),
        rex.ResponseError("BUSYKEY Target key name already exists."),
        rex.DataError("bad"),
        ValueError(),
    ],
)
def test_bugs_are_not_outages(exc: BaseException) -> None:
    assert classify(exc) is None


def _raised(outer: BaseException, inner: BaseException, *, cause: bool) -> BaseException:
    """`outer` raised while handling `inner`: `from inner` (cause) or not (context)."""
    try:
        try:
            raise inner
        except BaseException as handled:
            if cause:
                raise outer from handled
            raise outer  # noqa: B904  the implicit context, as redis-py leaves it
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        # Sentinel (redis.asyncio.sentinel)
        (MasterNotFoundError("No master found for 'm'"), "masterdown"),
        (
            MasterNotFoundError(
                "No master found for 'm' : 127.0.0.1:1 - AuthenticationError: "
                "invalid username-password pair or user is disabled."
            ),
            "auth",
        ),
        (rex.ConnectionError("The previous master is now a slave"), "readonly"),
        # Cluster (redis.asyncio.cluster)
        (rex.SlotNotCoveredError('Slot "11626" is not covered by the cluster.'), "clusterdown"),
        (rex.ClusterError("TTL exhausted."), "clusterdown"),
        (
            rex.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
            "clusterdown",
        ),
        (rex.MaxConnectionsError(), "pool"),
        (
            _raised(
                rex.RedisClusterException("Redis Cluster cannot be connected."),
                rex.ConnectionError("Error 111 connecting to 127.0.0.1:7000."),
                cause=True,
            ),
            "connection",
        ),
        (
            _raised(
                rex.RedisClusterException("Redis Cluster cannot be connected."),
                rex.AuthenticationError("invalid username-password pair"),
                cause=True,
            ),
            "auth",
        ),
        (
            _raised(
                rex.RedisClusterException("Cluster mode is not enabled on this node"),
                rex.NoPermissionError("this user has no permissions to run the 'cluster' command"),
                cause=False,
            ),
            "auth",
        ),
        (rex.RedisClusterException("All slots are not covered after query"), "clusterdown"),
        # TLS
        (
            rex.ConnectionError(
                "Error 1 connecting to 127.0.0.1:6390. [SSL: CERTIFICATE_VERIFY_FAILED] "
                "certificate verify failed: self-signed certificate in certificate chain"
            ),
            "tls",
        ),
        (ssl.SSLCertVerificationError("certificate verify failed"), "tls"),
    ],
)
def test_sentinel_cluster_and_tls_outages_are_classified(exc: BaseException, reason: str) -> None:
    assert classify(exc) == reason


@pytest.mark.parametrize(
    "exc",
    [
        rex.ResponseError("CROSSSLOT Keys in request don't hash to the same slot"),
        rex.CrossSlotTransactionError("All keys involved in a cluster transaction must map"),
        rex.RedisClusterException("No targets were found to execute"),
    ],
)
def test_cluster_usage_errors_are_bugs_not_outages(exc: BaseException) -> None:
    assert classify(exc) is None
