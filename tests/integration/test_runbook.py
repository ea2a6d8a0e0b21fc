"""docs/runbooks/REDIS_OUTAGE.md, run as an operator would against a live local stack.

Every command line in the runbook's ```bash blocks that does not need Kubernetes runs
against a real `godel serve` subprocess, a real redis-server and a SQLite ledger, in the
runbook's order. The stack is put into the state each section is about before its first
command: Redis out of memory for "Scenario 2", Redis killed for "Scenario 4", Redis
back for "Recovery Procedures", Redis restarted empty (a deleted PVC) for the
"Rollback Plan". Each command must exit 0 (with `pipefail`) and its output must contain
the text of the `# shows:` comment under it (a bare number: exactly that output); a
command without one must print something.

How lines are made local (and nothing else is changed):
- `https://api.godel.local` becomes the test API's URL;
- `redis-cli` gets `-p <port>` of the test redis-server;
- `kubectl exec redis-0 ... -- redis-cli ...` runs its in-pod part, the `redis-cli ...`
  with any pipe after it, locally; every other kubectl line is checked against k8s/ by
  tests/deploy/test_runbook_kubectl.py instead;
- `godel ...` gets `--url <test API>` (GODEL_URL and GODEL_ADMIN_TOKEN are exported too,
  as the runbook's first block does);
- `watch ... 'CMD'` runs CMD once (watch never exits);
- `godel events tail` gets `--since-start --limit 1` (it follows the stream forever);
- `$TYPE` and `$ID` are set to a real dead letter's type and id, as the runbook tells
  the reader to; `godel dead purge` is answered `y` on stdin.

A `# shows:` condition that depends on background work (a queue draining) is retried
for up to 15 s: the operator, too, would look again.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import httpx

from tests.integration.live_stack import (
    AUTH,
    FAILING_TYPE,
    ROOT,
    LiveStack,
    StartProcess,
    start_stack,
)
from tests.servers import RedisServer
from tests.support.runbook import Step, run_runbook, runbook_steps

RUNBOOK = ROOT / "docs" / "runbooks" / "REDIS_OUTAGE.md"
PUBLIC_URL = "https://api.godel.local"
DEAD_ID = "runbook-dead-1"
REQUIRED_HEADINGS = (
    "Overview",
    "Symptoms",
    "Initial Assessment",
    "Scenario 1: Redis Pod Crash",
    "Scenario 2: Memory Exhaustion (OOM)",
    "Scenario 3: Persistence Failure",
    "Scenario 4: Extended Outage (Fallback Mode)",
    "Undispatched Backlog",
    "Recovery Procedures",
    "Replay and Recovery",
    "Pending Queue Growing",
    "Dead Letters",
    "Preventive Measures",
    "Rollback Plan",
    "Post-Incident",
)
# Symptoms the runbook must name, verbatim (contracts).
CONTRACT_TEXT = ("Redis Connection Error", "DashRedisConnectionFailed", "Entering fallback mode")


def local_command(step: Step, api_url: str, redis_port: int) -> str | None:
    """The command as run against the local stack, or None when it needs Kubernetes."""
    command = step.command
    if "kubectl" in command:
        in_pod = re.match(r"kubectl exec .*? -- (redis-cli .*)$", command)
        if in_pod is None:
            return None
        command = in_pod.group(1)
    if command.startswith("watch "):
        command = shlex.split(command)[-1]
    command = command.replace(PUBLIC_URL, api_url)
    command = re.sub(r"\bredis-cli\b", f"redis-cli -p {redis_port}", command)
    if command.startswith("godel events tail"):
        command += " --since-start --limit 1"
    if command.startswith("godel ") and "|" not in command:
        command += f" --url {api_url}"
    return command


class Stages:
    """Puts the stack into the state a section describes, before its first command."""

    def __init__(self, stack: LiveStack, redis: RedisServer) -> None:
        self.stack = stack
        self.redis = redis

    def enter(self, section: str) -> None:
        stage = {
            "Scenario 2: Memory Exhaustion (OOM)": self.out_of_memory,
            "Scenario 4: Extended Outage (Fallback Mode)": self.redis_down,
            "Recovery Procedures": self.redis_back,
            "Queues and Dead Letters": self.fresh_dead_letter,
            "Rollback Plan": self.redis_replaced_empty,
        }.get(section)
        if stage is not None:
            stage()

    def post_some(self, n: int) -> None:
        for i in range(n):
            self.stack.post({"type": "agent.ping", "agent_id": f"rb-{i % 3}"})

    def out_of_memory(self) -> None:
        # maxmemory below what Redis already uses: noeviction refuses every write (OOM).
        self.redis.config_set("maxmemory", 1)
        self.post_some(3)
        self.stack.wait_state("fallback", "oom")

    def redis_down(self) -> None:
        self.redis.kill9()
        self.post_some(20)
        self.stack.wait_state("fallback", "connection")

    def redis_back(self) -> None:
        self.redis.restart()

    def fresh_dead_letter(self) -> None:
        # Redis came back empty in "Recovery Procedures" (the test server has no AOF). The
        # re-sync after recovery restores only dead letters older than its settle grace
        # (30 s), and this test's first one is younger: a new dead letter gives the
        # section's `redis-cli --scan` a list to find. The ledger keeps the old one.
        self.stack.post({"type": FAILING_TYPE, "payload": {"n": 2}})
        self.stack.wait(lambda h: h["events"].get("dead", 0) >= 2, "a second dead letter")

    def redis_replaced_empty(self) -> None:
        self.redis.kill9()
        self.redis.restart(keep_data=False)
        self.stack.wait_state("connected")


def test_runbook_structure() -> None:
    text = RUNBOOK.read_text()
    headings = {h.strip() for h in re.findall(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)}
    assert set(REQUIRED_HEADINGS) <= headings, set(REQUIRED_HEADINGS) - headings
    for contract in CONTRACT_TEXT:
        assert contract in text
    steps = runbook_steps(RUNBOOK)
    assert all(s.command.strip() for s in steps)
    assert sum(1 for s in steps if "kubectl" in s.command) >= 20
    assert sum(1 for s in steps if local_command(s, "http://x", 1) is not None) >= 35


def test_every_local_command_of_the_runbook(
    run_process: StartProcess, fresh_redis: RedisServer, tmp_path: Path
) -> None:
    stack = start_stack(run_process, fresh_redis, tmp_path)
    for i in range(5):
        stack.post({"type": "agent.status", "agent_id": f"rb-{i}", "payload": {"status": "busy"}})
    r = httpx.post(
        f"{stack.url}/api/v1/agents", json={"id": "rb-registered"}, headers=AUTH, timeout=5
    )
    assert r.status_code == 201
    stack.make_dead_letter(DEAD_ID)
    env = {**stack.cli_env(), "TYPE": FAILING_TYPE, "ID": DEAD_ID}

    ran, entered = run_runbook(
        RUNBOOK,
        lambda step: local_command(step, stack.url, fresh_redis.port),
        Stages(stack, fresh_redis).enter,
        env,
    )
    staged = {"Scenario 2: Memory Exhaustion (OOM)", "Scenario 4: Extended Outage (Fallback Mode)",
              "Recovery Procedures", "Queues and Dead Letters", "Rollback Plan"}  # fmt: skip
    assert staged <= set(entered), "a staged section lost all its local commands"
    assert len(ran) >= 35
    # The recovery really replayed or reconciled what the outage left behind.
    health = stack.health()
    assert health["state"] == "connected" and health["undispatched"] == 0
    assert set(health["events"]) <= {"processed", "purged"}, health["events"]
