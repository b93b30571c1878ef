"""The package reads as the pipeline: no import cycle anywhere (imports inside functions and under
TYPE_CHECKING count too), and lower layers never import higher ones."""
from __future__ import annotations

import ast
from pathlib import Path

import malmoi

PACKAGE = Path(malmoi.__file__).parent
LAYERS = ["errors", "version", "files", "sizes", "runs", "text", "data", "models", "training", "tasks", "use", "inspect", "serve", "cli"]
"""Bottom to top: a module may import its own layer and the ones before it."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every malmoi module ``path`` imports, wherever the import statement sits."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "malmoi"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.split(".")[0] != "malmoi":
                continue
            for alias in node.names:  # `from malmoi.x import y` imports the module x.y when y is one
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found - {module_name(path)}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_graph_sees_function_level_imports():
    assert "malmoi.models.lstm" in GRAPH["malmoi.tasks.lstm"]  # imported inside build_model


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1 on the path, 2 done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_lower_layers_never_import_higher_ones():
    wrong = [(a, b) for a, targets in GRAPH.items() for b in targets
             if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)]
    wrong += [(a, b) for a, targets in GRAPH.items() for b in targets if layer(a) is not None and b == "malmoi"]
    assert not wrong, "\n".join(f"{a} imports {b}" for a, b in sorted(wrong))


def test_every_module_sits_in_a_layer():
    assert {m for m in MODULES if layer(m) is None} == {"malmoi", "malmoi.__main__"}
