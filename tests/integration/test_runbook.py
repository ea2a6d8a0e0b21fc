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
- `http://api.godel.local` becomes the test API's URL;
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
import shutil
import subprocess
import time
from dataclasses import dataclass
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

RUNBOOK = ROOT / "docs" / "runbooks" / "REDIS_OUTAGE.md"
PUBLIC_URL = "http://api.godel.local"
RETRY_S = 15.0
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


@dataclass
class Step:
    section: str  # the enclosing level-2 heading
    line: int
    command: str
    shows: str | None = None


def runbook_steps(path: Path) -> list[Step]:
    """Command lines of the ```bash blocks (continuations joined), with their `# shows:`."""
    steps: list[Step] = []
    section, in_bash, pending = "", False, ""
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if line.startswith("```"):
            in_bash = not in_bash and line == "```bash"
            continue
        if not in_bash:
            if raw.startswith("## "):
                section = raw[3:].strip()
            continue
        if line.startswith("# shows:"):
            steps[-1].shows = line.removeprefix("# shows:").strip()
        elif line and not line.startswith("#"):
            pending += line
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            steps.append(Step(section, number, pending))
            pending = ""
    return steps


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


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env=env,
        cwd=ROOT,
        input="y\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shows(expected: str | None, output: str) -> bool:
    """`# shows: TEXT` holds when the output contains TEXT; a bare number (a count such
    as `llen`) must be the whole output, or "0" would match "10"."""
    if expected is None:
        return bool(output.strip())
    if expected.isdigit():
        return output.strip() == expected
    return expected in output


def check_step(step: Step, command: str, env: dict[str, str]) -> str | None:
    """None when the command does what the runbook says; else why not."""
    deadline = time.monotonic() + RETRY_S
    while True:
        done = run(command, env)
        output = done.stdout
        if done.returncode == 0 and (command.startswith("export ") or shows(step.shows, output)):
            return None
        if time.monotonic() > deadline:
            return (
                f"line {step.line} [{step.section}] {step.command!r} ran as {command!r}: "
                f"exit {done.returncode}, expected {step.shows!r}\n"
                f"stdout: {output[-1500:]}\nstderr: {done.stderr[-1500:]}"
            )
        time.sleep(0.5)


class Stages:
    """Puts the stack into the state a section describes, before its first command."""

    def __init__(self, stack: LiveStack, redis: RedisServer) -> None:
        self.stack = stack
        self.redis = redis
        self.entered: list[str] = []

    def enter(self, section: str) -> None:
        self.entered.append(section)
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

    stages = Stages(stack, fresh_redis)
    failures: list[str] = []
    ran: list[str] = []
    for step in runbook_steps(RUNBOOK):
        command = local_command(step, stack.url, fresh_redis.port)
        if command is None:
            continue
        if not stages.entered or stages.entered[-1] != step.section:
            stages.enter(step.section)
        program = command.split()[0]
        if shutil.which(program, path=env["PATH"]) is None and program != "export":
            failures.append(f"line {step.line}: {command.split()[0]} is not installed")
            continue
        problem = check_step(step, command, env)
        ran.append(command)
        if problem is not None:
            failures.append(problem)

    assert not failures, "\n\n".join(failures)
    staged = {"Scenario 2: Memory Exhaustion (OOM)", "Scenario 4: Extended Outage (Fallback Mode)",
              "Recovery Procedures", "Queues and Dead Letters", "Rollback Plan"}  # fmt: skip
    assert staged <= set(stages.entered), "a staged section lost all its local commands"
    assert len(ran) >= 35
    # The recovery really replayed or reconciled what the outage left behind.
    health = stack.health()
    assert health["state"] == "connected" and health["undispatched"] == 0
    assert set(health["events"]) <= {"processed", "purged"}, health["events"]
