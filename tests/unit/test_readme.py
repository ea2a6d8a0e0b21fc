"""The README stays true: two commands first, every setting in the configuration table."""

from __future__ import annotations

from pathlib import Path

from godel.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"GODEL_{name.upper()}"
        for name in Settings.model_fields
        if f"`GODEL_{name.upper()}`" not in README
    ]
    assert not missing, f"README configuration table lacks {missing}"


def test_readme_starts_with_the_two_commands() -> None:
    block = README.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [line.split()[1] for line in block] == ["scripts/run.sh", "scripts/test.sh"]
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
