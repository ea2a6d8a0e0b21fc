"""Every `kubectl` command in docs/runbooks/*.md names things that exist in k8s/.

For each kubectl invocation in a ```bash block (also inside `$(...)` and after pipes):
the namespace is `godel` (or the applied file puts every object there), each resource
(kind/name, a StatefulSet pod such as redis-0, a claim such as redis-storage-redis-0)
exists, label selectors match a workload's pod labels, `-c` names a container, `-f`
files exist, patches merge into containers that exist (and never use `--type merge`
on a containers list, which would replace it), a secret's jsonpath key exists, and the
command run inside a pod (`-- redis-cli ...`) suits that pod's image, mounts and peers.
The negative tests feed wrong lines to the same checker: it must catch each.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from k8s_objects import (
    NAMESPACE,
    ROOT,
    WORKLOAD_KINDS,
    find,
    labels_match,
    load_file,
    load_manifests,
)

RUNBOOK_DIR = ROOT / "docs" / "runbooks"
RUNBOOKS = sorted(RUNBOOK_DIR.glob("*.md"))
KINDS = {
    **dict.fromkeys(("pod", "pods", "po"), "Pod"),
    **dict.fromkeys(("deploy", "deployment", "deployments"), "Deployment"),
    **dict.fromkeys(("sts", "statefulset", "statefulsets"), "StatefulSet"),
    **dict.fromkeys(("pvc", "persistentvolumeclaim", "persistentvolumeclaims"), "PVC"),
    **dict.fromkeys(("secret", "secrets"), "Secret"),
    **dict.fromkeys(("svc", "service", "services"), "Service"),
    **dict.fromkeys(("ing", "ingress", "ingresses"), "Ingress"),
}
VALUE_FLAGS = {"-n", "--namespace", "-l", "--selector", "-f", "--filename", "-c", "--container",
               "-p", "--patch", "--type", "-o", "--output"}  # fmt: skip
FLAG_NAMES = {"--namespace": "-n", "--selector": "-l", "--filename": "-f", "--container": "-c",
              "--patch": "-p", "--output": "-o"}  # fmt: skip
# Which image a program run inside a pod needs (the Godel image has nc: see Dockerfile).
IMAGE_OF = {"redis-cli": "redis", "godel": "godel", "nc": "godel", "pg_isready": "postgres",
            "psql": "postgres"}  # fmt: skip


def bash_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, command) of every ```bash block line, continuations joined."""
    out: list[tuple[int, str]] = []
    in_bash, pending = False, ""
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if line.startswith("```"):
            in_bash = not in_bash and line == "```bash"
        elif in_bash and line and not line.startswith("#"):
            pending += line
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            out.append((number, pending))
            pending = ""
    return out


def kubectl_commands(line: str) -> list[list[str]]:
    """The argument lists of every `kubectl` in a shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found: list[list[str]] = []
    current: list[str] | None = None
    for token in lexer:
        if "$(" in token:  # a command substitution inside a quoted word
            found += kubectl_commands(token[token.index("$(") + 2 : token.rindex(")")])
        elif token == "kubectl":
            current = []
            found.append(current)
        elif current is not None and set(token) <= set("|;&()<>"):
            current = None
        elif current is not None:
            current.append(token)
    return found


@dataclass
class Invocation:
    positional: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)
    in_pod: list[str] = field(default_factory=list)


def parse(args: list[str]) -> Invocation:
    inv = Invocation()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            inv.in_pod = args[i + 1 :]
            break
        if arg.startswith("-") and arg != "-":
            name, eq, value = arg.partition("=")
            if not eq and name in VALUE_FLAGS:
                value, i = args[i + 1], i + 1
            inv.flags[FLAG_NAMES.get(name, name)] = value
        else:
            inv.positional.append(arg)
        i += 1
    return inv


def workloads() -> list[dict[str, Any]]:
    return [d for d in load_manifests() if d.get("kind") in WORKLOAD_KINDS]


def pod_owner(pod: str) -> dict[str, Any] | None:
    """The StatefulSet whose ordinal pod this is (redis-0 -> StatefulSet redis)."""
    name, _, ordinal = pod.rpartition("-")
    sts = find("StatefulSet", name)
    if sts is None or not ordinal.isdigit():
        return None
    return sts if int(ordinal) < int(sts["spec"].get("replicas", 1)) else None


def claim_exists(pvc: str) -> bool:
    """<claim template>-<statefulset>-<ordinal>, e.g. redis-storage-redis-0."""
    for sts in (d for d in load_manifests() if d.get("kind") == "StatefulSet"):
        for template in sts["spec"].get("volumeClaimTemplates", []):
            prefix = f"{template['metadata']['name']}-"
            if pvc.startswith(prefix) and pod_owner(pvc.removeprefix(prefix)) is sts:
                return True
    return False


def resolve(kind: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the object a pod runs in, or the object itself; a problem or None)."""
    if kind == "Pod":
        owner = pod_owner(name)
        return owner, None if owner else f"no StatefulSet in k8s/ makes pod {name}"
    if kind == "PVC":
        return None, None if claim_exists(name) else f"no claim template makes PVC {name}"
    obj = find(kind, name)
    return obj, None if obj else f"no {kind} {NAMESPACE}/{name} in k8s/"


def target(inv: Invocation) -> tuple[str, str] | None:
    """The (kind, name) the command acts on, when it names one."""
    pos = inv.positional
    verb, rest = (pos[0], pos[1:]) if pos else ("", [])
    if verb == "rollout":
        rest = rest[1:]
    elif verb == "create" and rest[:1] == ["secret"]:
        rest = ["secret", rest[2]]
    if not rest:
        return None
    if "/" in rest[0]:
        kind, name = rest[0].split("/", 1)
        return KINDS[kind], name
    if rest[0] in KINDS:
        return (KINDS[rest[0]], rest[1]) if len(rest) > 1 else None
    return ("Pod", rest[0]) if verb in ("exec", "logs", "describe") else None


def check_namespace(inv: Invocation) -> list[str]:
    if "-n" in inv.flags:
        return [] if inv.flags["-n"] == NAMESPACE else [f"namespace {inv.flags['-n']}"]
    path = inv.flags.get("-f")
    if inv.positional[:1] == ["apply"] and path == "-":
        return []  # what is applied comes from the pipe (a `create -n godel --dry-run`)
    if inv.positional[:1] == ["apply"] and path and (ROOT / path).is_file():
        spaces = {d.get("metadata", {}).get("namespace") for d in load_file(ROOT / path)}
        return [] if spaces == {NAMESPACE} else [f"{path} puts objects outside {NAMESPACE}"]
    return ["no -n godel"]


def check_selector(selector: str) -> list[str]:
    wanted = dict(part.split("=", 1) for part in selector.split(","))
    for obj in workloads():
        labels = obj["spec"]["template"]["metadata"].get("labels", {})
        if obj["metadata"].get("namespace") == NAMESPACE and labels_match(wanted, labels):
            return []
    return [f"no pods in k8s/ match -l {selector}"]


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def check_patch(inv: Invocation, obj: dict[str, Any] | None) -> list[str]:
    body = json.loads(inv.flags["-p"])
    if obj is None or obj.get("kind") not in WORKLOAD_KINDS:
        return []
    patched = body.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    problems = []
    if patched and inv.flags.get("--type") in ("merge", "json"):
        problems.append("--type merge/json replaces the whole containers list")
    names = {c["name"] for c in containers_of(obj)}
    problems += [
        f"patch names container {c.get('name')}" for c in patched if c.get("name") not in names
    ]
    return problems


def check_in_pod(inv: Invocation, obj: dict[str, Any]) -> list[str]:
    name = inv.flags.get("-c")
    chosen = [c for c in containers_of(obj) if name in (None, c["name"])][:1]
    if not chosen:
        return [f"no container {name} in {obj['metadata']['name']}"]
    box, program = chosen[0], inv.in_pod[0]
    problems = []
    image = IMAGE_OF.get(program)
    if image is not None and not box["image"].startswith(image):
        problems.append(f"{program} in container {box['name']} (image {box['image']})")
    if program == "nc":
        host, port = inv.in_pod[-2], int(inv.in_pod[-1])
        svc = find("Service", host)
        if svc is None or port not in [p["port"] for p in svc["spec"]["ports"]]:
            problems.append(f"no Service {host} with port {port}")
    if program == "df":
        mounts = [m["mountPath"] for m in box.get("volumeMounts", [])]
        if inv.in_pod[-1] not in mounts:
            problems.append(f"{inv.in_pod[-1]} is not mounted in {box['name']}")
    return problems


def check_secret_key(inv: Invocation, obj: dict[str, Any]) -> list[str]:
    match = re.fullmatch(r"jsonpath=\{\.data\.(\w+)\}", inv.flags.get("-o", ""))
    if match is None:
        return []
    keys = {*obj.get("data", {}), *obj.get("stringData", {})}
    return (
        []
        if match.group(1) in keys
        else [f"Secret {obj['metadata']['name']} has no key {match.group(1)}"]
    )


def problems(args: list[str]) -> list[str]:
    """Everything in one kubectl invocation that k8s/ does not back up."""
    inv = parse(args)
    found = check_namespace(inv)
    if "-l" in inv.flags:
        found += check_selector(inv.flags["-l"])
    path = inv.flags.get("-f")
    if path not in (None, "-") and not (ROOT / path).is_file():
        found.append(f"no file {path}")
    ref = target(inv)
    obj = None
    if ref is not None:
        obj, problem = resolve(*ref)
        found += [problem] if problem else []
    if "-p" in inv.flags:
        found += check_patch(inv, obj)
    if inv.in_pod:
        found += check_in_pod(inv, obj) if obj is not None else ["exec into nothing known"]
    if obj is not None and obj.get("kind") == "Secret":
        found += check_secret_key(inv, obj)
    if "-c" in inv.flags and obj is not None and not inv.in_pod:
        found += check_in_pod(Invocation(inv.positional, inv.flags, ["true"]), obj)
    return found


def all_invocations() -> list[tuple[str, list[str]]]:
    return [
        (f"{path.name}:{number}", args)
        for path in RUNBOOKS
        for number, line in bash_lines(path)
        for args in kubectl_commands(line)
    ]


def test_the_runbooks_exist_and_use_kubectl() -> None:
    assert {p.name for p in RUNBOOKS} >= {
        "REDIS_OUTAGE.md",
        "DATABASE_FAILOVER.md",
        "AGENT_STORM.md",
    }
    per_file = {
        p.name: sum(1 for w, _ in all_invocations() if w.startswith(p.name)) for p in RUNBOOKS
    }
    assert per_file["REDIS_OUTAGE.md"] >= 20, per_file
    assert all(n >= 5 for n in per_file.values()), per_file


@pytest.mark.parametrize(
    ("where", "args"), all_invocations(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_kubectl_line_matches_the_manifests(where: str, args: list[str]) -> None:
    assert problems(args) == [], f"{where}: kubectl {shlex.join(args)}"


def test_the_rollback_file_recreates_redis() -> None:
    objects = {(d["kind"], d["metadata"]["name"]) for d in load_file(ROOT / "k8s" / "redis.yaml")}
    assert {("StatefulSet", "redis"), ("Service", "redis")} <= objects


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("kubectl exec redis-1 -n godel -- redis-cli ping", "makes pod redis-1"),
        ("kubectl get pods -n default -l app.kubernetes.io/name=redis", "namespace default"),
        ("kubectl get pods -l app.kubernetes.io/name=redis", "no -n godel"),
        ("kubectl logs -n godel -l app=redis", "match -l app=redis"),
        ("kubectl delete pvc redis-data-redis-0 -n godel", "PVC redis-data-redis-0"),
        (
            "kubectl rollout restart statefulset/redis-master -n godel",
            "StatefulSet godel/redis-master",
        ),
        ("kubectl apply -f k8s/redis-statefulset.yaml", "no file"),
        (
            "kubectl patch statefulset redis -n godel --type merge -p "
            """'{"spec":{"template":{"spec":{"containers":[{"name":"redis"}]}}}}'""",
            "replaces the whole containers list",
        ),
        (
            "kubectl patch statefulset redis -n godel -p "
            """'{"spec":{"template":{"spec":{"containers":[{"name":"redis-server"}]}}}}'""",
            "container redis-server",
        ),
        ("kubectl exec -n godel deploy/godel-api -- redis-cli ping", "redis-cli in container"),
        ("kubectl exec -n godel deploy/godel-api -- nc -zv redis 6380", "port 6380"),
        ("kubectl exec redis-0 -n godel -- df -h /var/lib/redis", "not mounted"),
        ("kubectl logs -n godel deploy/godel-api -c api", "no container api"),
        ("echo $(kubectl -n godel get secret godel-admin -o jsonpath='{.data.pw}')", "no key pw"),
    ],
)
def test_the_checker_catches_wrong_names(line: str, expected: str) -> None:
    [args] = kubectl_commands(line)
    found = problems(args)
    assert any(expected in p for p in found), found
