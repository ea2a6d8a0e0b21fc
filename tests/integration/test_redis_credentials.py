"""Redis credentials for real: TLS with CA verification against a TLS redis-server (its
certificates made by the test), and an ACL user with exactly the permissions
docs/deploy.md lists ("Redis ACL"). A wrong password, a missing permission or an
untrusted certificate is reported as such (`auth`, `tls`, not `connection`), and Godel
recovers by itself once it is fixed."""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from pathlib import Path

import pytest

from godel.fastlane.link import LinkState
from tests.harness import Harness, ledger_counts, make_settings, running, wait_drained
from tests.support.fixtures_redis_ha import TlsFiles
from tests.support.process import free_port
from tests.support.redis_sentinel import SentinelGroup
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until_async

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
PASSWORD = "s3cret-Pass_word"
HANDLERS = "tests.plugins.flaky"


def documented_acl(cluster: bool = False) -> list[str]:
    """The `ACL SETUSER godel ...` line of docs/deploy.md, as arguments, with PASSWORD."""
    section = DEPLOY.read_text().split("### Redis ACL", 1)[1].split("\n### ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("ACL SETUSER godel ")]
    line = next(ln for ln in lines if ("~{godel}:*" in ln) == cluster)
    return shlex.split(line.replace(">CHANGE-ME", f">{PASSWORD}"))


def acl_log(server: RedisServer) -> list[str]:
    with server.client(decode_responses=True) as conn:
        return [f"{e['reason']} {e['object']}" for e in conn.acl_log()]


def godel_url(server: RedisServer, password: str = PASSWORD, port: int | None = None) -> str:
    return f"redis://godel:{password}@{server.host}:{port or server.port}/0"


async def exercise(h: Harness) -> None:
    """Every kind of Redis call Godel makes: ingest (rate limits), claims, retries, dead
    letters (filed, listed, replayed, purged), the cache (read, warm, invalidated),
    depths, the reaper, an operator's recovery."""
    for i in range(20):
        r = await h.post({"type": "agent.status", "agent_id": f"a-{i % 4}", "payload": {}})
        assert r.status_code == 202 and r.json()["mode"] == "redis", r.json()
    bad = (await h.post({"type": "test.fail", "payload": {"n": 1}})).json()["id"]
    flaky = (await h.post({"type": "test.flaky"})).json()["id"]
    await wait_until_async(
        lambda: ledger_counts(h.ledger_url) == {"processed": 21, "dead": 1},
        30,
        "settled",
        detail=lambda: (ledger_counts(h.ledger_url), h.rt.link.describe()),
    )
    assert (await h.client.get("/api/v1/agents/a-1")).status_code == 200
    assert (await h.client.post("/admin/cache/warm")).status_code == 200
    health = (await h.client.get("/health")).json()
    assert health["state"] == "connected" and health["queues"]["dead"] == {"test.fail": 1}
    assert (await h.client.get("/admin/dead/events")).status_code == 200
    assert (await h.client.post("/admin/dead/replay", params={"id": bad})).status_code == 200
    await wait_until_async(lambda: ledger_counts(h.ledger_url).get("dead") == 1, 30, "dead again")
    assert (await h.client.post("/admin/dead/purge", params={"id": bad})).status_code == 200
    assert (await h.admin("/admin/recovery/redis")).json()["state"] == "connected"
    assert flaky


async def test_the_documented_acl_is_all_godel_needs(
    fresh_redis: RedisServer, sqlite_url: str
) -> None:
    with fresh_redis.client() as conn:
        conn.execute_command(*documented_acl())
    settings = make_settings(
        sqlite_url, godel_url(fresh_redis), handlers=HANDLERS, retry_max_attempts=3
    )
    async with running(settings, workers=2) as h:
        assert h.rt.link.connected, h.rt.link.describe()
        await exercise(h)
        await asyncio.sleep(1.0)  # the reaper, the promoter and the gauges run meanwhile
        assert h.rt.link.connected, h.rt.link.describe()
    assert acl_log(fresh_redis) == []  # nothing Godel did was refused


async def test_a_wrong_password_is_auth_not_connection_and_heals_live(
    fresh_redis: RedisServer, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="godel")
    with fresh_redis.client() as conn:
        conn.execute_command(*documented_acl())
    wrong = "an-old-Password-9"
    settings = make_settings(sqlite_url, godel_url(fresh_redis, wrong))
    async with running(settings, workers=1) as h:
        health = (await h.client.get("/health")).json()
        assert health["state"] == "fallback" and health["link"]["reason"] == "auth", health
        r = await h.post({"type": "agent.ping", "agent_id": "a"})
        assert r.status_code == 202 and r.json()["mode"] == "fallback"
        with fresh_redis.client() as conn:  # the operator gives the user the password in use
            conn.execute_command("ACL", "SETUSER", "godel", f">{wrong}")
        await wait_until_async(lambda: h.rt.link.connected, 15, "the probe to reconnect")
        await wait_drained(h.ledger_url, 1)
        shown = str(health) + caplog.text
    assert "Entering fallback mode: auth" in caplog.text
    assert "Exiting fallback mode" in caplog.text
    assert wrong not in shown and PASSWORD not in shown


async def test_a_missing_permission_is_auth_and_heals_when_granted(
    fresh_redis: RedisServer, sqlite_url: str
) -> None:
    with fresh_redis.client() as conn:
        conn.execute_command(*documented_acl())
    settings = make_settings(sqlite_url, godel_url(fresh_redis))
    async with running(settings, workers=1) as h:
        assert h.rt.link.connected
        with fresh_redis.client() as conn:
            conn.execute_command("ACL", "SETUSER", "godel", "-lpush")
        r = await h.post({"type": "agent.ping", "agent_id": "a"})
        assert r.status_code == 202
        await wait_until_async(lambda: h.rt.link.state is LinkState.FALLBACK, 10, "fallback")
        health = (await h.client.get("/health")).json()
        assert health["link"]["reason"] == "auth", health
        assert "no permissions" in (health["link"]["last_error"] or ""), health
        with fresh_redis.client() as conn:
            conn.execute_command("ACL", "SETUSER", "godel", "+lpush")
        await wait_until_async(lambda: h.rt.link.connected, 15, "the probe to reconnect")
        await wait_drained(h.ledger_url, 1)


def start_tls_redis(base: Path, tls: TlsFiles, *extra: str) -> tuple[RedisServer, int]:
    """A redis-server with a TLS port (clients need not present certificates) beside its
    plain one (the test's own door)."""
    tls_port = free_port()
    server = RedisServer(base).start(
        extra_args=(
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(tls.cert),
            "--tls-key-file", str(tls.key),
            "--tls-ca-cert-file", str(tls.ca),
            "--tls-auth-clients", "no",
            *extra,
        )
    )  # fmt: skip
    return server, tls_port


def tls_url(server: RedisServer, port: int, ca: Path, scheme: str = "rediss") -> str:
    return f"{scheme}://godel:{PASSWORD}@{server.host}:{port}/0?ssl_ca_certs={ca}"


async def test_tls_with_ca_verification(tls_files: TlsFiles, tmp_path: Path) -> None:
    server, tls_port = start_tls_redis(tmp_path / "redis", tls_files)
    try:
        with server.client() as conn:
            conn.execute_command(*documented_acl())
        settings = make_settings(
            f"sqlite:///{tmp_path}/g.db", tls_url(server, tls_port, tls_files.ca)
        )
        async with running(settings, workers=1) as h:
            assert h.rt.link.connected, h.rt.link.describe()
            for _ in range(10):
                r = await h.post({"type": "agent.ping", "agent_id": "t"})
                assert r.json()["mode"] == "redis"
            await wait_drained(h.ledger_url, 10)
            shown = (await h.client.get("/health")).json()["link"]["redis_url"]
            assert shown.startswith("rediss://godel:***@") and PASSWORD not in shown
        with server.client() as conn:  # the ids went through the TLS port, as user godel
            assert conn.exists("godel:link:sentinel") and conn.zcard("godel:workers") == 0
        assert acl_log(server) == []
    finally:
        server.stop()


async def test_an_untrusted_certificate_is_tls_and_heals_when_the_ca_is_right(
    tls_files: TlsFiles, tmp_path: Path
) -> None:
    server, tls_port = start_tls_redis(tmp_path / "redis", tls_files)
    try:
        settings = make_settings(
            f"sqlite:///{tmp_path}/g.db", tls_url(server, tls_port, tls_files.other_ca)
        )
        async with running(settings, workers=1) as h:
            health = (await h.client.get("/health")).json()
            assert health["state"] == "fallback" and health["link"]["reason"] == "tls", health
            assert re.search(r"certificate verify failed", health["link"]["last_error"])
            r = await h.post({"type": "agent.ping", "agent_id": "t"})
            assert r.status_code == 202 and r.json()["mode"] == "fallback"
            await wait_drained(h.ledger_url, 1)  # fallback processes from the ledger
    finally:
        server.stop()


async def test_sentinel_over_tls(tls_files: TlsFiles, tmp_path: Path) -> None:
    """rediss+sentinel://: TLS to the Sentinels and to the master they name."""
    group = SentinelGroup(tmp_path / "sentinel", replicas=0, sentinels=1, tls=tls_files)
    group.start()
    try:
        hosts = ",".join(f"127.0.0.1:{s.tls_port}" for s in group.sentinels)
        url = f"rediss+sentinel://{hosts}/{group.master_name}/0?ssl_ca_certs={tls_files.ca}"
        settings = make_settings(f"sqlite:///{tmp_path}/g.db", url)
        async with running(settings, workers=1) as h:
            assert h.rt.link.connected, h.rt.link.describe()
            master = group.master()
            pool = h.rt.link.redis.connection_pool
            assert pool.master_address == (master.host, group.tls_port_of(master))
            r = await h.post({"type": "agent.ping", "agent_id": "s"})
            assert r.json()["mode"] == "redis"
            await wait_drained(h.ledger_url, 1)
    finally:
        group.stop()
