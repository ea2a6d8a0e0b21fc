"""The package's shape holds: one room per job (see DESIGN.md, "Rooms").

- only `godel.fastlane` imports redis; only `godel.store` imports SQLAlchemy and Alembic;
- no import cycles between Godel's modules (imports at module level, as Python runs them);
- no module over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "godel"
MAX_LINES = 400
OWNERS = {"redis": "godel.fastlane", "sqlalchemy": "godel.store", "alembic": "godel.store"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.AST, here: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against this module's package
            base = here.rsplit(".", node.level)[0]
            return [f"{base}.{node.module}" if node.module else base]
        assert node.module is not None
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def all_imports(name: str) -> set[str]:
    """Every module named by an import anywhere in the file (functions included)."""
    tree = ast.parse(MODULES[name].read_text())
    return {m for node in ast.walk(tree) for m in _imported(node, name)}


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def load_time_imports(name: str) -> set[str]:
    """The Godel modules imported when this module loads (module level, not under
    `if TYPE_CHECKING:`), mapped to modules that exist."""
    found: set[str] = set()
    pending = list(ast.parse(MODULES[name].read_text()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and not _is_type_checking(node):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
        for target in _imported(node, name):
            if target in MODULES and target != name:
                found.add(target)
    # Importing a.b.c runs a/__init__ and a/b/__init__ first.
    for target in list(found):
        parts = target.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]))
    # A module's own packages are initialised before it, whatever it imports: not an edge.
    parts = name.split(".")
    return found - {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_third_party_stores_are_imported_only_in_their_room(name: str) -> None:
    for module in all_imports(name):
        top = module.split(".")[0]
        owner = OWNERS.get(top)
        if owner is not None:
            assert name == owner or name.startswith(owner + "."), f"{name} imports {module}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_longer_than_the_limit(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by job"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    # The package's own __init__ imports nothing at load time (it is lazy), so edges into
    # "godel" itself are what every submodule pays and cannot form a cycle through it.
    graph = {name: load_time_imports(name) - {"godel"} for name in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_root_loads_nothing_at_import() -> None:
    assert load_time_imports("godel") == set()
