"""PostgreSQL with a password user (scram-sha-256 in pg_hba.conf for that user) and
`sslmode` passed through the URL to libpq. A wrong password stops `godel db upgrade` and
`godel serve` at start with one line; a password that stops working while Godel runs gives
503 + Retry-After until it works again. The password is never in any output."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from psycopg import sql

from tests.harness import make_settings, running, wait_drained
from tests.support.godel_server import GODEL_BIN, godel_env
from tests.support.postgres_server import PostgresServer
from tests.support.process import free_port
from tests.support.settings import fast_settings

PASSWORD = "Pg-s3cret_pass"


@dataclass(frozen=True)
class PasswordUser:
    server: PostgresServer
    name: str
    database: str

    def url(self, password: str = PASSWORD, query: str = "") -> str:
        s = self.server
        url = f"postgresql+psycopg://{self.name}:{password}@{s.host}:{s.port}/{self.database}"
        return f"{url}?{query}" if query else url

    def set_password(self, password: str) -> None:
        with self.server.connect() as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            stmt = sql.SQL("ALTER ROLE {} PASSWORD {}")
            conn.execute(stmt.format(sql.Identifier(self.name), sql.Literal(password)))

    def cut_connections(self) -> None:
        """Close the user's sessions: the pool must log in again."""
        with self.server.connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (self.name,),
            )


def _reload_hba(server: PostgresServer, lines: str) -> None:
    (server.data_dir / "pg_hba.conf").write_text(lines)
    with server.connect() as conn:
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def password_user(postgres_server: PostgresServer) -> Iterator[PasswordUser]:
    """A login role with a password, which pg_hba.conf makes use scram-sha-256 (everyone
    else keeps the test server's trust), owning a database of its own."""
    name = f"pw_{uuid.uuid4().hex[:10]}"
    hba = postgres_server.data_dir / "pg_hba.conf"
    original = hba.read_text()
    with postgres_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
    user = PasswordUser(postgres_server, name, name)
    user.set_password(PASSWORD)
    _reload_hba(postgres_server, f"host all {name} 127.0.0.1/32 scram-sha-256\n{original}")
    try:
        yield user
    finally:
        _reload_hba(postgres_server, original)
        postgres_server.drop_database(name)
        with postgres_server.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def godel(args: list[str], settings: dict[str, object], timeout_s: float = 60) -> tuple[int, str]:
    done = subprocess.run(
        [str(GODEL_BIN), *args],
        env=godel_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return done.returncode, done.stdout + done.stderr


def test_db_upgrade_with_a_password_and_sslmode(password_user: PasswordUser) -> None:
    code, out = godel(
        ["db", "upgrade"], {"database_url": password_user.url(query="sslmode=disable")}
    )
    assert code == 0 and "database at revision" in out, out
    code, out = godel(["db", "upgrade"], {"database_url": password_user.url("wrong-Pass_1")})
    assert code != 0
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert f'password authentication failed for user "{password_user.name}"' in errors[0]
    assert "wrong-Pass_1" not in out and PASSWORD not in out
    # sslmode reaches libpq: this server has no TLS.
    code, out = godel(
        ["db", "upgrade"], {"database_url": password_user.url(query="sslmode=require")}
    )
    assert code != 0 and "server does not support SSL, but SSL was required" in out, out
    assert PASSWORD not in out


def test_serve_with_a_wrong_password_stops_at_start_in_one_line(
    password_user: PasswordUser, redis_url: str
) -> None:
    godel(["db", "upgrade"], {"database_url": password_user.url()})
    settings = fast_settings(password_user.url("wrong-Pass_1"), redis_url)
    code, out = godel(["serve", "--port", str(free_port())], settings)
    assert code != 0, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert errors[0].startswith("error: godel serve could not start: the ledger refused")
    assert "password authentication failed" in errors[0]
    assert "wrong-Pass_1" not in out and PASSWORD not in out


async def test_a_password_that_stops_working_gives_503_until_it_works_again(
    password_user: PasswordUser, redis_url: str
) -> None:
    url = password_user.url(query="sslmode=disable")
    await asyncio.to_thread(godel, ["db", "upgrade"], {"database_url": url})
    async with running(make_settings(url, redis_url), workers=1) as h:
        assert (await h.post({"type": "agent.ping", "agent_id": "p"})).status_code == 202
        # The password is rotated in PostgreSQL before Godel's configuration follows.
        await asyncio.to_thread(password_user.set_password, "rotated-Pass_2")
        await asyncio.to_thread(password_user.cut_connections)
        refused = await h.post({"type": "agent.ping", "agent_id": "p"})
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        health = await h.client.get("/health")
        for answer in (refused.text, health.text):
            assert PASSWORD not in answer and "rotated-Pass_2" not in answer
            assert password_user.name not in answer  # not even the user
        assert health.json()["database"] != "ok"
        await asyncio.to_thread(password_user.set_password, PASSWORD)
        ok = await h.post({"type": "agent.ping", "agent_id": "p"})
        assert ok.status_code == 202, ok.text
        await wait_drained(h.ledger_url, 2)
