"""Checks for monitoring/: the Prometheus alert rules, their promtool tests, the dashboard.

The metric names here are the contract from the project brief; an expression that names
anything else would silently match nothing in production, so it fails here instead.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.contracts import ALERT_NAMES

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERTS_TEST = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "godel-dashboard.json"
RUNBOOKS = ROOT / "docs" / "runbooks"
README = MONITORING / "README.md"
METRICS_MODULE = ROOT / "src" / "godel" / "metrics.py"
# Filled in by scripts/gen-prometheusrule.py and by the Helm chart (test_generator.py).
RUNBOOK_PLACEHOLDER = "${RUNBOOK_BASE_URL}/"
RUNBOOK_URL = re.compile(r"\$\{RUNBOOK_BASE_URL\}/([A-Z_]+\.md)#([a-z0-9-]+)")

KNOWN_METRICS = frozenset(
    {
        "godel_redis_up",
        "godel_redis_fallback_active",
        "godel_link_state",
        "godel_redis_fallback_transitions_total",
        "godel_redis_errors_total",
        "godel_fallback_queued_events",
        "godel_replayed_events_total",
        "godel_reconciled_events_total",
        "godel_replay_in_progress",
        "godel_memory_cache_entries",
        "godel_memory_cache_bytes",
        "godel_memory_cache_max_bytes",
        "godel_memory_cache_hits_total",
        "godel_memory_cache_misses_total",
        "godel_memory_cache_evictions_total",
        "godel_queue_depth",
        "godel_dead_letter_events",
        "godel_events_accepted_total",
        "godel_events_processed_total",
        "godel_event_processing_seconds",
        "godel_redis_used_memory_bytes",
        "godel_redis_maxmemory_bytes",
        "godel_redis_eviction_policy_safe",
        "godel_redis_aof_enabled",
        "godel_redis_last_bgsave_ok",
        "godel_http_request_duration_seconds",
    }
)
HISTOGRAMS = frozenset({"godel_event_processing_seconds", "godel_http_request_duration_seconds"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

REQUIRED_ALERTS = ALERT_NAMES
# What the dashboard must show; each name must appear in at least one panel query.
DASHBOARD_MUST_SHOW = frozenset(
    {
        "godel_link_state",
        "godel_redis_fallback_active",
        "godel_fallback_queued_events",
        "godel_replayed_events_total",
        "godel_reconciled_events_total",
        "godel_queue_depth",
        "godel_events_processed_total",
        "godel_event_processing_seconds_bucket",
        "godel_redis_used_memory_bytes",
        "godel_redis_maxmemory_bytes",
        "godel_memory_cache_entries",
        "godel_memory_cache_bytes",
        "godel_memory_cache_hits_total",
        "godel_memory_cache_misses_total",
        "godel_events_accepted_total",
        "godel_http_request_duration_seconds_bucket",
    }
)

METRIC_RE = re.compile(r"godel_[a-z_]+")
# The one non-Godel series the rules may use: Prometheus's own scrape health.
UP_RE = re.compile(r"\bup\{")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not on PATH (Debian: apt-get install prometheus)",
)


def metric_names(expr: str) -> set[str]:
    return set(METRIC_RE.findall(expr))


def is_known(name: str) -> bool:
    if name in KNOWN_METRICS:
        return True
    return any(
        name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS
        for suffix in HISTOGRAM_SUFFIXES
    )


def load_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def load_alerts() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "alert" in rule]


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every query the dashboard sends to Prometheus."""
    queries = [
        (f"panel {panel['id']} {target['refId']}", target["expr"])
        for panel in iter_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    queries += [
        (f"annotation {annotation['name']}", annotation["expr"])
        for annotation in dashboard["annotations"]["list"]
        if "expr" in annotation
    ]
    queries += [
        (f"variable {variable['name']}", variable["definition"])
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return queries


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


def github_anchor(heading: str) -> str:
    # GitHub's slug: lower case, drop punctuation except - and _, spaces to hyphens.
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors(runbook: str) -> set[str]:
    path = RUNBOOKS / runbook
    if not path.exists():
        return set()
    headings = re.findall(r"^#+\s+(.+)$", path.read_text(), flags=re.MULTILINE)
    return {github_anchor(heading) for heading in headings}


def runbook_target(url: str) -> tuple[str, str]:
    """(runbook file, anchor) of a runbook link written with the placeholder."""
    match = RUNBOOK_URL.fullmatch(url)
    assert match, f"{url!r} is not {RUNBOOK_PLACEHOLDER}<RUNBOOK>.md#<anchor>"
    return match.group(1), match.group(2)


def alert_identity(labels: dict[str, str]) -> str:
    """What one alert is about: a target (instance), a deployment (namespace), or all."""
    return labels.get("instance") or labels.get("namespace") or "*"


# ------------------------------------------------------------------ promtool


@needs_promtool
def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses rule expressions, so wrap each query in a recording rule;
    # Grafana's variables are replaced by what Grafana would substitute.
    substitutions = {"$__rate_interval": "5m", "$instance": ".*"}
    rules = []
    for index, (_, expr) in enumerate(dashboard_queries(load_dashboard())):
        if expr.startswith("label_values("):
            continue
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


# -------------------------------------------------------------------- alerts


def test_required_alerts_exist_once() -> None:
    names = [rule["alert"] for rule in load_alerts()]
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)
    assert len(names) == len(set(names)), "duplicate alert names"


@pytest.mark.parametrize("alert", load_alerts(), ids=lambda rule: rule["alert"])
def test_alert_is_documented(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning"}
    annotations = alert["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    runbook, anchor = runbook_target(annotations["runbook_url"])
    assert (RUNBOOKS / runbook).exists(), runbook
    assert anchor in runbook_anchors(runbook), f"no heading for #{anchor} in {runbook}"
    assert "for" in alert, "every alert states how long its condition must hold"


@pytest.mark.parametrize(
    "rule", load_rules(), ids=lambda rule: rule.get("alert", rule.get("record"))
)
def test_rule_uses_only_known_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])
    assert names or UP_RE.search(rule["expr"]), "expression references no Godel series"
    assert {name for name in names if not is_known(name)} == set()


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    # For each alert: some promtool case expects it to fire, and some input series (a
    # healthy instance, or deployment for the alerts aggregated by namespace) is never
    # expected to fire it.
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    for name in REQUIRED_ALERTS:
        fed: set[str] = set()
        fired: set[str] = set()
        for case in tests:
            checks = [c for c in case["alert_rule_test"] if c["alertname"] == name]
            if not checks:
                continue
            fed |= {
                alert_identity(dict(re.findall(r'(\w+)="([^"]*)"', series["series"])))
                for series in case["input_series"]
            }
            for check in checks:
                for expected in check["exp_alerts"]:
                    assert set(expected["exp_annotations"]) >= {"summary", "description"}
                    fired.add(alert_identity(expected["exp_labels"]))
        assert fired, f"{name}: no unit test expects it to fire"
        assert fed - fired, f"{name}: no healthy series that must not fire"


def test_unit_tests_expect_the_runbook_links_of_the_rules() -> None:
    # promtool compares annotations exactly; this keeps the link of every expected alert
    # in step with the rule, placeholder included.
    urls = {rule["alert"]: rule["annotations"]["runbook_url"] for rule in load_alerts()}
    for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            for expected in check["exp_alerts"]:
                url = expected["exp_annotations"]["runbook_url"]
                assert url == urls[check["alertname"]], (case["name"], check["eval_time"])


def test_alerts_about_shared_state_fire_once_per_deployment() -> None:
    # These read state that every pod reports alike (Redis, the database): their
    # expressions aggregate by namespace, so no alert carries a pod or instance.
    per_deployment = {"GodelDeadLetters", "GodelWorkersMissing", "GodelLedgerUnavailable"}
    rules = [rule for rule in load_alerts() if rule["alert"] in per_deployment]
    assert len(rules) == len(per_deployment)
    for rule in rules:
        lines = [line.strip() for line in rule["expr"].strip().splitlines()]
        operands = [line for line in lines if line not in {"or", "unless on (namespace)"}]
        assert all(
            line.startswith(("sum by (namespace)", "max by (namespace)")) for line in operands
        )


def test_readme_documents_every_alert_and_its_runbook() -> None:
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"\| `(\w+)` \|.*\| `([A-Z_]+\.md#[a-z0-9-]+)` \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    expected = {
        rule["alert"]: "#".join(runbook_target(rule["annotations"]["runbook_url"]))
        for rule in load_alerts()
    }
    assert rows == expected


def defined_metrics(source: str) -> set[str]:
    """Exposed names of the metrics defined as Counter/Gauge/Histogram("name", ...) calls.

    Read from the source, not imported: the package may be mid-change, and importing it
    under another name would register every metric twice in prometheus_client."""
    kinds = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram"}
    exposed: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in kinds
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            exposed |= exposed_names(node.args[0].value, kinds[node.func.id])
    return exposed


def test_metric_definition_reader() -> None:
    source = 'A = Counter("godel_x", "d", ["l"])\nB = Histogram("godel_h", "d")\nC = f("godel_n")\n'
    assert defined_metrics(source) == {
        "godel_x_total",
        "godel_h",
        "godel_h_bucket",
        "godel_h_sum",
        "godel_h_count",
    }


def test_metrics_module_defines_every_referenced_metric() -> None:
    # Cross-check against the definitions in src/godel/metrics.py.
    if not METRICS_MODULE.exists():
        pytest.skip("src/godel/metrics.py not written yet")
    exposed = defined_metrics(METRICS_MODULE.read_text())
    if not exposed:
        pytest.skip("godel.metrics defines no module-level metrics to compare against")
    referenced = {name for rule in load_rules() for name in metric_names(rule["expr"])}
    referenced |= {
        name for _, expr in dashboard_queries(load_dashboard()) for name in metric_names(expr)
    }
    assert referenced - exposed == set()


def exposed_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {name if name.endswith("_total") else f"{name}_total"}
    if kind in {"histogram", "summary"}:
        return {name, *(name + suffix for suffix in HISTOGRAM_SUFFIXES)}
    return {name}


# ----------------------------------------------------------------- dashboard


def test_dashboard_shape() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(iter_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], panel["id"]
        sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert all(source["uid"] == "${datasource}" for source in sources), panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in iter_panels(load_dashboard()["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_dashboard_uses_only_known_metrics() -> None:
    for where, expr in dashboard_queries(load_dashboard()):
        names = metric_names(expr)
        assert names, f"{where}: no godel_ metric in {expr!r}"
        assert {name for name in names if not is_known(name)} == set(), where


def test_dashboard_covers_the_required_signals() -> None:
    shown = {name for _, expr in dashboard_queries(load_dashboard()) for name in metric_names(expr)}
    assert DASHBOARD_MUST_SHOW - shown == set()


def test_metric_name_parser_flags_unknown_names() -> None:
    # The checks above are only as good as this parser: it must catch a typo.
    names = metric_names('rate(godel_replay_events_total[5m]) / godel_queue_depth{queue="x"}')
    assert names == {"godel_replay_events_total", "godel_queue_depth"}
    assert not is_known("godel_replay_events_total")
    assert is_known("godel_event_processing_seconds_bucket")
    assert not is_known("godel_queue_depth_bucket")


LINK_STATE_COLOURS = {"connected": "green", "recovering": "yellow", "fallback": "red"}


def test_link_state_panels_colour_each_state() -> None:
    # The query turns the one-hot godel_link_state{state} into one series per instance
    # whose value codes the state; the value mappings must name and colour each code.
    panels = [
        panel
        for panel in iter_panels(load_dashboard()["panels"])
        if any("godel_link_state" in target["expr"] for target in panel.get("targets", []))
    ]
    assert {"stat", "state-timeline"} <= {panel["type"] for panel in panels}
    for panel in panels:
        (target,) = panel["targets"]
        expr = target["expr"]
        assert expr.startswith("max by (instance)"), panel["title"]
        codes = {
            state: int(factor or 1)
            for state, factor in re.findall(r'state="(\w+)"\}(?:\s*\*\s*(\d+))?', expr)
        }
        assert set(codes) == set(LINK_STATE_COLOURS), panel["title"]
        # max() keeps the worst state if a scrape catches two at 1 mid-transition.
        assert codes["connected"] < codes["recovering"] < codes["fallback"]
        options: dict[str, dict[str, Any]] = {}
        for mapping in panel["fieldConfig"]["defaults"]["mappings"]:
            if mapping["type"] == "value":
                options |= mapping["options"]
        for state, code in codes.items():
            assert options[str(code)]["text"] == state, panel["title"]
            assert options[str(code)]["color"] == LINK_STATE_COLOURS[state], panel["title"]


def dashboard_links(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    links = [(f"dashboard link {link['title']}", link["url"]) for link in dashboard["links"]]
    links += [
        (f"panel {panel['title']}", link["url"])
        for panel in iter_panels(dashboard["panels"])
        for link in panel.get("links", [])
    ]
    return links


def test_dashboard_runbook_links_use_the_configurable_base() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    base = variables["runbook_base"]
    assert base["type"] == "textbox"
    assert base["query"] == base["current"]["value"]
    assert base["query"].startswith("https://") and not base["query"].endswith("/")
    links = dashboard_links(dashboard)
    runbooks = {path.name for path in RUNBOOKS.glob("*.md")}
    top = {link["url"].removeprefix("${runbook_base}/") for link in dashboard["links"]}
    assert top >= runbooks, "a dashboard link to every runbook"
    for where, url in links:
        assert url.startswith("${runbook_base}/"), where
        runbook, _, anchor = url.removeprefix("${runbook_base}/").partition("#")
        assert runbook in runbooks, where
        assert not anchor or anchor in runbook_anchors(runbook), where
