from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from godel.config import load_settings
from godel.errors import ConfigError

GODEL = str(Path(sys.executable).parent / "godel")


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GODEL_REDIS_URL", raising=False)
    s = load_settings()
    assert s.redis_url is None and s.effective_redis_url == "redis://localhost:6379/0"
    assert s.effective_database_url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("GODEL_REDIS_URL", "http://nope"),
        ("GODEL_DATABASE_URL", "mysql://x"),
        ("GODEL_REDIS_SOCKET_TIMEOUT_S", "-1"),
        ("GODEL_WORKERS", "many"),
        ("GODEL_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert var in str(err.value)


def test_cli_fails_at_start_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "GODEL_REDIS_URL": "http://nope"}
    proc = subprocess.run(
        [GODEL, "serve"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "GODEL_REDIS_URL" in lines[0]
