"""The package's import structure: no import loops, and stage dependencies as documented.

docs/ARCHITECTURE.md's table states which stage imports which; this test reads every module's
imports (module-level and inside functions) and fails on a loop or an undocumented dependency.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "adaptive_lora"

# Stage -> stages (and shared top-level modules) it may import; keep in step with the docs' table.
ALLOWED = {
    "layout": {"_hub", "errors"},
    "strategies": {"_io", "errors", "overrides", "paper_table", "layout"},
    "adapters": {"errors", "layout", "strategies"},
    "data": {"_hub", "_io", "errors", "keylock"},
    "evaluation": {"data"},
    "training": {"_io", "adapters", "data", "envinfo", "errors", "evaluation", "keylock", "layout", "overrides",
                 "schema", "strategies"},
    "experiments": {"_io", "errors", "keylock", "overrides", "schema", "training"},
    "reports": {"_io", "adapters", "errors", "paper_table", "schema"},
    "cli": {"_io", "adapters", "data", "errors", "experiments", "keylock", "layout", "overrides", "reports", "schema",
            "strategies", "training", "envinfo"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    mods = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                graph[name].update(subs or ([target] if target in mods else []))
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in mods)
    return graph


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def test_no_import_loops():
    graph, state, loops = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                loops.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in list(graph):
        if node not in state:
            visit(node, [])
    assert not loops, loops


def test_stage_dependencies_are_the_documented_ones():
    found = collections.defaultdict(set)
    for module, targets in _graph().items():
        for target in targets:
            if _stage(module) != _stage(target):
                found[_stage(module)].add(_stage(target))
    extra = {stage: sorted(deps - ALLOWED.get(stage, set())) for stage, deps in found.items()
             if stage in ALLOWED and deps - ALLOWED[stage]}
    assert not extra, f"undocumented imports (update docs/ARCHITECTURE.md and ALLOWED): {extra}"
