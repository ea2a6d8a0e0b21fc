"""The chart's options, rendered with Helm's own engine (see helm_chart.py): Redis Sentinel,
KEDA for the workers, an HPA for the API, the PodMonitor and worker probes, scheduling and
ServiceAccount values on both pod specs, handler modules, and NOTES.txt."""

from __future__ import annotations

import re
from typing import Any

import pytest
from crd_objects import check_crd, trigger
from helm_chart import Rendered, render, render_error
from k8s_objects import labels_match

PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
KEDA_ON: dict[str, Any] = {"enabled": True, "prometheus": {"serverAddress": PROMETHEUS}}
SENTINEL: dict[str, Any] = {"architecture": "replication", "sentinel": {"enabled": True}}
DEPLOYMENTS = ("godel-api", "godel-worker")


def _pod(chart: Rendered, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = chart.get("Deployment", name)["spec"]["template"]["spec"]
    return pod


def _container(chart: Rendered, name: str) -> dict[str, Any]:
    container: dict[str, Any] = _pod(chart, name)["containers"][0]
    assert container["name"] == name
    return container


def _env(chart: Rendered, name: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container(chart, name)["env"]}


def _redis_urls(chart: Rendered) -> set[str]:
    return {_env(chart, name)["GODEL_REDIS_URL"]["value"] for name in DEPLOYMENTS}


def _keda(values: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"worker": {"autoscaling": {"keda": {**KEDA_ON, **(values or {})}}}, **top}


# --- Redis Sentinel ----------------------------------------------------------------


def test_sentinel_url_names_bitnamis_sentinel_service() -> None:
    # Bitnami (redis 20.x, templates/sentinel/service.yaml): with sentinel.enabled the one
    # Service is named <redis fullname> (no -master Service) and serves the Sentinels on
    # sentinel.service.ports.sentinel (26379); sentinel.masterSet names the master.
    chart = render({"redis": SENTINEL})
    assert _redis_urls(chart) == {"redis+sentinel://redis:26379/mymaster/0"}
    for name in DEPLOYMENTS:
        assert "REDIS_PASSWORD" not in _env(chart, name)


def test_sentinel_url_follows_the_subchart_names() -> None:
    sentinel = {"enabled": True, "masterSet": "events", "service": {"ports": {"sentinel": 26400}}}
    values = {"redis": {**SENTINEL, "fullnameOverride": "", "sentinel": sentinel}}
    # Without fullnameOverride Bitnami's fullname is <release>-redis.
    assert _redis_urls(render(values)) == {"redis+sentinel://godel-redis:26400/events/0"}


@pytest.mark.parametrize(
    ("auth", "secret", "key"),
    [
        ({"enabled": True}, "redis", "redis-password"),
        ({"enabled": True, "existingSecret": "mine"}, "mine", "redis-password"),
        (
            {"enabled": True, "existingSecret": "mine", "existingSecretPasswordKey": "pw"},
            "mine",
            "pw",
        ),
    ],
)
def test_redis_password_comes_from_bitnamis_secret(
    auth: dict[str, Any], secret: str, key: str
) -> None:
    for redis, url in [
        ({**SENTINEL, "auth": auth}, "redis+sentinel://:$(REDIS_PASSWORD)@redis:26379/mymaster/0"),
        ({"auth": auth}, "redis://:$(REDIS_PASSWORD)@redis-master:6379/0"),
    ]:
        chart = render({"redis": redis})
        assert _redis_urls(chart) == {url}
        for name in DEPLOYMENTS:
            env = _env(chart, name)
            assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": secret,
                "key": key,
            }
            # Kubernetes expands $(REDIS_PASSWORD) only when it is defined earlier.
            assert list(env).index("REDIS_PASSWORD") < list(env).index("GODEL_REDIS_URL")
        assert ":<password>@" in chart.notes and "$(REDIS_PASSWORD)" not in chart.notes


def test_sentinel_needs_replication() -> None:
    message = render_error({"redis": {"sentinel": {"enabled": True}}})
    assert "replication" in message


def test_standalone_keeps_the_master_service() -> None:
    assert _redis_urls(render()) == {"redis://redis-master:6379/0"}


# --- KEDA ScaledObject for the workers ---------------------------------------------


def test_keda_scaled_object_scales_the_worker_deployment() -> None:
    chart = render(_keda({"minReplicas": 2, "maxReplicas": 20}))
    so = chart.get("ScaledObject", "godel-worker")
    check_crd(so)
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"] == {"name": "godel-worker"}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 20)
    assert labels_match(
        chart.get("Deployment", "godel-worker")["spec"]["selector"]["matchLabels"],
        so["metadata"]["labels"],
    )
    # KEDA owns the count: the Deployment sets none; the API keeps its own.
    assert "replicas" not in chart.get("Deployment", "godel-worker")["spec"]
    assert chart.get("Deployment", "godel-api")["spec"]["replicas"] == 2
    assert "fallback" not in so["spec"]


def test_keda_triggers_on_the_pending_list_and_the_undispatched_backlog() -> None:
    so = render(_keda()).get("ScaledObject", "godel-worker")
    assert [t["type"] for t in so["spec"]["triggers"]] == ["redis", "prometheus"]
    redis = trigger(so, "pending-queue")["metadata"]
    assert redis == {
        "address": "redis-master:6379",
        "databaseIndex": "0",
        "listName": "godel:queue:pending",
        "listLength": "100",
        "activationListLength": "0",
    }
    prom = trigger(so, "undispatched-backlog")["metadata"]
    assert prom == {
        "serverAddress": PROMETHEUS,
        "query": 'max(godel_fallback_queued_events{namespace="godel"})',
        "threshold": "100",
        "activationThreshold": "0",
    }


def test_keda_redis_trigger_with_sentinel_and_password() -> None:
    chart = render(_keda(redis={**SENTINEL, "auth": {"enabled": True}}))
    so = chart.get("ScaledObject", "godel-worker")
    redis = trigger(so, "pending-queue")
    assert redis["type"] == "redis-sentinel"
    assert redis["metadata"]["addresses"] == "redis:26379"
    assert redis["metadata"]["sentinelMaster"] == "mymaster"
    # KEDA reads *FromEnv from the target's container env (a secretKeyRef here); no
    # password is ever written into the ScaledObject.
    assert redis["metadata"]["passwordFromEnv"] == "REDIS_PASSWORD"
    assert redis["metadata"]["sentinelPasswordFromEnv"] == "REDIS_PASSWORD"
    assert "secretKeyRef" in _env(chart, "godel-worker")["REDIS_PASSWORD"]["valueFrom"]


@pytest.mark.parametrize(
    ("url", "kind", "expected"),
    [
        ("redis://cache.example:6380/2", "redis",
         {"address": "cache.example:6380", "databaseIndex": "2"}),
        ("rediss://:s3cret@cache.example/0", "redis",
         {"address": "cache.example:6379", "databaseIndex": "0", "enableTLS": "true"}),
        ("redis+sentinel://:s3cret@s1:26379,s2:26379/events/1", "redis-sentinel",
         {"addresses": "s1:26379,s2:26379", "sentinelMaster": "events", "databaseIndex": "1"}),
    ],
)  # fmt: skip
def test_keda_redis_trigger_from_an_external_url(
    url: str, kind: str, expected: dict[str, str]
) -> None:
    values = _keda(redis={"enabled": False}, externalRedis={"url": url})
    so = render(values).get("ScaledObject", "godel-worker")
    check_crd(so)
    redis = trigger(so, "pending-queue")
    assert redis["type"] == kind
    assert expected.items() <= redis["metadata"].items()
    assert "s3cret" not in repr(so)


def test_keda_password_env_for_an_external_redis() -> None:
    values = _keda(
        {"redis": {"passwordFromEnv": "CACHE_PASSWORD"}},
        redis={"enabled": False},
        externalRedis={"url": "redis+sentinel://s1:26379/events/0"},
    )
    meta = trigger(render(values).get("ScaledObject", "godel-worker"), "pending-queue")["metadata"]
    assert meta["passwordFromEnv"] == meta["sentinelPasswordFromEnv"] == "CACHE_PASSWORD"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"worker": {"autoscaling": {"keda": {"enabled": True}}}}, "serverAddress"),
        (_keda({"minReplicas": 5, "maxReplicas": 2}), "minReplicas"),
        (_keda(redis={"enabled": False}, externalRedis={"url": "redis+cluster://c:7000"}),
         "redis+cluster"),
    ],
)  # fmt: skip
def test_keda_refuses_what_it_cannot_scale_on(values: dict[str, Any], message: str) -> None:
    assert message in render_error(values)


def test_keda_custom_query_and_fallback() -> None:
    query = 'sum(godel_fallback_queued_events{job="godel"})'
    values = _keda(
        {"prometheus": {"serverAddress": PROMETHEUS, "query": query, "threshold": 50},
         "fallback": {"failureThreshold": 3, "replicas": 6}},
    )  # fmt: skip
    so = render(values).get("ScaledObject", "godel-worker")
    check_crd(so)
    meta = trigger(so, "undispatched-backlog")["metadata"]
    assert (meta["query"], meta["threshold"]) == (query, "50")
    assert so["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 6}


# --- HPA for the API -----------------------------------------------------------------


def test_api_hpa_owns_the_api_replica_count() -> None:
    chart = render({"api": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 8,
                                            "targetCPUUtilizationPercentage": 60}}})  # fmt: skip
    assert "replicas" not in chart.get("Deployment", "godel-api")["spec"]
    assert chart.get("Deployment", "godel-worker")["spec"]["replicas"] == 2
    hpa = chart.get("HorizontalPodAutoscaler", "godel-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "godel-api",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 60},
    }


def test_no_autoscaler_by_default() -> None:
    chart = render()
    assert chart.find("HorizontalPodAutoscaler", "godel-api") is None
    assert chart.find("ScaledObject", "godel-worker") is None
    assert chart.get("Deployment", "godel-api")["spec"]["replicas"] == 2


def test_api_hpa_needs_a_cpu_request() -> None:
    # null deletes a default in Helm's merge, as `--set api.resources.requests.cpu=null` does.
    values = {"api": {"autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": None}}}}
    assert "requests.cpu" in render_error(values)


# --- PodMonitor and worker probes ------------------------------------------------------


def test_pod_monitor_scrapes_the_worker_metrics_port() -> None:
    chart = render(
        {"monitoring": {"podMonitor": {"enabled": True, "labels": {"release": "kps"}}}},
        namespace="agents",
    )
    pm = chart.get("PodMonitor", "godel-worker")
    check_crd(pm)
    assert pm["metadata"]["labels"]["release"] == "kps"
    template = chart.get("Deployment", "godel-worker")["spec"]["template"]
    assert labels_match(pm["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
    assert not labels_match(
        pm["spec"]["selector"]["matchLabels"],
        chart.get("Deployment", "godel-api")["spec"]["template"]["metadata"]["labels"],
    )
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["agents"]}
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in _container(chart, "godel-worker")["ports"]}


@pytest.mark.parametrize("port", [9091, 9200])
def test_worker_probes_and_metrics_port_agree(port: int) -> None:
    chart = render({"worker": {"metricsPort": port}})
    worker = _container(chart, "godel-worker")
    assert {p["name"]: p["containerPort"] for p in worker["ports"]} == {"metrics": port}
    assert _env(chart, "godel-worker")["GODEL_WORKER_METRICS_PORT"]["value"] == str(port)
    for probe in ("livenessProbe", "readinessProbe"):
        assert worker[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_pod_monitor_off_by_default() -> None:
    assert render().find("PodMonitor", "godel-worker") is None


# --- scheduling, pod annotations, ServiceAccount ---------------------------------------

AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["godel"]}]}
            ]
        }
    }
}
TOLERATIONS = [{"key": "dedicated", "operator": "Equal", "value": "godel", "effect": "NoSchedule"}]


def test_scheduling_and_service_account_land_on_both_pod_specs() -> None:
    chart = render(
        {
            "nodeSelector": {"pool": "godel"},
            "tolerations": TOLERATIONS,
            "affinity": AFFINITY,
            "podAnnotations": {"example.com/team": "agents"},
            "serviceAccount": {"name": "godel-runner", "annotations": {"iam/role": "x"}},
        }
    )
    for name in DEPLOYMENTS:
        template = chart.get("Deployment", name)["spec"]["template"]
        pod = template["spec"]
        assert pod["nodeSelector"] == {"pool": "godel"}, name
        assert pod["tolerations"] == TOLERATIONS, name
        # Set, affinity replaces the API's default spread.
        assert pod["affinity"] == AFFINITY, name
        assert template["metadata"]["annotations"]["example.com/team"] == "agents", name
        assert pod["serviceAccountName"] == "godel-runner", name
        assert pod["automountServiceAccountToken"] is False, name
    assert (
        "checksum/secret"
        in chart.get("Deployment", "godel-api")["spec"]["template"]["metadata"]["annotations"]
    )
    sa = chart.get("ServiceAccount", "godel-runner")
    assert sa["metadata"]["annotations"] == {"iam/role": "x"}
    assert sa["automountServiceAccountToken"] is False


def test_default_scheduling() -> None:
    chart = render()
    api, worker = (_pod(chart, name) for name in DEPLOYMENTS)
    spread = api["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    (term,) = spread
    api_labels = chart.get("Deployment", "godel-api")["spec"]["template"]["metadata"]["labels"]
    assert labels_match(term["podAffinityTerm"]["labelSelector"]["matchLabels"], api_labels)
    for key in ("affinity", "nodeSelector", "tolerations"):
        assert key not in worker, key
    assert {api["serviceAccountName"], worker["serviceAccountName"]} == {"godel"}
    assert chart.get("ServiceAccount", "godel")["automountServiceAccountToken"] is False
    assert (
        "annotations" not in chart.get("Deployment", "godel-worker")["spec"]["template"]["metadata"]
    )


def test_an_existing_service_account() -> None:
    chart = render({"serviceAccount": {"create": False, "name": "ops", "automount": True}})
    assert not [d for d in chart.docs if d["kind"] == "ServiceAccount"]
    for name in DEPLOYMENTS:
        assert _pod(chart, name)["serviceAccountName"] == "ops"
        assert _pod(chart, name)["automountServiceAccountToken"] is True


def test_workers_roll_when_the_chart_database_url_changes() -> None:
    def checksum(url: str) -> str:
        chart = render({"postgresql": {"enabled": False}, "database": {"url": url}})
        meta = chart.get("Deployment", "godel-worker")["spec"]["template"]["metadata"]
        value: str = meta["annotations"]["checksum/database"]
        return value

    assert checksum("postgresql://a") != checksum("postgresql://b")


# --- handler plugins ------------------------------------------------------------------


def test_handler_modules_become_godel_handlers_on_api_and_workers() -> None:
    chart = render({"handlers": {"modules": ["acme.billing", "acme_audit"]}})
    for name in DEPLOYMENTS:
        assert _env(chart, name)["GODEL_HANDLERS"]["value"] == "acme.billing,acme_audit"
        (init,) = _pod(chart, name)["initContainers"]
        assert "GODEL_HANDLERS" not in {e["name"] for e in init["env"]}
    for name in DEPLOYMENTS:
        assert "GODEL_HANDLERS" not in _env(render(), name)


def test_handler_modules_must_be_importable_names() -> None:
    assert "modules" in render_error({"handlers": {"modules": ["acme-billing"]}})


# --- NOTES.txt ------------------------------------------------------------------------


def _token_command(notes: str) -> tuple[str, str, str]:
    m = re.search(
        r"kubectl -n (\S+) get secret (\S+) -o jsonpath='\{\.data\.([^}]+)\}' \| base64 -d",
        notes,
    )
    assert m, notes
    return m.group(1), m.group(2), m.group(3)


def test_notes_with_ingress() -> None:
    chart = render()
    notes = chart.notes
    assert "Dashboard:  http://api.godel.local/" in notes
    assert "admin token" in notes and "`read` scope" in notes
    assert "port-forward" not in notes
    # The printed command reads a key the rendered Secret really has.
    namespace, secret, key = _token_command(notes)
    assert namespace == "godel"
    assert key in chart.get("Secret", secret)["data"]


def test_notes_with_ingress_and_tls() -> None:
    notes = render({"ingress": {"tlsSecretName": "godel-tls"}}).notes
    assert "https://api.godel.local/" in notes and "http://api.godel.local" not in notes


def test_notes_without_ingress_name_no_host() -> None:
    notes = render({"ingress": {"enabled": False}}, namespace="agents").notes
    assert "api.godel.local" not in notes
    assert "kubectl -n agents port-forward svc/godel-api 8080:80" in notes
    assert "Dashboard:  http://127.0.0.1:8080/" in notes
    assert "`read` scope" in notes
    assert _token_command(notes) == ("agents", "godel-admin", "token")


def test_notes_name_an_existing_admin_secret() -> None:
    values = {"admin": {"existingSecret": "ops-admin", "existingSecretKey": "admin-token"}}
    assert _token_command(render(values).notes) == ("godel", "ops-admin", "admin-token")


def test_notes_follow_the_autoscalers_and_redis_mode() -> None:
    values = _keda(redis=SENTINEL, api={"autoscaling": {"enabled": True}})
    notes = render(values).notes
    assert "redis+sentinel://redis:26379/mymaster/0" in notes
    assert "HPA godel-api, 2-10 replicas" in notes
    assert "KEDA ScaledObject godel-worker, 1-10 replicas" in notes
    # The Prometheus trigger needs the API scraped: NOTES says so when the chart does not.
    assert "monitoring.serviceMonitor.enabled=false" in notes


# --- API keys (auth.*) ------------------------------------------------------------------

KEYS = [
    {"name": "grafana", "scopes": ["read"], "secret": "r" * 32},
    {"name": "ingest", "scopes": ["publish", "read"], "secret": "p" * 32},
]


def test_no_api_keys_by_default() -> None:
    chart = render()
    assert "GODEL_API_KEYS" not in _env(chart, "godel-api")
    assert chart.find("Secret", "godel-api-keys") is None


def test_api_keys_go_to_a_secret_read_by_the_api_only() -> None:
    import base64

    chart = render({"auth": {"apiKeys": KEYS}})
    secret = chart.get("Secret", "godel-api-keys")
    value = base64.b64decode(secret["data"]["keys"]).decode()
    assert value == f"grafana:read:{'r' * 32},ingest:publish+read:{'p' * 32}"
    ref = _env(chart, "godel-api")["GODEL_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "godel-api-keys", "key": "keys"}
    # Workers check no credential: they never get the keys.
    assert "GODEL_API_KEYS" not in _env(chart, "godel-worker")
    assert "r" * 32 not in str(chart.get("Deployment", "godel-api"))


def test_api_keys_from_an_existing_secret() -> None:
    values = {"auth": {"existingSecret": "ops-keys", "existingSecretKey": "godel", "apiKeys": KEYS}}
    chart = render(values)
    ref = _env(chart, "godel-api")["GODEL_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "ops-keys", "key": "godel"}
    assert chart.find("Secret", "godel-api-keys") is None


@pytest.mark.parametrize(
    "key",
    [
        {"name": "bad name", "scopes": ["read"], "secret": "x" * 32},
        {"name": "admin", "scopes": ["read"], "secret": "x" * 32},
        {"name": "k", "scopes": ["write"], "secret": "x" * 32},
        {"name": "k", "scopes": [], "secret": "x" * 32},
        {"name": "k", "scopes": ["read"], "secret": "short"},
        {"name": "k", "scopes": ["read"], "secret": "has,comma" + "x" * 16},
    ],
)
def test_api_keys_are_checked_by_the_schema(key: dict[str, Any]) -> None:
    assert render_error({"auth": {"apiKeys": [key]}})
