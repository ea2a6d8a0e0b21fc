"""Runbooks run as an operator would: the command lines of a runbook's ```bash blocks, each
with the text its `# shows:` comment promises, run in order against a live local stack.

A command must exit 0 (with `pipefail`) and its output must contain its `# shows:` text (a
bare number: exactly that output); a command without one must print something. A
condition that depends on background work (a queue draining) is retried for up to
`RETRY_S`: the operator, too, would look again.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.godel_server import REPO_ROOT

RETRY_S = 15.0


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


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A question on stdin (`godel dead purge`) is answered `y`.
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env=env,
        cwd=REPO_ROOT,
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


def run_runbook(
    path: Path,
    local_command: Callable[[Step], str | None],
    enter: Callable[[str], None],
    env: dict[str, str],
) -> tuple[list[str], list[str]]:
    """Run every step of the runbook that `local_command` makes local (None: it needs
    Kubernetes), in order, calling `enter(section)` before a section's first command, and
    assert that each does what the runbook says. Returns the commands run and the
    sections entered."""
    failures: list[str] = []
    ran: list[str] = []
    entered: list[str] = []
    for step in runbook_steps(path):
        command = local_command(step)
        if command is None:
            continue
        if not entered or entered[-1] != step.section:
            entered.append(step.section)
            enter(step.section)
        program = command.split()[0]
        if shutil.which(program, path=env["PATH"]) is None and program != "export":
            failures.append(f"line {step.line}: {program} is not installed")
            continue
        problem = check_step(step, command, env)
        ran.append(command)
        if problem is not None:
            failures.append(problem)
    assert not failures, "\n\n".join(failures)
    return ran, entered
