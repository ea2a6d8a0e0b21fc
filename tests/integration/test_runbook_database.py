"""docs/runbooks/DATABASE_FAILOVER.md, run as an operator would against a live local stack:
a real `godel serve` whose URL lists a PostgreSQL primary (`db-1`) and its synchronous
streaming replica (`db-2`), and a real redis-server.

Every command of the runbook's ```bash blocks that needs no Kubernetes runs, in the
runbook's order, after the stack is put into the state its section is about: the primary
stopped and started again for "Scenario 1", the primary killed for "Scenario 4" (whose
commands promote the replica). Each must exit 0 and print its `# shows:` text
(tests/support/runbook.py's rules). Lines are made local, and nothing else:
- `kubectl exec ... -- godel|psql|pg_isready ...` runs its in-pod part; psql and
  pg_isready get `-h/-p` of `postgres-0` (the primary: db-1, then db-2 once promoted);
  every other kubectl line is checked by tests/deploy/test_runbook_kubectl.py instead;
- `-h db-1 -p 5432` and `-h db-2 -p 5432` become the two test servers;
- `https://api.godel.local` and the in-pod `http://127.0.0.1:8080` become the test API.
The shell has what a pod has: GODEL_DATABASE_URL (the multi-host URL), GODEL_URL and
GODEL_ADMIN_TOKEN.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from tests.harness import migrate
from tests.integration.live_stack import ROOT, STACK
from tests.servers import GODEL_BIN, GodelServer, PostgresServer, find_postgres_bin_dir
from tests.support.godel_server import StartProcess, start_serve
from tests.support.ledger import assert_exactly_once, drained
from tests.support.postgres_replica import PostgresReplica, multi_host_url
from tests.support.runbook import Step, run_runbook
from tests.support.settings import TOKEN
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres
RUNBOOK = ROOT / "docs" / "runbooks" / "DATABASE_FAILOVER.md"
DB = "godel"
IN_POD = ("godel", "psql", "pg_isready")
REQUIRED_HEADINGS = (
    "Symptoms",
    "Initial Assessment",
    "Several Hosts and Automatic Failover",
    "What a failover keeps",
    "Scenario 1: PostgreSQL Pod Crash or Restart",
    "Scenario 4: Primary Lost, Replica Promoted",
    "Recovery Procedures",
    "Post-Incident",
)


class Stack:
    """The API, the two servers, and which of them is `postgres-0` (the primary) now."""

    def __init__(self, api: GodelServer, primary: PostgresServer, replica: PostgresReplica):
        self.api = api
        self.servers = {"db-1": primary, "db-2": replica}
        self.primary = primary
        self.acked: set[str] = set()

    def local_command(self, step: Step) -> str | None:
        command = step.command
        if "kubectl" in command:
            in_pod = re.match(rf"kubectl exec .*? -- ((?:{'|'.join(IN_POD)}) .*)$", command)
            if in_pod is None:
                return None
            command = in_pod.group(1)
            if command.split()[0] in ("psql", "pg_isready"):
                name, rest = command.split(" ", 1)
                command = f"{name} -h {self.primary.host} -p {self.primary.port} {rest}"
        for name, server in self.servers.items():
            command = command.replace(f"-h {name} -p 5432", f"-h {server.host} -p {server.port}")
        for public in ("https://api.godel.local", "http://127.0.0.1:8080"):
            command = command.replace(public, self.api.url)
        return command

    def post(self, n: int) -> int:
        """POST n events in one batch; the status (202 adds them to `acked`)."""
        body = {"events": [{"type": "agent.ping", "agent_id": f"rb-{i % 3}"} for i in range(n)]}
        r = httpx.post(f"{self.api.url}/api/v1/events", json=body, headers=self.api.auth)
        if r.status_code == 202:
            self.acked.update(r.json()["ids"])
        return r.status_code

    def enter(self, section: str) -> None:
        if section == "Scenario 1: PostgreSQL Pod Crash or Restart":
            self.primary.halt()
            assert self.post(5) == 503
            self.primary.restart()  # what `kubectl rollout restart` does
        elif section == "Scenario 4: Primary Lost, Replica Promoted":
            self.primary.crash()
            assert self.post(5) == 503
            self.primary = self.servers["db-2"]  # once the steps have promoted it


def shell_env(stack: Stack, database_url: str) -> dict[str, str]:
    bin_dirs = [str(GODEL_BIN.parent), str(find_postgres_bin_dir()), os.environ.get("PATH", "")]
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GODEL_", "PG"))},
        "PATH": os.pathsep.join(bin_dirs),
        "GODEL_URL": stack.api.url,
        "GODEL_ADMIN_TOKEN": TOKEN,
        "GODEL_DATABASE_URL": database_url,
    }


def test_runbook_structure() -> None:
    text = RUNBOOK.read_text()
    headings = {h.strip() for h in re.findall(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)}
    assert set(REQUIRED_HEADINGS) <= headings, set(REQUIRED_HEADINGS) - headings
    assert "[`GodelLedgerUnavailable`](../../monitoring/alerts.yml)" in text
    assert "host=db-1:5432&host=db-2:5432&target_session_attrs=read-write" in text


def test_every_local_command_of_the_database_runbook(
    pg_pair: tuple[PostgresServer, PostgresReplica],
    redis_url: str,
    run_process: StartProcess,
    tmp_path: Path,
) -> None:
    primary, replica = pg_pair
    url = multi_host_url(DB, primary, replica)
    migrate(url)
    settings = {**STACK, "database_url": url, "redis_url": redis_url, "workers": 1}
    stack = Stack(start_serve(run_process, tmp_path / "api", settings), primary, replica)
    assert stack.post(20) == 202
    env = shell_env(stack, url)

    ran, entered = run_runbook(RUNBOOK, stack.local_command, stack.enter, env)
    assert {"Scenario 1: PostgreSQL Pod Crash or Restart",
            "Scenario 4: Primary Lost, Replica Promoted"} <= set(entered)  # fmt: skip
    assert len(ran) >= 15, ran
    assert not replica.in_recovery()  # the runbook's own step promoted it
    assert stack.post(10) == 202
    ledger_url = replica.database_url(DB)
    wait_until(lambda: drained(ledger_url, len(stack.acked)), 30, "the events processed")
    assert_exactly_once(ledger_url, stack.acked)
