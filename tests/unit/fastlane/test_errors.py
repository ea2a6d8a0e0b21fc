from __future__ import annotations

import pytest
from redis import exceptions as rex

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
