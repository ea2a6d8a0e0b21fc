"""scripts/gen-prometheusrule.py: the runbook base URL placeholder and where it is filled in."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen-prometheusrule.py"
BASE = "https://wiki.example.com/ops/godel-runbooks"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_prometheusrule", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = load_script()


def source_groups() -> list[Any]:
    groups: list[Any] = yaml.safe_load(gen.ALERTS.read_text())["groups"]
    return groups


def runbook_urls(groups: list[Any]) -> list[str]:
    return [rule["annotations"]["runbook_url"] for group in groups for rule in group["rules"]]


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != gen.ENV_VAR} | (env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_every_source_runbook_link_uses_the_placeholder() -> None:
    urls = runbook_urls(source_groups())
    assert urls and all(url.startswith(gen.PLACEHOLDER + "/") for url in urls)
    assert "github.com" not in gen.ALERTS.read_text()


def test_with_runbook_base_fills_every_link_and_leaves_the_source_alone() -> None:
    groups = source_groups()
    filled = gen.with_runbook_base(groups, BASE)
    assert all(url.startswith(BASE + "/") for url in runbook_urls(filled))
    assert [url.replace(BASE, gen.PLACEHOLDER) for url in runbook_urls(filled)] == runbook_urls(
        groups
    )
    assert gen.PLACEHOLDER not in gen.dump(filled)
    assert all(url.startswith(gen.PLACEHOLDER) for url in runbook_urls(groups))
    # Only annotations change: expressions, labels and durations are the source's.
    strip = [
        [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]] for g in groups
    ]
    assert strip == [
        [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]] for g in filled
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [(BASE, BASE), (BASE + "/", BASE), (" http://intranet/runbooks ", "http://intranet/runbooks")],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    assert gen.runbook_base_url(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "wiki.example.com/runbooks", "https://x/a b", 'https://x/"', "https://x/{{ y }}"]
)
def test_base_url_that_would_break_yaml_or_templates_is_refused(bad: str) -> None:
    with pytest.raises(SystemExit):
        gen.runbook_base_url(bad)


def test_k8s_rule_gets_the_base_and_the_helm_copy_keeps_the_placeholder() -> None:
    wanted = gen.outputs(BASE)
    assert wanted[gen.HELM_ALERTS] == gen.ALERTS.read_text()
    k8s = wanted[gen.K8S_MONITORING]
    assert gen.PLACEHOLDER not in k8s.partition(gen.MARKER)[2]
    rule = [doc for doc in yaml.safe_load_all(k8s) if doc and doc["kind"] == "PrometheusRule"]
    assert rule[0]["spec"]["groups"] == gen.with_runbook_base(source_groups(), BASE)


def test_default_base_is_the_dashboards_default() -> None:
    dashboard = (ROOT / "monitoring" / "grafana" / "godel-dashboard.json").read_text()
    assert f'"query": "{gen.DEFAULT_RUNBOOK_BASE_URL}"' in dashboard


def test_print_rules_takes_the_flag_over_the_environment(tmp_path: Path) -> None:
    from_env = run_script("--print-rules", env={gen.ENV_VAR: BASE + "/"})
    assert from_env.returncode == 0, from_env.stderr
    groups = yaml.safe_load(from_env.stdout)["groups"]
    assert groups == gen.with_runbook_base(source_groups(), BASE)

    flag = run_script(
        "--print-rules", "--runbook-base-url", "https://other.example/rb", env={gen.ENV_VAR: BASE}
    )
    assert flag.returncode == 0, flag.stderr
    assert all(
        u.startswith("https://other.example/rb/")
        for u in runbook_urls(yaml.safe_load(flag.stdout)["groups"])
    )

    default = run_script("--print-rules")
    assert all(
        u.startswith(gen.DEFAULT_RUNBOOK_BASE_URL + "/")
        for u in runbook_urls(yaml.safe_load(default.stdout)["groups"])
    )

    promtool = shutil.which("promtool")
    if promtool is not None:  # the printed file is a loadable rule file
        rules = tmp_path / "alerts.yml"
        rules.write_text(from_env.stdout)
        check = subprocess.run(
            [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_a_bad_base_url_fails_the_command() -> None:
    result = run_script("--print-rules", "--runbook-base-url", "not a url")
    assert result.returncode != 0
    assert "runbook base URL" in result.stderr
    assert result.stdout == ""
