"""No import cycle in ``bbflow``: the module graph (imports under ``TYPE_CHECKING`` and inside
functions included) is acyclic, so every module can be read, and imported, after what it uses.

Importing ``a.b.c`` runs ``a/b/__init__.py`` first: from outside ``a.b``, that is an import
of the package too (a package ``__init__`` that re-exports its modules' names makes this matter).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "bbflow"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> nx.DiGraph:
    """bbflow module -> the bbflow modules it imports (``from pkg import name`` names pkg.name if that is a module)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            for target in targets:
                while target and target not in files:  # `import a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph.add_edge(name, target)
                    _add_packages(graph, name, target, files)
    return graph


def _add_packages(graph: nx.DiGraph, importer: str, target: str, files: dict[str, Path]) -> None:
    """Edges to the packages ``target`` is in that ``importer`` is outside of (their ``__init__`` runs first)."""
    package = target.rpartition(".")[0]
    while package:
        if package in files and importer != package and not importer.startswith(package + "."):
            graph.add_edge(importer, package)
        package = package.rpartition(".")[0]


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert graph.has_edge("bbflow.runtime.executor", "bbflow.runtime.scheduler")
    assert graph.has_edge("bbflow.compiler.pipeline", "bbflow.compiler.checker")
    assert graph.has_edge("bbflow.cli", "bbflow.compiler")  # an import inside a function counts
    assert graph.has_edge("bbflow.project_schema", "bbflow.runtime")  # the package of a module imported


def test_no_import_cycle_in_bbflow():
    cycles = sorted(nx.simple_cycles(import_graph()), key=len)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in cycles[:10])


def test_the_runtime_parts_of_the_executor_do_not_import_it():
    graph = import_graph()
    for part in ("run_state", "scheduler", "steps", "calls", "rollback", "run_events"):
        assert not nx.has_path(graph, f"bbflow.runtime.{part}", "bbflow.runtime.executor"), part


def test_the_command_line_and_the_language_server_use_the_compilers_public_api():
    graph = import_graph()
    public = {"bbflow.compiler", "bbflow.compiler.ast"}  # `from bbflow.compiler import ast` names the module
    users = ["bbflow.cli", *(m for m in graph if m.startswith("bbflow.lsp"))]
    private = sorted((user, used) for user in users for used in graph.successors(user)
                     if used.startswith("bbflow.compiler") and used not in public)
    assert private == []
