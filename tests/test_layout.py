"""The package layout: no import cycles, layers import downwards, one backoff."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import clustermgr

PACKAGE = Path(clustermgr.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["clustermgr", *path.relative_to(PACKAGE).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of clustermgr that ``name`` imports, TYPE_CHECKING and local imports included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from . import x`` / ``from .pkg import mod``: the submodule if it is one.
            targets = [f"{module}.{alias.name}" for alias in node.names]
            targets = [t if t in known else module for t in targets]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every clustermgr module -> the clustermgr modules it imports."""
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _package_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Edges between modules, ignoring a package's ``__init__`` re-exporting its own modules."""
    return {
        (src, dst)
        for src, targets in graph.items()
        for dst in targets
        if not dst.startswith(src + ".")
    }


def test_find_cycles_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_in_clustermgr() -> None:
    graph = import_graph()
    # A package __init__ importing its own submodules is not a cycle: the
    # submodules import their siblings, not the package.
    edges = _package_imports(graph)
    pruned: dict[str, set[str]] = {name: set() for name in graph}
    for src, dst in edges:
        pruned[src].add(dst)
    assert find_cycles(pruned) == []


def test_sentinel_imports_nothing_from_cluster() -> None:
    graph = import_graph()
    offending = sorted(
        (src, dst)
        for src, targets in graph.items()
        if src.startswith("clustermgr.sentinel")
        for dst in targets
        if dst == "clustermgr.cluster" or dst.startswith("clustermgr.cluster.")
    )
    assert offending == []


_HAND_WRITTEN_BACKOFF = re.compile(r"\*\* *min\(|\b2 \*\* |random\.uniform\(")


def test_one_backoff() -> None:
    """Exponential waits go through clustermgr.backoff.Backoff, not hand-written formulas."""
    # refresh.py: a jittered period, not a backoff.
    allowed = {PACKAGE / "backoff.py", PACKAGE / "cluster" / "refresh.py"}
    offending = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in allowed and "testing" not in path.relative_to(PACKAGE).parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _HAND_WRITTEN_BACKOFF.search(line)
    ]
    assert offending == []
