"""The package's import structure, read statically from the source (every import statement,
function-local ones included, since those run too):

- the pure core `fcrm_ray/toolcall/` imports only the standard library and itself (no Ray, torch,
  omegaconf, and nothing from the rest of the package: the command-line code around it lives in
  `data/`);
- the package's module graph has no cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "fcrm_ray"


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(p.relative_to(PKG.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def _imports(path: Path) -> list[str]:
    """Every module named by an import statement of `path` (for `from a import b`: `a`, and `a.b`)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for imp in _imports(path):
            while imp and imp not in mods:  # `fcrm_ray.x.y.func` -> module `fcrm_ray.x.y`
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                deps.add(imp)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_toolcall_core_imports_only_stdlib_and_itself():
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for path in sorted((PKG / "toolcall").rglob("*.py")):
        for imp in _imports(path):
            top = imp.split(".")[0]
            if imp.startswith("fcrm_ray.toolcall") or top in stdlib or top == "__future__":
                continue
            bad.append(f"{path.relative_to(PKG)}: {imp}")
    assert not bad, "the pure core imports outside itself and the standard library:\n" + "\n".join(bad)


def test_package_import_graph_has_no_cycle():
    graph = _graph()
    assert "fcrm_ray.toolcall.verify" in graph and "fcrm_ray.data.bench" in graph  # the scan sees the package
    assert "fcrm_ray.data.pairs" in graph["fcrm_ray.data.bench"]  # and its edges
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
