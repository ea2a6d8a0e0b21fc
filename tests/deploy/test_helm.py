"""The Helm chart in helm/godel, checked without a helm binary: values against the
schema, the contract value paths, the Chart's dependencies, and every template's
references to values and named templates. Rendering is checked too when the
helm-python-sdk package (Helm's Go engine behind a C ABI) is installed."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from k8s_objects import ROOT

CHART = ROOT / "helm" / "godel"
TEMPLATES = sorted((CHART / "templates").glob("*"))
BITNAMI = "oci://registry-1.docker.io/bitnamicharts"
CRD_GROUP = "monitoring.coreos.com/"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _values() -> dict[str, Any]:
    values: dict[str, Any] = _yaml(CHART / "values.yaml")
    return values


def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            raise KeyError(dotted)
        tree = tree[part]
    return tree


def _with(values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of values with dotted-path keys (a__b for a.b) set."""
    out = copy.deepcopy(values)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


# --- Chart.yaml -------------------------------------------------------------------


def test_chart_metadata_and_dependencies() -> None:
    chart = _yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "godel"
    deps = {d["name"]: d for d in chart["dependencies"]}
    assert set(deps) == {"redis", "postgresql"}
    for name, dep in deps.items():
        assert dep["repository"] == BITNAMI
        assert dep["condition"] == f"{name}.enabled"
        assert isinstance(_lookup(_values(), dep["condition"]), bool)
        # Pinned to a major version: a new major of a Bitnami chart renames values.
        assert re.fullmatch(r"\d+\.x\.x", dep["version"]), dep["version"]


# --- values.yaml and values.schema.json -------------------------------------------


def test_values_validate_against_the_schema() -> None:
    _validator().validate(_values())


def test_contract_value_paths() -> None:
    values = _values()
    assert _lookup(values, "redis.master.resources.limits.memory") == "1Gi"
    assert _lookup(values, "redis.master.persistence.enabled") is True
    assert _lookup(values, "redis.master.persistence.size") == "5Gi"
    assert _lookup(values, "redis.architecture") == "standalone"
    assert _lookup(values, "ingress.host") == "api.godel.local"
    for path in ("api.replicas", "worker.replicas", "image.repository", "image.tag"):
        _lookup(values, path)
    for path in ("admin.existingSecret", "database.existingSecret"):
        assert _lookup(values, path) == ""


def _redis_config() -> dict[str, str]:
    text = _lookup(_values(), "redis.commonConfiguration")
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip())
    return {k: v for k, v in pairs}


def test_redis_configuration_persists_and_never_evicts() -> None:
    config = _redis_config()
    assert config["appendonly"] == "yes"
    assert config["save"] == "60 1000"
    assert config["maxmemory-policy"] == "noeviction"


def test_redis_maxmemory_leaves_headroom_under_the_limit() -> None:
    maxmemory = re.fullmatch(r"(\d+)mb", _redis_config()["maxmemory"])
    limit = re.fullmatch(r"(\d+)Gi", _lookup(_values(), "redis.master.resources.limits.memory"))
    assert maxmemory and limit
    ratio = int(maxmemory.group(1)) / (int(limit.group(1)) * 1024)
    # Room for the fork of an AOF rewrite, yet most of the limit usable.
    assert 0.6 <= ratio <= 0.8


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"redis__master__persistence__enabled": "yes"}, id="persistence-not-bool"),
        pytest.param({"redis__master__persistence__size": "5GB"}, id="size-not-quantity"),
        pytest.param({"redis__master__resources__limits__memory": "1 GiB"}, id="memory-not-qty"),
        pytest.param({"api__replicas": -1}, id="negative-replicas"),
        pytest.param({"api__replica": 2}, id="typo-in-own-section"),
        pytest.param({"ingress__host": ""}, id="empty-host"),
        pytest.param({"redis__enabled": False}, id="no-redis-without-externalRedis-url"),
        pytest.param({"postgresql__enabled": False}, id="no-database-at-all"),
    ],
)
def test_schema_rejects(changes: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(_with(_values(), **changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"redis__enabled": False, "externalRedis__url": "redis://my-redis:6379/0"},
        {"postgresql__enabled": False, "database__existingSecret": "godel-database"},
        {"postgresql__enabled": False, "database__url": "postgresql+psycopg://u:p@db/godel"},
        {"redis__master__resources__limits__memory": "2Gi", "api__replicas": 4},
    ],
)
def test_schema_accepts(changes: dict[str, Any]) -> None:
    _validator().validate(_with(_values(), **changes))


# --- templates (Go templates: checked statically) ---------------------------------

_ACTION = re.compile(r"{{-?(.*?)-?}}", re.S)
_VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_OPENERS = re.compile(r"^\s*(if|range|with|define|block)\b")
_END = re.compile(r"^\s*end\s*$")


def _actions(path: Path) -> list[str]:
    return [m.group(1) for m in _ACTION.finditer(path.read_text(encoding="utf-8"))]


def test_templates_exist() -> None:
    names = {p.name for p in TEMPLATES}
    expected = {
        "_helpers.tpl", "api-deployment.yaml", "worker-deployment.yaml", "service.yaml",
        "ingress.yaml", "pdb.yaml", "servicemonitor.yaml", "prometheusrule.yaml",
        "secret.yaml",
    }  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_delimiters_and_blocks_balance(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count("{{") == text.count("}}"), "unbalanced {{ }}"
    depth = 0
    for action in _actions(path):
        body = action.strip()
        if body.startswith("/*"):
            continue
        if _OPENERS.match(body):
            depth += 1
        elif _END.match(body):
            depth -= 1
            assert depth >= 0, "`end` without an opening block"
    assert depth == 0, "a block is not closed with `end`"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_values_exist_in_values_yaml(path: Path) -> None:
    values = _values()
    missing = [
        ref
        for action in _actions(path)
        for ref in (m.group(1).lstrip(".") for m in _VALUES_REF.finditer(action))
        if not _has(values, ref)
    ]
    assert not missing, f".Values paths not in values.yaml: {missing}"


def _has(values: dict[str, Any], dotted: str) -> bool:
    try:
        _lookup(values, dotted)
    except KeyError:
        return False
    return True


def test_included_templates_are_defined() -> None:
    defined = {
        m.group(1)
        for p in TEMPLATES
        for m in re.finditer(r'define\s+"([^"]+)"', p.read_text(encoding="utf-8"))
    }
    used = {
        m.group(1)
        for p in TEMPLATES
        for m in re.finditer(r'include\s+"([^"]+)"', p.read_text(encoding="utf-8"))
    }
    assert used and used <= defined, used - defined


def test_values_checker_catches_a_missing_path() -> None:
    # Guards test_template_values_exist_in_values_yaml against a regex matching nothing.
    refs = [m.group(1) for m in _VALUES_REF.finditer("{{ .Values.redis.master.nope | quote }}")]
    assert refs == [".redis.master.nope"]
    assert not _has(_values(), "redis.master.nope")
    assert _has(_values(), "redis.master.persistence.size")


def test_chart_alert_rules_equal_monitoring_alerts_yml() -> None:
    source = ROOT / "monitoring" / "alerts.yml"
    if not source.exists():
        pytest.skip("monitoring/alerts.yml does not exist yet (written by the monitoring task)")
    assert _yaml(CHART / "files" / "alerts.yml")["groups"] == _yaml(source)["groups"], (
        "helm/godel/files/alerts.yml is stale: run scripts/gen-prometheusrule.py"
    )


# --- rendering, with Helm's own engine when available ---------------------------

RENDER_CASES = {
    "defaults": {},
    "everything-on": {
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        "ingress": {"className": "nginx", "tlsSecretName": "godel-tls"},
        "admin": {"token": "t0ken"},
    },
    "external-services": {
        "redis": {"enabled": False},
        "postgresql": {"enabled": False},
        "externalRedis": {"url": "redis://redis:6379/0"},
        "database": {"existingSecret": "godel-database"},
        "admin": {"existingSecret": "godel-admin"},
        "ingress": {"enabled": False},
        "migrations": {"enabled": False},
    },
    "database-url": {"postgresql": {"enabled": False}, "database": {"url": "postgresql://x"}},
}


def _render(overrides: dict[str, Any], release: str = "godel") -> list[dict[str, Any]]:
    helm = pytest.importorskip(
        "helm_python", reason="helm-python-sdk not installed: chart rendering not checked"
    )
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(overrides)
    out = chart.render(overrides, name=release, namespace="godel", is_install=True)
    docs = []
    for name, text in sorted(out.items()):
        if name.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def _by_kind_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_rendered_objects_validate(case: str) -> None:
    docs = _render(RENDER_CASES[case])
    assert docs
    version = kubernetes_validate.latest_version()
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUP):
            assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_rendered_names_and_wiring() -> None:
    objs = _by_kind_name(_render(RENDER_CASES["everything-on"]))
    api = objs[("Deployment", "godel-api")]
    (c,) = api["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["GODEL_REDIS_URL"]["value"] == "redis://redis-master:6379/0"
    assert env["GODEL_WORKERS"]["value"] == "0"
    assert env["GODEL_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "godel-admin"
    assert "$(DATABASE_PASSWORD)@postgresql:5432/godel" in env["GODEL_DATABASE_URL"]["value"]
    # DATABASE_PASSWORD must come first for Kubernetes to expand $(DATABASE_PASSWORD).
    assert list(env).index("DATABASE_PASSWORD") < list(env).index("GODEL_DATABASE_URL")
    assert ("Service", "godel-api") in objs and ("PodDisruptionBudget", "godel-api") in objs
    for name in ("godel-api", "godel-worker"):
        pod = objs[("Deployment", name)]["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["args"] == ["db", "upgrade"]
        assert init["env"] == [e for e in pod["containers"][0]["env"] if "DATABASE" in e["name"]]
    rules = objs[("PrometheusRule", "godel")]["spec"]["groups"]
    assert rules == _yaml(CHART / "files" / "alerts.yml")["groups"]
    ing = objs[("Ingress", "godel-api")]
    assert ing["spec"]["rules"][0]["host"] == "api.godel.local"


def test_rendered_external_services() -> None:
    objs = _by_kind_name(_render(RENDER_CASES["external-services"]))
    assert ("Secret", "godel-admin") not in objs and ("Ingress", "godel-api") not in objs
    assert "initContainers" not in objs[("Deployment", "godel-api")]["spec"]["template"]["spec"]
    c = objs[("Deployment", "godel-worker")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["GODEL_REDIS_URL"]["value"] == "redis://redis:6379/0"
    assert env["GODEL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "godel-database"


def test_rendered_names_follow_other_release_names() -> None:
    objs = _by_kind_name(_render({}, release="prod"))
    assert ("Deployment", "prod-godel-api") in objs
    assert ("Secret", "prod-godel-admin") in objs
