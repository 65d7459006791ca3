"""The package's import structure: no cycles, no private names across modules, layers one way.

Layers (STYLE.md §1): data -> encoders -> train -> models -> eval -> serve / cli. Imports placed
inside functions count as much as top-level ones: they are dependencies all the same. The same
check runs as ``python ../shared/tools/import_graph.py src lmrec`` where the team's tools are checked out.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "lmrec"

#: layer of each top-level module or subpackage; a module may import its own layer and lower ones
LAYER = {
    "config": 0,
    "data": 0,
    "datasets": 0,
    "encoders": 1,
    "train": 2,
    "models": 3,
    "eval": 4,
    "pipeline": 5,
    "serve": 5,
    "demo": 6,
    "cli": 7,
}
#: composition roots that may wire the service in
MAY_IMPORT_SERVE = {"serve", "demo", "cli"}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in (SRC / PKG).rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, str]]:
    """(imported module, imported name or "") pairs of ``name``, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(parts + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PKG:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, "") if sub in mods else (target, alias.name))
        elif isinstance(node, ast.Import):
            found.extend((a.name, "") for a in node.names if a.name.split(".")[0] == PKG)
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {}
    private = []
    for name, path in mods.items():
        deps = set()
        for target, imported in _imports(name, path, mods):
            if target not in mods or target == name or name.startswith(target + "."):
                continue  # a member does not depend on its own package's __init__
            deps.add(target)
            if imported.startswith("_") and not imported.startswith("__"):
                private.append(f"{name} imports {target}.{imported}")
        edges[name] = deps
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_cycle_finder_finds_a_known_cycle() -> None:
    # a -> b -> c -> a is one cycle; d -> a hangs off it and is not part of it
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_no_private_names_imported_across_modules() -> None:
    _, private = _graph()
    assert private == []


def test_imports_point_one_way() -> None:
    edges, _ = _graph()
    wrong = []
    for module, deps in edges.items():
        layer = _layer_of(module)
        if layer is None:
            continue  # lmrec/__init__.py re-exports the public names
        for dep in deps:
            target = _layer_of(dep)
            if target is None or target == layer:
                continue
            if target in ("serve", "cli") and layer not in MAY_IMPORT_SERVE:
                wrong.append(f"{module} -> {dep}")
            elif layer == "serve" and target == "train":
                wrong.append(f"{module} -> {dep}")  # the service scores; it never trains
            elif LAYER[target] > LAYER[layer]:
                wrong.append(f"{module} -> {dep}")
    assert wrong == []


def test_every_module_has_a_layer() -> None:
    names = {_layer_of(m) for m in _modules()} - {None}
    assert names == set(LAYER), f"unknown: {sorted(names - set(LAYER))}, gone: {sorted(set(LAYER) - names)}"
