"""The project's import graph, from the source alone (``ast``; nothing is imported).

    python tools/import_graph.py                 # this checkout's tunedepth/ package
    python tools/import_graph.py ROOT PKG [PKG]  # another checkout, e.g. an old one with several top-level packages
    python tools/import_graph.py --depth 2 ROOT PKG [PKG]  # its sub-packages (search.analysis, trainables.models)

Prints the edges between sub-packages (``tunedepth.models -> tunedepth.settings``: how many imports, and how many
of them are late, inside a function), then every import cycle: between sub-packages, and between modules.
A module's imports count at module level and inside functions alike (a late import is still a dependency).
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def modules(root: Path, packages: list[str]) -> dict[str, Path]:
    found = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> list[tuple[str, bool]]:
    """(imported project module, late?) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(n) for n in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` blocks are not run: skip them
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                top_level.discard(id(sub))
                sub._skip = True  # type: ignore[attr-defined]
    out = []
    for node in ast.walk(tree):
        if getattr(node, "_skip", False):
            continue
        late = id(node) not in top_level
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.append((t, late))
    return out


def group(module: str, depth: int) -> str:
    return ".".join(module.split(".")[:depth])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv: list[str]) -> int:
    depth = None
    if argv[:1] == ["--depth"]:
        depth, argv = int(argv[1]), argv[2:]
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    packages = argv[1:] or ["tunedepth"]
    mods = modules(root, packages)
    known = set(mods)
    if depth is None:  # several top-level packages: their graph; one: its sub-packages'
        depth = 1 if len(packages) > 1 else 2
    pkg_edges: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    mod_edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for target, late in imports_of(path, name, known):
            mod_edges[name].add(target)
            a, b = group(name, depth), group(target, depth)
            if a != b:
                pkg_edges[(a, b)][0] += 1
                pkg_edges[(a, b)][1] += late
    level = "packages" if depth == 1 else "sub-packages"
    print(f"{len(mods)} modules in {', '.join(packages)}; edges between {level} (imports, of which late):")
    for (a, b), (n, late) in sorted(pkg_edges.items()):
        print(f"  {a} -> {b}: {n}" + (f" ({late} late)" if late else ""))
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in pkg_edges:
        graph[a].add(b)
    pkg_cycles, mod_cycles = cycles(graph), cycles(mod_edges)
    print(f"cycles between {level}: {len(pkg_cycles)}")
    for c in pkg_cycles:
        print("  " + " <-> ".join(c))
    print(f"cycles between modules: {len(mod_cycles)}")
    for c in mod_cycles:
        print("  " + " <-> ".join(c))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
