"""The plain manifests in k8s/: schema-valid, self-consistent, and using the contract
names the runbook relies on (namespace godel, StatefulSet/Service redis, ...)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from crd_objects import check_crd, is_crd, is_duration, trigger
from k8s_objects import (
    K8S_DIR,
    NAMESPACE,
    ROOT,
    WORKLOAD_KINDS,
    all_containers,
    container,
    find,
    get,
    labels_match,
    load_file,
    load_manifests,
    manifest_files,
    pod_spec,
)
from tests.contracts import ALERT_NAMES

K8S_VERSION = kubernetes_validate.latest_version()
CLUSTER_SCOPED = {"Namespace"}
EXPECTED_ALERTS = ALERT_NAMES
ALERTS_FILE = ROOT / "monitoring" / "alerts.yml"
RUNBOOK_PLACEHOLDER = "${RUNBOOK_BASE_URL}"

_DOCS = [
    pytest.param(doc, id=f"{path.name}:{doc['kind']}/{doc['metadata']['name']}")
    for path in manifest_files()
    for doc in load_file(path)
]
_BUILTIN_DOCS = [p for p in _DOCS if not is_crd(p.values[0])]
_CRD_DOCS = [p for p in _DOCS if is_crd(p.values[0])]


def _env(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def _container(kind: str, name: str, container_name: str) -> dict[str, Any]:
    c = container(get(kind, name), container_name)
    assert c is not None, f"{kind} {name} has no container {container_name!r}"
    return c


def _redis() -> dict[str, Any]:
    return _container("StatefulSet", "redis", "redis")


def _quantity_mi(q: str) -> int:
    units = {"Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    m = re.fullmatch(r"(\d+)(Mi|Gi|Ti)", q)
    assert m, f"unexpected memory quantity {q!r}"
    return int(m.group(1)) * units[m.group(2)]


# --- every file, every object ---------------------------------------------------------


def test_expected_files_exist() -> None:
    names = {p.name for p in manifest_files()}
    expected = {
        "namespace.yaml", "redis.yaml", "api.yaml", "workers.yaml", "postgres.yaml",
        "secret.example.yaml", "ingress.yaml", "monitoring.yaml", "podmonitor.yaml",
        "keda-scaledobject.yaml", "api-hpa.yaml",
    }  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize("doc", _BUILTIN_DOCS)
def test_object_validates_against_kubernetes_schema(doc: dict[str, Any]) -> None:
    # strict: unknown fields (typos such as `readinesProbe`) are errors too.
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("doc", _CRD_DOCS)
def test_custom_resource_structure(doc: dict[str, Any]) -> None:
    # No JSON schema for Prometheus Operator / KEDA objects: required and known fields.
    check_crd(doc)


def test_every_kind_is_checked() -> None:
    kinds = {(p.values[0]["apiVersion"], p.values[0]["kind"]) for p in _CRD_DOCS}
    assert ("keda.sh/v1alpha1", "ScaledObject") in kinds
    assert ("monitoring.coreos.com/v1", "PodMonitor") in kinds
    assert len(_BUILTIN_DOCS) + len(_CRD_DOCS) == len(_DOCS)


def test_validator_rejects_a_broken_object() -> None:
    # Guards the test above against a validator that accepts anything.
    broken = yaml.safe_load(yaml.safe_dump(get("StatefulSet", "redis")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("doc", [p for p in _DOCS if p.values[0]["kind"] not in CLUSTER_SCOPED])
def test_namespaced_object_names_namespace_godel(doc: dict[str, Any]) -> None:
    # Each file must apply alone (the runbook runs `kubectl apply -f k8s/redis.yaml`).
    assert doc["metadata"].get("namespace") == NAMESPACE


def test_namespace_object() -> None:
    assert get("Namespace", NAMESPACE, namespace=None)["apiVersion"] == "v1"


def test_object_identities_are_unique() -> None:
    seen = [
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in load_manifests()
    ]
    assert len(seen) == len(set(seen))


def test_images_are_pinned_to_a_tag() -> None:
    for doc in load_manifests():
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        for c in all_containers(doc):
            image = c["image"]
            assert ":" in image and not image.endswith(":latest"), (doc["metadata"]["name"], image)


def test_godel_containers_share_one_image_and_run_non_root() -> None:
    godel = [
        d
        for d in load_manifests()
        if d["kind"] in WORKLOAD_KINDS and "godel" in d["metadata"]["name"]
    ]
    assert {d["metadata"]["name"] for d in godel} == {"godel-api", "godel-worker"}
    assert len({c["image"] for d in godel for c in all_containers(d)}) == 1
    for d in godel:
        assert pod_spec(d)["securityContext"]["runAsNonRoot"] is True
        # The Dockerfile's uid: a mismatch would still run, but as an unknown user.
        assert pod_spec(d)["securityContext"]["runAsUser"] == 10001


# --- Redis: the runbook's names and the persistence/eviction settings ---------------


def test_redis_statefulset_contract_names() -> None:
    sts = get("StatefulSet", "redis")
    assert sts["spec"]["serviceName"] == "redis"
    assert sts["spec"]["replicas"] == 1  # pod redis-0, as the runbook assumes
    assert sts["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "redis"}
    assert sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "redis"
    c = container(sts, "redis")
    assert c is not None, "the container must be named `redis` (the runbook patches it by name)"
    assert c["image"].split(":")[0] == "redis" and c["image"].split(":")[1].startswith("7")


def test_redis_claim_template_is_redis_storage_mounted_at_data() -> None:
    sts = get("StatefulSet", "redis")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    # PVC name = <template>-<pod> = redis-storage-redis-0 (the runbook deletes it by name).
    assert claim["metadata"]["name"] == "redis-storage"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    mounts = {m["name"]: m["mountPath"] for m in _redis()["volumeMounts"]}
    assert mounts["redis-storage"] == "/data"


def test_redis_service_contract() -> None:
    svc = get("Service", "redis")
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "redis"}
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 6379
    ports = {p["name"]: p["containerPort"] for p in _redis()["ports"]}
    assert ports[port["targetPort"]] == 6379


def _redis_shell_line() -> str:
    c = _redis()
    assert c["command"] == ["sh", "-c"]
    (line,) = c["args"]
    return str(line)


def _redis_argv(limit_mb: int) -> list[str]:
    """The argv redis-server really gets: the container's shell line run by sh, with
    redis-server swapped for printf, under the memory limit the downward API gives."""
    line = _redis_shell_line()
    assert line.startswith("exec redis-server ")
    probe = "exec printf '%s\\n' " + line.removeprefix("exec redis-server ")
    out = subprocess.run(
        ["sh", "-c", probe], env={"REDIS_MEMORY_LIMIT_MB": str(limit_mb)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.splitlines()


def _options(argv: list[str]) -> dict[str, str]:
    assert len(argv) % 2 == 0, argv
    return {argv[i].removeprefix("--"): argv[i + 1] for i in range(0, len(argv), 2)}


def test_redis_args_persist_and_never_evict() -> None:
    opts = _options(_redis_argv(1024))
    assert opts["appendonly"] == "yes"
    assert opts["save"] == "60 1000"
    assert opts["maxmemory-policy"] == "noeviction"
    assert opts["dir"] == "/data"


def test_redis_maxmemory_follows_the_memory_limit() -> None:
    c = _redis()
    limit_mb = _quantity_mi(c["resources"]["limits"]["memory"])
    assert limit_mb == 1024
    ref = _env(c)["REDIS_MEMORY_LIMIT_MB"]["valueFrom"]["resourceFieldRef"]
    assert ref == {"containerName": "redis", "resource": "limits.memory", "divisor": "1Mi"}
    assert _options(_redis_argv(limit_mb))["maxmemory"] == "768mb"
    # The runbook's temporary fix raises the limit to 2Gi: maxmemory must follow.
    assert _options(_redis_argv(2048))["maxmemory"] == "1536mb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_cli(port: int, *args: str) -> str:
    cmd = ["redis-cli", "-p", str(port), *args]
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def redis_from_manifest(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A real redis-server started with the manifest's arguments (dir and port local)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server/redis-cli not installed")
    opts = _options(_redis_argv(1024))
    opts["dir"] = str(tmp_path)
    port = _free_port()
    argv = ["redis-server", *[x for k, v in opts.items() for x in (f"--{k}", v)]]
    argv += ["--port", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if _redis_cli(port, "ping") == "PONG":
                break
            time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start with the manifest's arguments")
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_accepts_the_manifest_arguments(
    redis_from_manifest: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = redis_from_manifest

    def config(key: str) -> str:
        return _redis_cli(port, "config", "get", key).splitlines()[1]

    assert config("appendonly") == "yes"
    assert config("save") == "60 1000"
    assert config("maxmemory") == str(768 * 1024 * 1024)
    assert config("maxmemory-policy") == "noeviction"


def test_redis_probes_against_a_real_server(
    redis_from_manifest: tuple[int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, proc = redis_from_manifest
    # The probes run `redis-cli` on the pod's default port; point it at the test server.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "redis-cli").write_text(f'#!/bin/sh\nexec {shutil.which("redis-cli")} -p {port} "$@"\n')
    (shim / "redis-cli").chmod(0o755)
    env = {"PATH": f"{shim}:/usr/bin:/bin"}

    def passes(probe: str) -> bool:
        command = _redis()[probe]["exec"]["command"]
        return subprocess.run(command, env=env, capture_output=True).returncode == 0

    assert passes("startupProbe") and passes("readinessProbe") and passes("livenessProbe")
    # An error reply (here NOAUTH; LOADING during an AOF load is the same to redis-cli):
    # not ready, but alive, so a long load is not killed by the liveness probe.
    _redis_cli(port, "config", "set", "requirepass", "probe-test")
    assert not passes("readinessProbe") and not passes("startupProbe")
    assert passes("livenessProbe")
    proc.terminate()
    proc.wait(timeout=10)
    assert not passes("livenessProbe") and not passes("readinessProbe")


def test_redis_probes_use_redis_cli_ping() -> None:
    c = _redis()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "redis-cli ping" in " ".join(c[probe]["exec"]["command"]), probe


def test_redis_network_policy_admits_godel_pods() -> None:
    policy = get("NetworkPolicy", "redis")
    assert labels_match(
        policy["spec"]["podSelector"]["matchLabels"],
        get("StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"],
    )
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    for name in ("godel-api", "godel-worker"):
        labels = get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert labels_match(peer["podSelector"]["matchLabels"], labels), name


# --- the API, the workers, the migrations ---------------------------------------------


def test_api_deployment_contract() -> None:
    dep = get("Deployment", "godel-api")
    assert dep["spec"]["replicas"] >= 2
    c = container(dep, "godel-api")
    assert c is not None
    assert c["args"] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_api_environment() -> None:
    env = _env(_container("Deployment", "godel-api", "godel-api"))
    assert env["GODEL_REDIS_URL"]["value"] == "redis://redis:6379/0"
    assert env["GODEL_WORKERS"]["value"] == "0"  # workers run in godel-worker
    assert env["GODEL_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "godel-admin",
        "key": "token",
    }
    assert "secretKeyRef" in env["GODEL_DATABASE_URL"]["valueFrom"]


def test_redis_url_points_at_the_redis_service() -> None:
    svc = get("Service", "redis")
    for name in ("godel-api", "godel-worker"):
        dep = get("Deployment", name)
        url = _env(pod_spec(dep)["containers"][0])["GODEL_REDIS_URL"]["value"]
        m = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)/\d+", url)
        assert m, url
        assert m.group(1) == svc["metadata"]["name"]
        assert int(m.group(2)) == svc["spec"]["ports"][0]["port"]


def test_worker_command() -> None:
    worker = _container("Deployment", "godel-worker", "godel-worker")
    assert worker["args"] == ["worker"]
    assert "GODEL_WORKERS" not in _env(worker)


def test_worker_probes_ask_its_metrics_port() -> None:
    worker = _container("Deployment", "godel-worker", "godel-worker")
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert str(ports["metrics"]) == _env(worker)["GODEL_WORKER_METRICS_PORT"]["value"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert worker[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    # A worker restarted by its liveness probe loses no event, but must not be killed
    # while slow to answer: the failure window stays well above a scrape's timeout.
    live = worker["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 30


def _godel_cli() -> str:
    cli = Path(sys.executable).with_name("godel")
    found = str(cli) if cli.exists() else shutil.which("godel")
    if found is None:
        pytest.skip("the godel console script is not installed")
    return found


def test_godel_worker_serves_the_probed_metrics_port(tmp_path: Path) -> None:
    """The probes and the PodMonitor rely on `godel worker` serving /metrics on
    GODEL_WORKER_METRICS_PORT: run the real worker (SQLite ledger, Redis unreachable, so
    in fallback) with the manifest's env and ask it what the kubelet would."""
    worker = _container("Deployment", "godel-worker", "godel-worker")
    assert worker["args"] == ["worker"]
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GODEL_DATA_DIR": str(tmp_path / "data"),
        "GODEL_REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0",
        "GODEL_WORKER_METRICS_PORT": str(port),
        "GODEL_LOG_LEVEL": "WARNING",
    }
    path = worker["livenessProbe"]["httpGet"]["path"]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_godel_cli(), *worker["args"]], env=env, cwd=tmp_path,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                    assert r.status == 200
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert body, f"no answer on :{port}{path}; exit {proc.poll()}: {log.read_text()[-2000:]}"
        # What the KEDA ScaledObject and the PodMonitor's consumers read.
        assert "godel_events_processed_total" in body
        assert "godel_fallback_queued_events" in body
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("name", ["godel-api", "godel-worker"])
def test_pods_migrate_the_schema_before_starting(name: str) -> None:
    (init,) = pod_spec(get("Deployment", name))["initContainers"]
    assert init["args"] == ["db", "upgrade"]
    app = pod_spec(get("Deployment", name))["containers"][0]
    # The same database as the app it prepares.
    assert _env(init)["GODEL_DATABASE_URL"] == _env(app)["GODEL_DATABASE_URL"]


def test_every_secret_reference_is_in_the_example() -> None:
    secrets = {
        d["metadata"]["name"]: set(d.get("stringData", {}) | d.get("data", {}))
        for d in load_file(K8S_DIR / "secret.example.yaml")
        if d["kind"] == "Secret"
    }
    refs = 0
    for doc in load_manifests():
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        for c in all_containers(doc):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs += 1
                    assert ref["key"] in secrets.get(ref["name"], set()), (
                        doc["metadata"]["name"],
                        ref,
                    )
    assert refs >= 5


def test_database_example_password_matches_url() -> None:
    (db,) = [
        d
        for d in load_file(K8S_DIR / "secret.example.yaml")
        if d["metadata"]["name"] == "godel-database"
    ]
    data = db["stringData"]
    assert f":{data['password']}@postgres:5432/" in data["url"]
    assert find("Service", "postgres") is not None


def test_services_select_pods_and_name_their_ports() -> None:
    workloads = [d for d in load_manifests() if d["kind"] in WORKLOAD_KINDS]
    for svc in (d for d in load_manifests() if d["kind"] == "Service"):
        backends = [
            w
            for w in workloads
            if labels_match(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(backends) == 1, svc["metadata"]["name"]
        port_names = {
            p["name"] for c in pod_spec(backends[0])["containers"] for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, (svc["metadata"]["name"], port)


def test_api_service_and_pdb() -> None:
    svc = get("Service", "godel-api")
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, "http")]
    pdb = get("PodDisruptionBudget", "godel-api")
    dep = get("Deployment", "godel-api")
    assert labels_match(
        pdb["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]
    )
    # minAvailable must leave room to evict one pod, or node drains block forever.
    assert pdb["spec"]["minAvailable"] < dep["spec"]["replicas"]


def test_ingress_routes_api_godel_local_to_the_api_service() -> None:
    ing = get("Ingress", "godel-api")
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "api.godel.local"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    svc = get("Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}


# --- monitoring.yaml: Prometheus Operator objects (no schema in kubernetes-validate) ---


def test_service_monitor_scrapes_the_api_metrics() -> None:
    sm = get("ServiceMonitor", "godel-api")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    svc = get("Service", "godel-api")
    assert labels_match(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert is_duration(endpoint["interval"]) and is_duration(endpoint["scrapeTimeout"])


def test_pod_monitor_scrapes_the_worker_metrics() -> None:
    pm = get("PodMonitor", "godel-worker")
    deploy = get("Deployment", "godel-worker")
    template = deploy["spec"]["template"]
    assert labels_match(pm["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert endpoint["path"] == "/metrics" and endpoint["port"] in ports
    assert env["GODEL_WORKER_METRICS_PORT"] == str(ports[endpoint["port"]])


def test_prometheus_rule_structure() -> None:
    rule_obj = get("PrometheusRule", "godel")
    assert rule_obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule_obj) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule_obj["spec"]) == {"groups"}
    alerts: list[str] = []
    for group in rule_obj["spec"]["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            assert "alert" in rule, "only alerting rules are expected here"
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert is_duration(rule.get("for", "0s"))
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            ann = rule["annotations"]
            for key in ("summary", "description", "runbook_url"):
                assert isinstance(ann.get(key), str) and ann[key].strip(), (rule["alert"], key)
            alerts.append(rule["alert"])
    assert len(alerts) == len(set(alerts))
    assert set(alerts) == EXPECTED_ALERTS


def test_prometheus_rule_equals_monitoring_alerts_yml() -> None:
    if not ALERTS_FILE.exists():
        pytest.skip("monitoring/alerts.yml does not exist yet (written by the monitoring task)")
    text = ALERTS_FILE.read_text(encoding="utf-8")
    groups = get("PrometheusRule", "godel")["spec"]["groups"]
    if RUNBOOK_PLACEHOLDER in text:
        # The generator fills the runbook links' placeholder with a base URL (its option,
        # its environment or its default): read it off the first link and fill in the same.
        ours = yaml.safe_load(text)["groups"][0]["rules"][0]["annotations"]["runbook_url"]
        theirs = groups[0]["rules"][0]["annotations"]["runbook_url"]
        assert ours.startswith(RUNBOOK_PLACEHOLDER), ours
        tail = ours.removeprefix(RUNBOOK_PLACEHOLDER)
        assert theirs.endswith(tail) and theirs.startswith("http"), theirs
        text = text.replace(RUNBOOK_PLACEHOLDER, theirs.removesuffix(tail))
    assert groups == yaml.safe_load(text)["groups"], (
        "k8s/monitoring.yaml is stale: run scripts/gen-prometheusrule.py"
    )


def test_generated_rule_files_are_up_to_date() -> None:
    if not ALERTS_FILE.exists():
        pytest.skip("monitoring/alerts.yml does not exist yet (written by the monitoring task)")
    script = ROOT / "scripts" / "gen-prometheusrule.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_pod_monitor_is_in_its_own_file() -> None:
    kinds = {d["kind"] for d in load_file(K8S_DIR / "podmonitor.yaml")}
    assert kinds == {"PodMonitor"}
    assert "PodMonitor" not in {d["kind"] for d in load_file(K8S_DIR / "monitoring.yaml")}
    pm = get("PodMonitor", "godel-worker")
    assert pm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]


# --- optional autoscaling: keda-scaledobject.yaml, api-hpa.yaml ------------------------


def test_keda_scales_the_workers_on_the_pending_list() -> None:
    (so,) = load_file(K8S_DIR / "keda-scaledobject.yaml")
    assert so["kind"] == "ScaledObject" and so["metadata"]["name"] == "godel-worker"
    assert get("Deployment", so["spec"]["scaleTargetRef"]["name"])
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    redis = trigger(so, "pending-queue")
    assert redis["type"] == "redis"
    meta = redis["metadata"]
    assert meta["listName"] == "godel:queue:pending"
    assert int(meta["listLength"]) > 0
    # The same Redis the workers use.
    worker_url = _env(_container("Deployment", "godel-worker", "godel-worker"))
    m = re.fullmatch(r"redis://([^/]+)/(\d+)", worker_url["GODEL_REDIS_URL"]["value"])
    assert m and meta["address"] == m.group(1) and meta["databaseIndex"] == m.group(2)


def test_keda_scales_the_workers_on_the_undispatched_backlog() -> None:
    so = get("ScaledObject", "godel-worker")
    prom = trigger(so, "undispatched-backlog")
    assert prom["type"] == "prometheus"
    meta = prom["metadata"]
    assert re.fullmatch(r"https?://[^/]+(/.*)?", meta["serverAddress"])
    assert "godel_fallback_queued_events" in meta["query"]
    # One ledger-wide count reported by every process: max, never sum.
    assert meta["query"].startswith("max(")
    assert f'namespace="{NAMESPACE}"' in meta["query"]
    assert float(meta["threshold"]) > 0


def test_api_hpa_targets_the_api_on_cpu() -> None:
    hpa = get("HorizontalPodAutoscaler", "godel-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "godel-api")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # Utilization is a share of requests.cpu: without it the HPA cannot compute one.
    assert _container("Deployment", "godel-api", "godel-api")["resources"]["requests"]["cpu"]
    pdb = get("PodDisruptionBudget", "godel-api")
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
