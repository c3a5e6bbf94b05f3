"""The package's import graph between its sub-packages, from the source (``ast``, nothing imported).

Prints each sub-package with its line count and the sub-packages it imports, checks that the
graph has no circle (between sub-packages, nor between modules), and that every import goes down the order :data:`LAYERS` states (the order
docs/architecture.md gives). Exit status 1, with the offending imports, when either fails.

    python scripts/import_graph.py
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = "raytune_k8s"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Lowest first: a unit may import only units listed before it (and itself). A unit is a
#: sub-package, or a top-level module (cli, __init__, __main__).
LAYERS: list[str] = [
    "spec",
    "files",
    "collectors",
    "_tune",
    "stopping",
    "results",
    "trials",
    "search",
    "recovery",
    "scaling",
    "reporting",
    "sim",
    "experiment",
    "kubeflow",
    "__init__",
    "cli",
    "__main__",
]


def unit_of(module: str) -> str:
    """``raytune_k8s.search.actor.host`` -> ``search``; ``raytune_k8s.cli`` -> ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every module of this package that ``path`` imports (at any depth of the file), with its line."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                # ``from . import x`` names a sub-module when x is one
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if _is_module(sub) else target, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith(PACKAGE + ".")]
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def graph() -> tuple[dict[str, set[str]], dict[str, int], list[str]]:
    """(unit -> units it imports, unit -> lines of code, upward imports as messages)."""
    edges: dict[str, set[str]] = defaultdict(set)
    lines: dict[str, int] = defaultdict(int)
    upward: list[str] = []
    order = {unit: i for i, unit in enumerate(LAYERS)}
    for path in sorted(ROOT.rglob("*.py")):
        source = module_of(path)
        unit = unit_of(source)
        lines[unit] += len(path.read_text().splitlines())
        edges.setdefault(unit, set())
        for target, lineno in imports_of(path):
            dest = unit_of(target)
            if dest == unit:
                continue
            edges[unit].add(dest)
            if unit not in order or dest not in order:
                upward.append(f"{path.relative_to(ROOT.parent)}:{lineno}: {unit} or {dest} is not in LAYERS")
            elif order[dest] > order[unit]:
                upward.append(f"{path.relative_to(ROOT.parent)}:{lineno}: {unit} imports {target} ({dest} is above it)")
    return dict(edges), dict(lines), upward


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle for each strongly connected part of the graph (Tarjan's algorithm, linear in
    the graph's size: listing every circle instead grows exponentially once one is there)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.append(top)
                if top == node:
                    break
            parts.append(sorted(part))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for start in sorted(set(edges) | {t for targets in edges.values() for t in targets}):
        if start not in index:
            strong(start)
    return [_circle_in(part, edges) + ([f"[{len(part)} in circle: {', '.join(part)}]"] if len(part) > 2 else [])
            for part in parts if len(part) > 1 or part[0] in edges.get(part[0], ())]


def _circle_in(part: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest circle through the first node of a strongly connected ``part``."""
    start, members = part[0], set(part)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return list(reversed(path)) + [start]
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]


def module_graph() -> dict[str, set[str]]:
    """module -> modules of this package it imports (a package's ``__init__`` is its name)."""
    return {module_of(path): {t for t, _ in imports_of(path) if t != module_of(path)} for path in sorted(ROOT.rglob("*.py"))}


def main() -> int:
    edges, lines, upward = graph()
    # A package's __init__ re-exporting its modules is not a circle with them: drop module -> own package.
    modules = {m: {t for t in deps if not m.startswith(t + ".")} for m, deps in module_graph().items()}
    for unit in LAYERS:
        if unit in edges:
            print(f"{unit:<12} {lines[unit]:>6} lines  imports: {', '.join(sorted(edges[unit], key=lambda u: LAYERS.index(u) if u in LAYERS else -1)) or '-'}")
    print(f"{'total':<12} {sum(lines.values()):>6} lines")
    loops = cycles(edges) + cycles(modules)
    for loop in loops:
        path, extra = (loop[:-1], " " + loop[-1]) if loop[-1].startswith("[") else (loop, "")
        print("circle: " + " -> ".join(path) + extra, file=sys.stderr)
    for message in upward:
        print("upward: " + message, file=sys.stderr)
    return 1 if loops or upward else 0


if __name__ == "__main__":
    sys.exit(main())
