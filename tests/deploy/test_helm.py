"""The Helm chart in helm/godel, checked without a helm binary: values against the
schema, the contract value paths, the Chart's dependencies and Chart.lock, the README's
list of values, and every template's references to values and named templates. Then the
chart is rendered and linted with Helm's own engine (helm-python-sdk, see helm_chart.py)
and every rendered object validated. Feature by feature checks: test_helm_features.py."""

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
from crd_objects import check_crd, is_crd
from helm_chart import CHART, helm, lock_digest, render
from k8s_objects import ROOT

TEMPLATES = sorted((CHART / "templates").glob("*"))
BITNAMI = "oci://registry-1.docker.io/bitnamicharts"
RUNBOOK_PLACEHOLDER = "${RUNBOOK_BASE_URL}"


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
    assert chart["kubeVersion"] == ">=1.23.0-0"  # autoscaling/v2 for the HPA
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
        pytest.param({"redis__sentinel__enabled": True}, id="sentinel-without-replication"),
        pytest.param({"worker__autoscaling__keda__enabled": True}, id="keda-without-prometheus"),
        pytest.param({"api__autoscaling__minReplicas": 0}, id="hpa-min-zero"),
        pytest.param(
            {"worker__autoscaling__keda__prometheus__threshold": "100"}, id="threshold-string"
        ),
        pytest.param({"worker__autoscaling__keda__fallback": {"replicas": 2}}, id="half-fallback"),
        pytest.param({"handlers__modules": ["acme-billing"]}, id="module-not-importable"),
        pytest.param({"affinity": {"nodeAfinity": {}}}, id="affinity-typo"),
        pytest.param({"serviceAccount__create": "yes"}, id="sa-create-not-bool"),
        pytest.param({"monitoring__podMonitor__interval": "15"}, id="interval-not-duration"),
        pytest.param({"redis__replica__persistence__size": "5GB"}, id="replica-size-not-qty"),
        pytest.param({"worker__metricsPort": 0}, id="metrics-port-zero"),
        pytest.param({"monitoring__runbookBaseUrl": "wiki/runbooks"}, id="runbook-url-relative"),
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
        {"redis__architecture": "replication", "redis__sentinel__enabled": True},
        {
            "worker__autoscaling__keda__enabled": True,
            "worker__autoscaling__keda__minReplicas": 0,
            "worker__autoscaling__keda__prometheus__serverAddress": "http://prometheus:9090",
            "worker__autoscaling__keda__fallback": {"failureThreshold": 3, "replicas": 2},
        },
        {"api__autoscaling__enabled": True, "handlers__modules": ["acme.billing", "audit"]},
        {"tolerations": [{"operator": "Exists"}], "nodeSelector": {"pool": "godel"}},
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
        "secret.yaml", "NOTES.txt", "api-hpa.yaml", "worker-scaledobject.yaml",
        "podmonitor.yaml", "serviceaccount.yaml",
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


# --- rendering, with Helm's own engine --------------------------------------------

KEDA_ON = {"enabled": True, "prometheus": {"serverAddress": "http://prometheus:9090"}}
SENTINEL = {"architecture": "replication", "sentinel": {"enabled": True}}
TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "godel", "effect": "NoSchedule"}
SCALE_DOWN = {"scaleDown": {"selectPolicy": "Min"}}
RENDER_CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything-on": {
        "monitoring": {
            "serviceMonitor": {"enabled": True},
            "podMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
        },
        "ingress": {"className": "nginx", "tlsSecretName": "godel-tls"},
        "admin": {"token": "t0ken"},
        "api": {"autoscaling": {"enabled": True, "behavior": SCALE_DOWN}},
        "worker": {
            "autoscaling": {"keda": {**KEDA_ON, "fallback": {"failureThreshold": 3, "replicas": 4}}}
        },
        "handlers": {"modules": ["acme.handlers"]},
        "serviceAccount": {"annotations": {"iam.example.com/role": "godel"}},
        "podAnnotations": {"example.com/team": "agents"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [TOLERATION],
    },
    "sentinel-with-auth": {
        "redis": {**SENTINEL, "auth": {"enabled": True}},
        "worker": {"autoscaling": {"keda": KEDA_ON}},
    },
    "external-services": {
        "redis": {"enabled": False},
        "postgresql": {"enabled": False},
        "externalRedis": {"url": "redis://redis:6379/0"},
        "database": {"existingSecret": "godel-database"},
        "admin": {"existingSecret": "godel-admin"},
        "ingress": {"enabled": False},
        "migrations": {"enabled": False},
        "serviceAccount": {"create": False},
        "worker": {"autoscaling": {"keda": KEDA_ON}},
    },
    "database-url": {"postgresql": {"enabled": False}, "database": {"url": "postgresql://x"}},
}  # fmt: skip


def _render(overrides: dict[str, Any], release: str = "godel") -> list[dict[str, Any]]:
    return render(overrides, release=release).docs


def _by_kind_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_rendered_objects_validate(case: str) -> None:
    docs = _render(RENDER_CASES[case])
    assert len(docs) >= 5
    assert len(_by_kind_name(docs)) == len(docs), "two objects of one kind share a name"
    version = kubernetes_validate.latest_version()
    for doc in docs:
        if is_crd(doc):
            check_crd(doc)
        else:
            kubernetes_validate.validate(doc, version, strict=True)


def test_everything_on_renders_every_kind() -> None:
    kinds = {d["kind"] for d in _render(RENDER_CASES["everything-on"])}
    assert kinds == {
        "Deployment", "Service", "Ingress", "PodDisruptionBudget", "Secret", "ServiceAccount",
        "HorizontalPodAutoscaler", "ScaledObject", "ServiceMonitor", "PodMonitor",
        "PrometheusRule",
    }  # fmt: skip


def test_rendered_names_and_wiring() -> None:
    objs = _by_kind_name(_render(RENDER_CASES["everything-on"]))
    api = objs[("Deployment", "godel-api")]
    (c,) = api["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["GODEL_REDIS_URL"]["value"] == "redis://redis-master:6379/0"
    assert env["GODEL_WORKERS"]["value"] == "0"
    assert env["GODEL_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "godel-admin",
        "key": "token",
    }
    assert "$(DATABASE_PASSWORD)@postgresql:5432/godel" in env["GODEL_DATABASE_URL"]["value"]
    # DATABASE_PASSWORD must come first for Kubernetes to expand $(DATABASE_PASSWORD).
    assert list(env).index("DATABASE_PASSWORD") < list(env).index("GODEL_DATABASE_URL")
    assert ("Service", "godel-api") in objs and ("PodDisruptionBudget", "godel-api") in objs
    for name in ("godel-api", "godel-worker"):
        pod = objs[("Deployment", name)]["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["args"] == ["db", "upgrade"]
        assert init["env"] == [e for e in pod["containers"][0]["env"] if "DATABASE" in e["name"]]
    rule = objs[("PrometheusRule", "godel")]
    # The chart fills the runbook links' placeholder from monitoring.runbookBaseUrl.
    base = _values()["monitoring"]["runbookBaseUrl"]
    source = (CHART / "files" / "alerts.yml").read_text(encoding="utf-8")
    assert rule["spec"] == yaml.safe_load(source.replace(RUNBOOK_PLACEHOLDER, base))
    assert RUNBOOK_PLACEHOLDER not in repr(rule)
    ing = objs[("Ingress", "godel-api")]
    assert ing["spec"]["rules"][0]["host"] == "api.godel.local"
    assert ing["spec"]["tls"] == [{"hosts": ["api.godel.local"], "secretName": "godel-tls"}]


def test_rendered_external_services() -> None:
    objs = _by_kind_name(_render(RENDER_CASES["external-services"]))
    assert ("Secret", "godel-admin") not in objs and ("Ingress", "godel-api") not in objs
    assert ("ServiceAccount", "godel") not in objs
    api_pod = objs[("Deployment", "godel-api")]["spec"]["template"]["spec"]
    assert "initContainers" not in api_pod
    assert api_pod["serviceAccountName"] == "default"
    c = objs[("Deployment", "godel-worker")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["GODEL_REDIS_URL"]["value"] == "redis://redis:6379/0"
    assert "REDIS_PASSWORD" not in env
    assert env["GODEL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "godel-database"


def test_admin_secret_key_applies_to_an_existing_secret_only() -> None:
    # The chart's own Secret always stores `token`; existingSecretKey names a key in yours.
    def admin_ref(overrides: dict[str, Any]) -> dict[str, str]:
        objs = _by_kind_name(_render(overrides))
        c = objs[("Deployment", "godel-api")]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in c["env"]}
        ref: dict[str, str] = env["GODEL_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
        return ref

    assert admin_ref({"admin": {"existingSecretKey": "other"}}) == {
        "name": "godel-admin",
        "key": "token",
    }
    assert admin_ref({"admin": {"existingSecret": "mine", "existingSecretKey": "other"}}) == {
        "name": "mine",
        "key": "other",
    }


def test_runbook_links_follow_runbook_base_url() -> None:
    base = "https://wiki.example.com/godel/runbooks"
    values = {"monitoring": {"prometheusRule": {"enabled": True}, "runbookBaseUrl": base + "/"}}
    rule = _by_kind_name(_render(values))[("PrometheusRule", "godel")]
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert urls and all(u.startswith(base + "/") and "//" not in u[8:] for u in urls), urls


def test_rendered_names_follow_other_release_names() -> None:
    objs = _by_kind_name(_render({}, release="prod"))
    assert ("Deployment", "prod-godel-api") in objs
    assert ("Secret", "prod-godel-admin") in objs
    assert ("ServiceAccount", "prod-godel") in objs


def test_helm_lint_finds_nothing_but_the_unfetched_subcharts() -> None:
    report = helm().lint(str(CHART), strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    # The Bitnami charts are not in charts/ here (no registry access): that one warning only.
    assert [m["error"] for m in problems] == [
        "chart directory is missing these dependencies: redis,postgresql"
    ], problems
    assert report["total_charts_linted"] == 1


# --- Chart.lock ------------------------------------------------------------------


def _lock() -> dict[str, Any]:
    lock: dict[str, Any] = _yaml(CHART / "Chart.lock")
    return lock


def _satisfies(version: str, constraint: str) -> bool:
    """Enough of semver ranges for the `N.x.x` constraints Chart.yaml uses."""
    want = constraint.split(".")
    got = version.split(".")
    assert len(want) == len(got) == 3 and all(p.isdigit() for p in got), (version, constraint)
    return all(w in {"x", "*"} or w == g for w, g in zip(want, got, strict=True))


def test_chart_lock_pins_every_dependency_within_its_range() -> None:
    deps = _yaml(CHART / "Chart.yaml")["dependencies"]
    lock = _lock()
    assert set(lock) == {"dependencies", "digest", "generated"}
    assert [(d["name"], d["repository"]) for d in lock["dependencies"]] == [
        (d["name"], d["repository"]) for d in deps
    ]
    for dep, locked in zip(deps, lock["dependencies"], strict=True):
        assert set(locked) == {"name", "repository", "version"}
        assert _satisfies(locked["version"], dep["version"]), (locked, dep["version"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", lock["generated"])


def test_chart_lock_digest_is_in_sync_with_chart_yaml() -> None:
    # `helm dependency build` refuses a lock whose digest does not match Chart.yaml.
    deps = _yaml(CHART / "Chart.yaml")["dependencies"]
    lock = _lock()
    assert lock["digest"] == lock_digest(deps, lock["dependencies"])


def test_lock_digest_is_the_one_helm_computes(tmp_path: Path) -> None:
    """Helm's `dependency build` accepts a lock carrying lock_digest() and refuses any
    other digest. A local (file://) dependency keeps it offline."""
    sdk = helm()
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "Chart.yaml").write_text("apiVersion: v2\nname: sub\nversion: 1.2.3\n")
    parent = tmp_path / "parent"
    parent.mkdir()
    requested = [
        {"name": "sub", "version": "1.x.x", "repository": "file://../sub",
         "condition": "sub.enabled", "tags": ["backend"]},
    ]  # fmt: skip
    chart = {"apiVersion": "v2", "name": "parent", "version": "0.1.0", "dependencies": requested}
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart))
    locked = [{"name": "sub", "repository": "file://../sub", "version": "1.2.3"}]

    def build(digest: str) -> None:
        lock = {"dependencies": locked, "digest": digest, "generated": "2026-01-01T00:00:00Z"}
        (parent / "Chart.lock").write_text(yaml.safe_dump(lock))
        sdk.dependency_build(str(parent), skip_refresh=True)

    with pytest.raises(sdk.HelmError, match="out of sync"):
        build("sha256:" + "0" * 64)
    build(lock_digest(requested, locked))
    assert [p.name for p in (parent / "charts").iterdir()] == ["sub-1.2.3.tgz"]


# --- README.md lists every value ----------------------------------------------------


def _leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    """Dotted paths of values.yaml's settings; a map that is empty by default (labels,
    annotations, ...) or a list is one setting."""
    if not isinstance(tree, dict) or not tree:
        return [prefix]
    return [p for key, value in tree.items() for p in _leaf_paths(value, f"{prefix}{key}.")]


def test_readme_lists_every_value() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    paths = {p.rstrip(".") for p in _leaf_paths(_values())}
    assert "redis.master.persistence.size" in paths and len(paths) > 60
    missing = sorted(paths - listed)
    assert not missing, f"values missing from helm/godel/README.md: {missing}"
    # And nothing listed that values.yaml lacks (a renamed value left behind).
    stale = sorted(p for p in listed - paths if not any(q.startswith(p + ".") for q in paths))
    assert not stale, f"README.md lists values that values.yaml does not have: {stale}"


# --- values.schema.json describes every value ------------------------------------------


def _schema_node(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_schema_describes_every_value() -> None:
    # additionalProperties: false catches typos only where the schema knows the keys;
    # this keeps every value of values.yaml typed, the subcharts' included.
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    undescribed = []
    for path in (p.rstrip(".") for p in _leaf_paths(_values())):
        node = schema
        for key in path.split("."):
            node = _schema_node(schema, node)
            if key in node.get("properties", {}):
                node = node["properties"][key]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                undescribed.append(path)
                break
        else:
            assert "type" in _schema_node(schema, node) or "anyOf" in node, path
    assert not undescribed, f"values.schema.json does not describe: {undescribed}"
