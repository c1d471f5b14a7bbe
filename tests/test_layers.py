"""Imports point one way: faces over the core, no cycles (issue 21).

The graph is read from the source (``ast``), every ``import`` of a ``forestguard`` module
counted wherever it stands: at the top, inside a function (a lazy import is still a
dependency) or under ``TYPE_CHECKING`` (a module that names another's types knows its shape).

Faces are the packages that present the core to someone: the command line, the server, the
dashboard, the reports and the pipelines. The core never imports a face, nothing but the
entry point imports the command line, and no two modules (nor two top-level packages)
import each other. What still breaks a rule is listed in ``KNOWN``, each with where it is
fixed; the test fails on anything new, and on a listed violation that is gone (so the list
shrinks as they are fixed).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "forestguard"
FACES = ("cli", "server", "dashboard", "reports", "pipelines")
ENTRY_POINT = "forestguard.__main__"

#: What still breaks a rule, each with where it is fixed (empty: nothing does).
KNOWN: dict[str, str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the forestguard modules it imports (``from pkg import name`` counts the submodule when ``name`` is one)."""
    modules = _modules()

    def known(name: str) -> str:
        while name not in modules:
            name = name.rsplit(".", 1)[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rsplit(".", 1)[0]
        targets = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.split(".")[0] == "forestguard"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                if module.split(".")[0] != "forestguard":
                    continue
                for alias in node.names:
                    submodule = f"{module}.{alias.name}"
                    targets.add(submodule if submodule in modules else known(module))
        targets.discard(name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _unit(module: str) -> str:
    """The top-level package or module a module belongs to (``stores`` for ``forestguard.stores.duckdb``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _face(module: str) -> str | None:
    unit = _unit(module)
    return unit if unit in FACES else None


def violations(graph: dict[str, set[str]]) -> set[str]:
    """Every broken rule, one line each."""
    found = set()
    for module, targets in graph.items():
        for target in targets:
            if _face(module) is None and _face(target) is not None and module != ENTRY_POINT:
                found.add(f"core imports a face: {module} -> {target}")
            if _face(target) == "cli" and _face(module) != "cli" and module != ENTRY_POINT:
                found.add(f"imports the command line: {module} -> {target}")
    found |= {f"cycle: {' <-> '.join(c)}" for c in _cycles(graph)}
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))
    found |= {f"packages: {' <-> '.join(c)}" for c in _cycles(units)}
    return found


def test_the_graph_is_read_from_every_module():
    graph = import_graph()
    assert "forestguard.stores.duckdb" in graph["forestguard.ingest"] or "forestguard.stores" in graph["forestguard.ingest"]
    assert "forestguard.reports.summary" in graph["forestguard.reports.place"]
    assert "forestguard.regions" in graph["forestguard.reports.place"]
    assert len(graph) > 80 and all(m.startswith("forestguard") for g in graph.values() for m in g)


def test_the_checks_catch_what_they_forbid():
    """Negative controls: a cycle, a core module importing a face, a face importing the CLI, a package cycle."""
    graph = {
        "forestguard.stats": {"forestguard.reports.country"},
        "forestguard.reports.country": {"forestguard.stats", "forestguard.cli.options"},
        "forestguard.render.layer": {"forestguard.stores.base"},
        "forestguard.stores.base": {"forestguard.render.image"},
        "forestguard.render.image": set(),
    }
    assert violations(graph) == {
        "core imports a face: forestguard.stats -> forestguard.reports.country",
        "imports the command line: forestguard.reports.country -> forestguard.cli.options",
        "cycle: forestguard.reports.country <-> forestguard.stats",
        "packages: render <-> stores",
        "packages: reports <-> stats",
    }


def test_imports_point_one_way():
    found = violations(import_graph())
    new = sorted(found - set(KNOWN))
    fixed = sorted(set(KNOWN) - found)
    assert not new, "new layering violations:\n" + "\n".join(new)
    assert not fixed, "fixed: take these out of KNOWN in tests/test_layers.py:\n" + "\n".join(fixed)
