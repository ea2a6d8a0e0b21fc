"""Fixtures for Redis beyond one plain server (a pytest plugin, registered in
tests/conftest.py): Sentinel, Cluster, TLS.

- sentinel_group (function): a master, a replica and three Sentinels (redis_sentinel.py).
- cluster_factory (function): `cluster_factory(appendonly=False)` -> a started three-master
  Redis Cluster (redis_cluster.py); every cluster is stopped after the test.
- tls_files (session): a CA and a server certificate for 127.0.0.1, made with openssl.
- ha_soak_s: GODEL_HA_SOAK_S (seconds of extra failovers in the HA chaos tests; 0 = none).
- record_time (function): `record_time(topic, case, seconds)`; at the end of the run each
  topic's times are printed as a distribution (and saved as JSON to GODEL_HA_REPORT=<file>).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.redis_cluster import RedisClusterSet, redis_cli
from tests.support.redis_sentinel import SentinelGroup
from tests.support.redis_server import redis_binary

ClusterFactory = Callable[..., RedisClusterSet]
RecordTime = Callable[[str, str, float], None]
_TIMES = pytest.StashKey[dict[str, dict[str, list[float]]]]()


def _require(binary: str | None, what: str) -> None:
    if binary is None:
        pytest.skip(f"{what} is not installed (scripts/setup-dev.sh installs it)")


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    _require(redis_binary(), "redis-server")
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        yield group.start()
    finally:
        group.stop()


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[ClusterFactory]:
    _require(redis_binary(), "redis-server")
    _require(redis_cli(), "redis-cli")
    count = 0
    with ExitStack() as stops:

        def start(**options: bool) -> RedisClusterSet:
            nonlocal count
            cluster = RedisClusterSet(tmp_path / f"cluster-{count}", **options)
            count += 1
            stops.callback(cluster.stop)
            return cluster.start()

        yield start


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a CA, a server certificate it signed (for 127.0.0.1), a stranger CA."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the server's certificate


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=Godel test {name}", "-keyout", str(key), "-out", str(cert),
        cwd=directory,
    )  # fmt: skip
    return key, cert


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    _require(shutil.which("openssl"), "openssl")
    directory = tmp_path_factory.mktemp("tls")
    ca_key, ca = _make_ca(directory, "ca")
    _, other_ca = _make_ca(directory, "other-ca")
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr),
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
        cwd=directory,
    )  # fmt: skip
    return TlsFiles(ca=ca, cert=cert, key=key, other_ca=other_ca)


@pytest.fixture
def ha_soak_s() -> float:
    """Extra seconds of repeated failovers (GODEL_HA_SOAK_S); 0 in a normal run."""
    return float(os.environ.get("GODEL_HA_SOAK_S", "0") or 0)


@pytest.fixture
def record_time(request: pytest.FixtureRequest) -> RecordTime:
    times = request.config.stash.setdefault(_TIMES, {})

    def record(topic: str, case: str, seconds: float) -> None:
        times.setdefault(topic, {}).setdefault(case, []).append(round(seconds, 4))

    return record


def distribution(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"n={len(ordered)} min={ordered[0]:.3f}s median={statistics.median(ordered):.3f}s "
        f"p90={p90:.3f}s max={ordered[-1]:.3f}s"
    )


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    times = config.stash.get(_TIMES, {})
    if not times:
        return
    terminalreporter.section("measured failover times")
    for topic, cases in times.items():
        everything = [t for values in cases.values() for t in values]
        terminalreporter.write_line(f"{topic}: {distribution(everything)}")
        for case, values in cases.items():
            terminalreporter.write_line(f"  {case}: {distribution(values)}  {values}")
    target = os.environ.get("GODEL_HA_REPORT")
    if target:
        with open(target, "w") as out:
            json.dump(times, out, indent=1)
