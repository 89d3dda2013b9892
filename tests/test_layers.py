"""The package's layering, read from the source: imports go one way, and never in a cycle.

    base (_version, _pytree, _errors, _calculator, examples)
      <- (1) _engine <- (2) _fd <- (3) _check | _sweep | _landscape <- (4) report <- (5) cli

A module may import from its own subsystem and from layers below; subsystems of one layer
do not import each other (the base modules, and ``__main__`` with ``cli``, excepted).
Every import counts, including those inside functions (a function-level import is still
a dependency, only a hidden one).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parent.parent / "fdjax"

#: subsystem (the first component under fdjax) -> layer
LAYERS = {
    "_pytree": 0,
    "_errors": 0,
    "_calculator": 0,
    "_validate": 0,
    "_version": 0,
    "_json": 0,
    "_lazy": 0,
    "_calls": 0,
    "_cache": 0,
    "examples": 0,
    "_engine": 1,
    "_fd": 2,
    "_check": 3,
    "_sweep": 3,
    "_landscape": 3,
    "report": 4,
    "cli": 5,
    "__main__": 5,
    "pytest_plugin": 5,
}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """The fdjax modules that ``name`` imports (resolved to modules, anywhere in the file)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names]
            candidates = [c for c in subs if c in MODULES] or [target]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for c in candidates:
            if c in MODULES and c != name:
                found.add(c)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _subsystem(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package itself


def test_every_module_has_a_layer():
    unknown = sorted({s for s in map(_subsystem, MODULES) if s is not None and s not in LAYERS})
    assert not unknown, f"add these to LAYERS in tests/test_layers.py: {unknown}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _subsystem(n) is not None))
def test_imports_go_down_the_layers(name):
    sub = _subsystem(name)
    bad = []
    for target in sorted(GRAPH[name]):
        tsub = _subsystem(target)
        if tsub is None:
            bad.append(f"{target} (the package: import the subsystem instead)")
        elif tsub != sub and LAYERS[tsub] >= LAYERS[sub] and not (LAYERS[tsub] == LAYERS[sub] in (0, 5)):
            bad.append(f"{target} (layer {LAYERS[tsub]} from layer {LAYERS[sub]})")
    assert not bad, f"{name} imports upward or sideways: {bad}"


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(GRAPH[n]):
            # a package's __init__ re-exporting its own modules is not a cycle with them
            if m.startswith(n + "."):
                continue
            if state.get(m) == 1:
                cycle = stack[stack.index(m) :] + [m]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(GRAPH):
        if n not in state:
            visit(n)


def test_the_layering_test_sees_imports():
    """The walk must find real edges (a test that finds nothing would pass vacuously)."""
    assert "fdjax._engine.batch" in GRAPH["fdjax._fd.basis"] or "fdjax._engine" in GRAPH["fdjax._fd.basis"]
    assert any(t.startswith("fdjax._check") for t in GRAPH["fdjax.report._run"])
    assert sum(map(len, GRAPH.values())) > 80


def test_no_function_takes_more_than_eight_positional_parameters():
    """Long positional lists hide which value is which: configuration goes by keyword."""
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                count = len(node.args.posonlyargs) + len(node.args.args)
                if count > 8:
                    long.append(f"{name}.{node.name} ({count})")
    assert not long, f"more than 8 positional parameters: {long}"
