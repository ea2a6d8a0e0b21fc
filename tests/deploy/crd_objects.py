"""Structural checks for the custom resources kubernetes-validate has no schema for:
Prometheus Operator (ServiceMonitor, PodMonitor, PrometheusRule) and KEDA (ScaledObject).

Each check asserts the fields the operator requires and rejects unknown ones, as strict
validation would; `check_crd` picks the check by apiVersion and kind. The plain manifests
and the rendered chart go through the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

MONITORING = "monitoring.coreos.com/v1"
KEDA = "keda.sh/v1alpha1"
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec"}


def is_duration(s: Any) -> bool:
    return isinstance(s, str) and re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", s) is not None


def _check_metadata(doc: dict[str, Any]) -> None:
    assert set(doc) == TOP_LEVEL, sorted(doc)
    meta = doc["metadata"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]), meta["name"]
    for key in ("labels", "annotations"):
        assert all(isinstance(v, str) for v in meta.get(key, {}).values()), meta


def _check_selector(selector: dict[str, Any]) -> None:
    assert set(selector) <= {"matchLabels", "matchExpressions"} and selector
    assert all(isinstance(v, str) for v in selector.get("matchLabels", {}).values())


def _check_endpoint(endpoint: dict[str, Any]) -> None:
    assert isinstance(endpoint.get("port"), str) and endpoint["port"], endpoint
    assert endpoint.get("path", "/metrics").startswith("/")
    for key in ("interval", "scrapeTimeout"):
        assert key not in endpoint or is_duration(endpoint[key]), (key, endpoint)


def _check_monitor(doc: dict[str, Any], endpoints: str) -> None:
    """A ServiceMonitor or a PodMonitor: to these checks, they differ only in the name of
    their endpoint list."""
    spec = doc["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", endpoints, "jobLabel"}
    _check_selector(spec["selector"])
    assert spec[endpoints]
    for endpoint in spec[endpoints]:
        _check_endpoint(endpoint)


def check_service_monitor(doc: dict[str, Any]) -> None:
    _check_monitor(doc, "endpoints")


def check_pod_monitor(doc: dict[str, Any]) -> None:
    _check_monitor(doc, "podMetricsEndpoints")


def check_prometheus_rule(doc: dict[str, Any]) -> None:
    assert set(doc["spec"]) == {"groups"}
    for group in doc["spec"]["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()


SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced",
    "triggers",
}  # fmt: skip
TRIGGER_KEYS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}


def check_scaled_object(doc: dict[str, Any]) -> None:
    spec = doc["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC, sorted(set(spec) - SCALED_OBJECT_SPEC)
    ref = spec["scaleTargetRef"]
    assert set(ref) <= {"name", "apiVersion", "kind", "envSourceContainerName"} and ref["name"]
    for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        assert key not in spec or (isinstance(spec[key], int) and spec[key] >= 0), (key, spec)
    assert spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100)
    if "fallback" in spec:
        fallback = spec["fallback"]
        assert set(fallback) <= {"failureThreshold", "replicas", "behavior"}
        assert isinstance(fallback["failureThreshold"], int) and fallback["failureThreshold"] > 0
        assert isinstance(fallback["replicas"], int) and fallback["replicas"] >= 0
    assert spec["triggers"]
    names = [t.get("name") for t in spec["triggers"] if "name" in t]
    assert len(names) == len(set(names)), names
    for trigger in spec["triggers"]:
        assert set(trigger) <= TRIGGER_KEYS, trigger
        assert isinstance(trigger["type"], str) and trigger["type"]
        assert trigger.get("metricType", "AverageValue") in {"AverageValue", "Value", "Utilization"}
        # KEDA's CRD types trigger metadata as map[string]string: a bare number is rejected.
        meta = trigger["metadata"]
        assert meta and all(isinstance(v, str) for v in meta.values()), meta


CHECKS: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
    (MONITORING, "ServiceMonitor"): check_service_monitor,
    (MONITORING, "PodMonitor"): check_pod_monitor,
    (MONITORING, "PrometheusRule"): check_prometheus_rule,
    (KEDA, "ScaledObject"): check_scaled_object,
}


def is_crd(doc: dict[str, Any]) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CHECKS


def check_crd(doc: dict[str, Any]) -> None:
    _check_metadata(doc)
    CHECKS[(doc["apiVersion"], doc["kind"])](doc)


def trigger(scaled_object: dict[str, Any], name: str) -> dict[str, Any]:
    """A ScaledObject's trigger by name."""
    found = [t for t in scaled_object["spec"]["triggers"] if t.get("name") == name]
    assert len(found) == 1, f"no single trigger {name!r} in {scaled_object['spec']['triggers']}"
    result: dict[str, Any] = found[0]
    return result
