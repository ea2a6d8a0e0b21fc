"""Render helm/godel with Helm's own engine, and compute Helm's Chart.lock digest.

Rendering uses the helm-python-sdk package (import name `helm_python`): Helm's Go SDK
behind a C ABI, shipped inside the wheel from PyPI, so no helm binary is needed. It is in
the `test` extras. Outside CI a missing package skips the rendering tests; in CI (CI set)
it fails them, so rendering can never silently stop being checked.

    from helm_chart import render
    chart = render({"redis": {"sentinel": {"enabled": True}}})
    chart.get("Deployment", "godel-api"); chart.notes
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import yaml
from k8s_objects import ROOT

CHART = ROOT / "helm" / "godel"


def helm() -> Any:
    """The helm_python module, or a skip (a failure in CI) when it is not installed."""
    try:
        import helm_python
    except ImportError as err:
        if os.environ.get("CI"):
            pytest.fail(
                f"helm-python-sdk must be installed in CI (pip install -e '.[test]'): {err}"
            )
        pytest.skip("helm-python-sdk not installed: chart rendering not checked")
    return helm_python


@cache
def _chart() -> Any:
    return helm().Chart.load(str(CHART))


@dataclass
class Rendered:
    docs: list[dict[str, Any]]
    notes: str

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        for doc in self.docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        return None

    def get(self, kind: str, name: str) -> dict[str, Any]:
        doc = self.find(kind, name)
        assert doc is not None, f"no {kind} {name} in {self.ids()}"
        return doc

    def ids(self) -> list[tuple[str, str]]:
        return [(d["kind"], d["metadata"]["name"]) for d in self.docs]


def render(
    overrides: dict[str, Any] | None = None, release: str = "godel", namespace: str = "godel"
) -> Rendered:
    """Helm's `template` for an install: the values are checked against the schema first."""
    out = _chart().render(overrides or {}, name=release, namespace=namespace, is_install=True)
    docs: list[dict[str, Any]] = []
    notes = ""
    for name, text in sorted(out.items()):
        if name.endswith("NOTES.txt"):
            notes = text
        elif name.endswith((".yaml", ".yml")):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return Rendered(docs, notes)


def render_error(overrides: dict[str, Any]) -> str:
    """The message of the error Helm raises for these values (schema or template)."""
    errors = helm()
    with pytest.raises((errors.HelmValuesError, errors.HelmRenderError)) as info:
        render(overrides)
    return str(info.value)


def _lock_dependency(dep: dict[str, Any]) -> dict[str, Any]:
    # Helm's chart.Dependency as encoding/json writes it: fields in struct order,
    # `omitempty` on all but name and repository.
    out: dict[str, Any] = {"name": dep["name"]}
    if dep.get("version"):
        out["version"] = dep["version"]
    out["repository"] = dep.get("repository", "")
    for key in ("condition", "tags", "enabled", "import-values", "alias"):
        if dep.get(key):
            out[key] = dep[key]
    return out


def lock_digest(requested: list[dict[str, Any]], locked: list[dict[str, Any]]) -> str:
    """Helm's resolver.HashReq: sha256 of json.Marshal([2][]*Dependency{req, lock})."""
    pair = [[_lock_dependency(d) for d in requested], [_lock_dependency(d) for d in locked]]
    data = json.dumps(pair, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()
