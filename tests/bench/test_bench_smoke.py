"""Smoke test of the benchmark harness: `python -m bench --smoke` (every row once, at the
smallest sizes) runs and reports every row.

No timed assertions: figures depend on the machine. What must hold anywhere is that each
row is printed, the JSON is written, and no benchmark failed outright (an `error` row means
the harness broke, or Godel lost or refused events it should have taken).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The first words of each row's name, as printed in the table and stored in the JSON.
ROWS = (
    "1 ingest",
    "1b ingest",
    "2 ingest",
    "3a HTTP ingest",
    "3b HTTP ingest",
    "4 processing",
    "5a fallback ingest",
    "5b first answer",
    "6 replay",
    "7a RSS growth",
    "7b in-memory cache",
    "8a scaling",
    "8b scaling",
    "8c Redis memory",
    "3c HTTP ingest",
    "9a default godel serve",
    "9b default godel serve",
    "9c default godel serve",
    "10a storm",
    "10b storm",
    "10c storm",
    "P1 ingest",
    "P1b ingest",
    "P2 ingest",
    "P3a HTTP ingest",
    "P3b default godel serve",
    "P3c default godel serve",
    "P3d default godel serve",
    "P4 processing",
    "P6 replay",
    "11 link",
    "12a GET /health",
    "12b GET /health",
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    extra_json = tmp_path / "bench.json"
    results_dir = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--json",
            str(extra_json),
            "--results-dir",
            str(results_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=290,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ROWS:
        assert row in proc.stdout, f"row {row!r} missing from the table:\n{proc.stdout[-3000:]}"

    doc = json.loads(extra_json.read_text())
    assert (results_dir / "latest.json").read_text() == extra_json.read_text()
    assert len(list(results_dir.glob("2*.json"))) == 1  # the <UTC timestamp>.json copy
    names = [r["name"] for r in doc["results"]]
    for row in ROWS:
        assert any(name.startswith(row) for name in names), f"{row!r} not in JSON: {names}"
    for key in ("cpu_model", "cores", "python", "redis"):
        assert doc["machine"][key], key
    assert doc["mode"] == "smoke" and doc["date"]
    for row in doc["results"]:  # what ran, on what, driven by what
        assert {"topology", "ledger", "client", "link_fallbacks"} <= set(row), row["name"]
    link = next(r for r in doc["results"] if r["name"].startswith("11 link"))
    assert link["status"] == "pass", link["details"]  # no spurious fallback in any row
    broken = {r["name"]: r["note"] for r in doc["results"] if r["status"] == "error"}
    assert not broken, broken
