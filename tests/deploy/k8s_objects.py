"""Load the plain Kubernetes manifests in k8s/ and look objects up by kind and name.

For tests that check names used elsewhere (the runbook's kubectl commands, the docs)
against the objects the manifests really create:

    from k8s_objects import find
    assert find("StatefulSet", "redis") is not None

(tests/deploy has no __init__.py, so pytest puts this directory on sys.path for the
test modules in it.)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "k8s"
NAMESPACE = "godel"

# Kinds whose pods come from spec.template.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})


def manifest_files() -> list[Path]:
    return sorted(K8S_DIR.glob("*.yaml"))


@cache
def _load_file(path: Path) -> tuple[dict[str, Any], ...]:
    with path.open(encoding="utf-8") as f:
        return tuple(doc for doc in yaml.safe_load_all(f) if doc)


def load_file(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of one manifest file."""
    return list(_load_file(path))


def load_manifests() -> list[dict[str, Any]]:
    """Every object of every k8s/*.yaml file, in file order."""
    return [doc for path in manifest_files() for doc in _load_file(path)]


def find(kind: str, name: str, namespace: str | None = NAMESPACE) -> dict[str, Any] | None:
    """The object of that kind and name (in that namespace; None: any), or None."""
    for doc in load_manifests():
        meta = doc.get("metadata", {})
        if doc.get("kind") != kind or meta.get("name") != name:
            continue
        if namespace is None or meta.get("namespace") == namespace:
            return doc
    return None


def get(kind: str, name: str, namespace: str | None = NAMESPACE) -> dict[str, Any]:
    """Like find(), but fails with a readable message when the object is missing."""
    obj = find(kind, name, namespace)
    assert obj is not None, f"no {kind} {namespace}/{name} in {K8S_DIR}"
    return obj


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def all_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """A workload's init containers and containers."""
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def container(obj: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A workload's container by name, or None."""
    for c in pod_spec(obj).get("containers", []):
        if c.get("name") == name:
            result: dict[str, Any] = c
            return result
    return None


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """True when every key=value of a matchLabels-style selector is in labels."""
    return all(labels.get(k) == v for k, v in selector.items())
