"""The Dockerfile: what the runbook and the manifests expect of the image. No Docker
engine here, so the file is parsed, not built; the HEALTHCHECK command is run."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_objects import ROOT

DOCKERFILE = ROOT / "Dockerfile"
SERVE = ["godel", "serve", "--host", "0.0.0.0", "--port", "8080"]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _one(stage: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in stage if w == word]
    assert len(found) == 1, f"expected one {word} in the final stage, found {found}"
    return found[0]


def test_every_stage_uses_python_3_11_slim() -> None:
    bases = [args.split()[0] for word, args in _instructions() if word == "FROM"]
    assert bases and all(b == "python:3.11-slim" for b in bases), bases


def test_installs_the_package_from_the_repository() -> None:
    runs = " ".join(args for word, args in _instructions() if word == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs)


def test_copied_sources_exist_and_are_not_dockerignored() -> None:
    ignored = {
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    for word, args in _instructions():
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            assert src.rstrip("/") not in ignored, f"COPY {src}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", ".godel", "bench/.venvs", ".pytest_cache", "**/__pycache__"):
        assert entry in ignored, entry


def test_runs_as_a_non_root_user() -> None:
    user = _one(_final_stage(), "USER").split(":")[0]
    assert user not in {"root", "0"}
    # The uid the manifests and the chart set as runAsUser.
    assert user == "10001"


def test_netcat_is_installed_for_the_runbook() -> None:
    runs = " ".join(args for word, args in _final_stage() if word == "RUN")
    assert re.search(r"apt-get install [^&;]*\bnetcat-openbsd\b", runs)


def test_entrypoint_is_godel_serve_on_8080() -> None:
    stage = _final_stage()
    entrypoint = json.loads(_one(stage, "ENTRYPOINT"))
    cmd = json.loads(_one(stage, "CMD"))
    # Exec form, so godel is PID 1 and gets SIGTERM itself.
    assert entrypoint + cmd == SERVE
    assert _one(stage, "EXPOSE") == "8080"


def test_godel_console_script_is_declared() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    target = pyproject["project"]["scripts"]["godel"]
    module, _, func = target.partition(":")
    assert module == "godel.cli" and func
    # A module (src/godel/cli.py) or a package (src/godel/cli/__init__.py) defining or
    # importing the entry point.
    base = ROOT / "src" / Path(*module.split("."))
    sources = [p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists()]
    assert sources, f"no source for {module}"
    assert re.search(rf"\b(def|import) {func}\b|import .*\b{func}\b", sources[0].read_text())


def _healthcheck_command() -> list[str]:
    args = _one(_final_stage(), "HEALTHCHECK")
    command: list[str] = json.loads(args.split("CMD", 1)[1])
    return command


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health/live" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_probes_health_live(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    command = _healthcheck_command()
    assert command[:2] == ["python", "-c"]
    code = command[2]
    assert "urllib" in code and "http://127.0.0.1:8080/health/live" in code
    local = [sys.executable, "-c", code.replace("127.0.0.1:8080", f"127.0.0.1:{port}")]
    assert subprocess.run(local, capture_output=True, timeout=30).returncode == 0
    handler.status = 503
    assert subprocess.run(local, capture_output=True, timeout=30).returncode != 0
