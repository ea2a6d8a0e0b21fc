"""Every `godel` operator command against a real `godel serve` subprocess and a real
redis-server. Most run in process through typer's CliRunner (the same code the console
script runs, without a second interpreter start); the console script itself runs where
the process boundary matters (status --json, a live tail, the demo)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from godel.cli import app
from tests.integration.live_stack import (
    AUTH,
    FAILING_TYPE,
    GODEL_BIN,
    ROOT,
    SERVE_ENV,
    TOKEN,
    LiveStack,
    StartProcess,
    start_stack,
)
from tests.servers import RedisServer, free_port

runner = CliRunner()


@pytest.fixture
def stack(run_process: StartProcess, fresh_redis: RedisServer, tmp_path: Path) -> LiveStack:
    return start_stack(run_process, fresh_redis, tmp_path)


def godel(stack: LiveStack, *args: str, input: str | None = None) -> Any:
    """Run a CLI command in process with the operator's environment (GODEL_URL, token)."""
    return runner.invoke(
        app, list(args), env={"GODEL_URL": stack.url, "GODEL_ADMIN_TOKEN": TOKEN}, input=input
    )


def ok(stack: LiveStack, *args: str, input: str | None = None) -> str:
    result = godel(stack, *args, input=input)
    assert result.exit_code == 0, f"godel {' '.join(args)}: {result.output}"
    return str(result.stdout)


def binary(stack: LiveStack, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GODEL_BIN), *args],
        env=stack.cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_status_json_and_table(stack: LiveStack) -> None:
    done = binary(stack, "status", "--json")
    assert done.returncode == 0, done.stderr
    health = json.loads(done.stdout)
    assert health["state"] == "connected" and health["link"]["redis_url"] == stack.redis.url
    assert set(health) >= {"queues", "undispatched", "events", "replay", "workers"}

    table = ok(stack, "status")
    assert "Redis connected since" in table and " UTC (" in table
    assert "pending 0, processing 0, delayed 0, dead 0" in table
    assert "0 events in the ledger, not in Redis" in table
    assert "no maxmemory" in table  # Redis memory, from GET /health's redis_memory
    assert ok(stack, "status", "--check").strip() == "ok: Redis link connected, database ok"

    stack.redis.kill9()
    stack.wait_state("fallback", "connection")
    down = ok(stack, "status")
    assert "Redis Connection Error: fallback since" in down and "reason connection" in down
    assert "unknown while Redis is unreachable" in down
    probe = binary(stack, "status", "--check")
    assert probe.returncode == 1 and probe.stdout == ""
    assert probe.stderr.strip() == "error: not healthy: Redis link fallback (connection)"


def test_url_without_a_scheme(stack: LiveStack) -> None:
    host_port = stack.url.removeprefix("http://")
    done = binary(stack, "status", "--json", "--url", host_port)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "connected"


def test_publish_is_acknowledged_once_and_processed(stack: LiveStack) -> None:
    out = ok(stack, "events", "publish", "agent.status", "--payload", '{"status": "busy"}',
             "--agent-id", "a-1", "--id", "cli-1")  # fmt: skip
    assert out.strip() == "accepted cli-1 (mode redis)"
    again = ok(stack, "events", "publish", "agent.status", "--payload", '{"status": "busy"}',
               "--id", "cli-1", "--agent-id", "a-1")  # fmt: skip
    assert again.strip() == "duplicate cli-1: already accepted earlier, not queued again"
    other = godel(stack, "events", "publish", "agent.status", "--id", "cli-1", "--agent-id", "a-1")
    assert other.exit_code == 1 and "HTTP 409" in other.stderr  # same id, another payload
    stack.wait(lambda h: h["events"] == {"processed": 1}, "cli-1 processed")
    agent = httpx.get(f"{stack.url}/api/v1/agents/a-1", headers=AUTH, timeout=5).json()
    assert agent["status"] == "busy" and agent["events_applied"] == 1

    bad = godel(stack, "events", "publish", "not a type!")
    assert bad.exit_code == 1 and "HTTP 422" in bad.stderr

    shown = ok(stack, "events", "get", "cli-1")
    assert "cli-1 (ledger #1)" in shown and "processed" in shown and " UTC (" in shown
    assert '"status": "busy"' in shown
    as_json = json.loads(ok(stack, "events", "get", "cli-1", "--json"))
    assert as_json["status"] == "processed" and as_json["payload"] == {"status": "busy"}
    assert as_json["processed_at_utc"].endswith(" UTC")
    missing = godel(stack, "events", "get", "no-such-id")
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr


def test_dead_letters_list_show_replay_purge(stack: LiveStack) -> None:
    stack.make_dead_letter("doomed-1")
    summary = ok(stack, "dead", "list")
    assert "Dead letters: 1 total" in summary and FAILING_TYPE in summary
    listed = ok(stack, "dead", "list", "--type", FAILING_TYPE)
    assert "doomed-1" in listed and "boom 1" in listed
    shown = json.loads(ok(stack, "dead", "show", "doomed-1"))
    assert shown["id"] == "doomed-1" and shown["payload"] == {"n": 1}
    assert shown["attempts"] == 1 and "boom 1" in shown["last_error"]
    assert isinstance(shown["created_at"], float) and shown["created_at_utc"].endswith(" UTC")

    replayed = ok(stack, "dead", "replay", "--type", FAILING_TYPE)
    assert replayed.strip() == f"replayed 1 dead event of type {FAILING_TYPE}"
    # Its handler always fails, so the replayed event dies again (one attempt).
    stack.wait(lambda h: h["events"].get("dead") == 1, "the replayed event to die again")

    refused = godel(stack, "dead", "purge", "--type", FAILING_TYPE, input="n\n")
    assert refused.exit_code == 1 and "purge cancelled" in refused.stderr
    purged = ok(stack, "dead", "purge", "--type", FAILING_TYPE, "--yes")
    assert purged.strip() == f"purged 1 dead event of type {FAILING_TYPE}"
    assert "Dead letters: 0 total" in ok(stack, "dead", "list")
    again = ok(stack, "dead", "purge", "--type", FAILING_TYPE)  # nothing to ask about
    assert again.strip() == f"no dead events of type {FAILING_TYPE}: nothing to purge"

    missing = godel(stack, "dead", "show", "no-such-id")
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr
    stack.post({"type": "agent.ping", "agent_id": "a", "id": "alive-1"})
    stack.wait(lambda h: h["events"].get("processed") == 1, "alive-1 processed")
    alive = godel(stack, "dead", "show", "alive-1")
    assert alive.exit_code == 1
    assert alive.stderr.strip() == "error: event alive-1 is not dead: its status is processed"


def test_recover_and_cache_warm(stack: LiveStack) -> None:
    answer = json.loads(ok(stack, "recover", "--json"))
    assert answer["state"] == "connected" and answer["error"] is None
    assert "link connected; replayed 0 events" in ok(stack, "recover")

    for i in range(3):
        r = httpx.post(
            f"{stack.url}/api/v1/agents", json={"id": f"warm-{i}"}, headers=AUTH, timeout=5
        )
        assert r.status_code == 201
    stack.redis.client().flushall()  # the cache is empty: warm must refill it
    out = ok(stack, "cache", "warm")
    assert out.startswith("warmed 3 agents into the Redis cache")
    assert len(stack.redis.client().keys("godel:cache:agent:*")) == 3

    stack.redis.kill9()
    stack.wait_state("fallback")
    failed = godel(stack, "recover", "--timeout", "5")
    assert failed.exit_code == 1
    lines = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert lines and lines[0].startswith("error: Redis is not usable yet (fallback):")
    warm = godel(stack, "cache", "warm")
    assert warm.exit_code == 1 and "HTTP 503" in warm.stderr


def test_recover_replays_the_backlog(
    run_process: StartProcess, fresh_redis: RedisServer, tmp_path: Path
) -> None:
    # No workers (nothing drains the backlog) and a probe too slow to beat the operator:
    # the replay this test sees is the one `godel recover` runs.
    slow_probe = {"GODEL_WORKERS": "0", "GODEL_PROBE_BACKOFF_MIN_S": "60",
                  "GODEL_PROBE_BACKOFF_MAX_S": "60"}  # fmt: skip
    stack = start_stack(run_process, fresh_redis, tmp_path, env=slow_probe)
    fresh_redis.kill9()
    stack.wait_state("fallback")
    acks = [stack.post({"type": "agent.ping", "agent_id": "r", "id": f"bk-{i}"}) for i in range(40)]
    assert {a["mode"] for a in acks} == {"fallback"}
    assert stack.health()["undispatched"] == 40
    fresh_redis.restart()

    out = ok(stack, "recover")
    assert "link connected; replayed 40 events" in out
    assert "undispatched backlog 0" in out
    assert stack.health()["undispatched"] == 0
    assert fresh_redis.client().llen("godel:queue:pending") == 40


def test_events_tail(stack: LiveStack) -> None:
    ids = [stack.post({"type": "agent.ping", "agent_id": "t", "id": f"tail-{i}"})["id"]
           for i in range(3)]  # fmt: skip
    lines = ok(stack, "events", "tail", "--since-start", "--limit", "3").splitlines()
    assert [line.split()[3] for line in lines] == ids
    assert all("agent=t" in line and "#" in line for line in lines)

    # Following: the tail starts at the newest event, so keep publishing until it shows one.
    tail = subprocess.Popen(
        [str(GODEL_BIN), "events", "tail", "--limit", "1"],
        env=stack.cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sent: list[str] = []
        deadline = time.monotonic() + 30
        while tail.poll() is None and time.monotonic() < deadline:
            sent.append(stack.post({"type": "agent.ping", "agent_id": "live"})["id"])
            time.sleep(0.3)
        out, err = tail.communicate(timeout=10)
    finally:
        tail.kill()
        tail.wait()
    assert tail.returncode == 0, err
    assert len(out.splitlines()) == 1 and out.split()[3] in sent
    assert "link: connected" in err  # the stream's first message, on stderr


@pytest.mark.slow
def test_demo_loses_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(GODEL_BIN), "demo", "--duration", "9", "--cycle", "4", "--down", "1.5",
         "--rate", "25"],
        capture_output=True, text=True, timeout=110, cwd=tmp_path, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Redis killed every 4s for 1.5s; 9s in all" in out
    assert "killed redis-server (SIGKILL)" in out
    assert "Entering fallback mode" in out and "Exiting fallback mode" in out
    verdict = next(line for line in out.splitlines() if line.startswith("acknowledged"))
    assert ", lost 0, duplicates 0, unprocessed 0" in verdict
    assert int(verdict.split()[1].rstrip(",")) > 100
    assert not list(Path("/tmp").glob("godel-demo-*")), "the demo left its temp dir behind"


def test_events_tail_survives_an_api_restart(
    run_process: StartProcess, fresh_redis: RedisServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "serve"
    data_dir.mkdir()
    port = free_port()
    args = [str(GODEL_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {
        **SERVE_ENV,
        "GODEL_REDIS_URL": fresh_redis.url,
        "GODEL_DATA_DIR": str(data_dir),
        "GODEL_DATABASE_URL": f"sqlite:///{data_dir / 'godel.db'}",
        "PYTHONPATH": str(ROOT),
    }
    serve = run_process(args, env=env, name="godel-serve", cwd=data_dir)
    stack = LiveStack(f"http://127.0.0.1:{port}", fresh_redis, serve)
    serve.wait_http(f"{stack.url}/health/ready", timeout_s=60)
    stack.post({"type": "agent.ping", "agent_id": "t", "id": "before-restart"})
    tail = subprocess.Popen(
        [str(GODEL_BIN), "events", "tail", "--since-start", "--limit", "2"],
        env=stack.cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        assert tail.stdout.readline().split()[3] == "before-restart"
        serve.terminate()
        serve.start(args, env, cwd=data_dir)
        serve.wait_http(f"{stack.url}/health/ready", timeout_s=60)
        stack.post({"type": "agent.ping", "agent_id": "t", "id": "after-restart"})
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
        tail.wait()
    assert tail.returncode == 0, err
    assert [line.split()[3] for line in out.splitlines()] == ["after-restart"]
    assert len([line for line in err.splitlines() if line.startswith("reconnecting…")]) == 1


def cli_env(**settings: str) -> dict[str, str]:
    """A shell's environment with only these GODEL_* settings (nothing from the test run)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
    base.pop("PYTHONPATH", None)
    quiet = {"GODEL_EMBEDDED_REDIS": "false", "GODEL_REDIS_URL": "redis://127.0.0.1:1/0",
             "GODEL_LOG_LEVEL": "ERROR"}  # fmt: skip
    return base | quiet | settings


def test_serve_start_failure_is_one_line_without_the_password(tmp_path: Path) -> None:
    env = cli_env(
        GODEL_DATABASE_URL="postgresql+psycopg://godel:s3cret@127.0.0.1:1/godel",
        GODEL_HANDLERS="no_such_handlers_module",
    )
    done = subprocess.run(
        [str(GODEL_BIN), "serve", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "s3cret" not in output and "Traceback" not in output, output
    assert "godel: ledger postgresql+psycopg://godel:***@127.0.0.1:1/godel;" in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: godel serve could not start: ")


def test_db_upgrade_against_an_unreachable_database(tmp_path: Path) -> None:
    env = cli_env(GODEL_DATABASE_URL="postgresql+psycopg://godel:s3cret@127.0.0.1:1/godel")
    done = subprocess.run(
        [str(GODEL_BIN), "db", "upgrade"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "s3cret" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "error: cannot migrate the ledger at postgresql+psycopg://godel:***@127.0.0.1:1/godel: "
    )
    assert "Connection refused" in lines[0]


def test_worker_imports_handlers_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "myhandlers.py").write_text(
        "import godel\n\n\n@godel.handler('my.*')\nasync def handle(event):\n    pass\n"
    )
    env = cli_env(GODEL_HANDLERS="myhandlers", GODEL_DATABASE_URL=f"sqlite:///{tmp_path}/g.db")
    done = subprocess.run(
        [str(GODEL_BIN), "worker", "--burst"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_keys_made_listed_used_and_revoked(stack: LiveStack) -> None:
    """The console script against a real `godel serve`: the secret is printed once, works as
    GODEL_API_KEY for what its scope allows, and stops working when revoked."""
    made = binary(stack, "keys", "create", "cli-ingest", "--scope", "publish")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("gdl_") and "\n" not in secret and secret not in made.stderr
    listed = binary(stack, "keys", "list")
    assert "cli-ingest" in listed.stdout and "publish" in listed.stdout
    assert secret not in listed.stdout

    as_key = {**stack.cli_env(), "GODEL_API_KEY": secret}
    del as_key["GODEL_ADMIN_TOKEN"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(GODEL_BIN), *args]
        return subprocess.run(command, env=as_key, capture_output=True, text=True, check=False)

    published = run("events", "publish", "agent.ping", "--id", "key-1")
    assert published.returncode == 0 and published.stdout.startswith("accepted key-1")
    status = run("status")
    assert status.returncode == 1 and "HTTP 403" in status.stderr and "read scope" in status.stderr

    assert binary(stack, "keys", "revoke", "cli-ingest").returncode == 0
    refused = run("events", "publish", "agent.ping")
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    assert secret not in stack.process.log_text()
