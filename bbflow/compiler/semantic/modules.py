"""The module graph: the standard library, imports and import cycles.

``load_stdlib`` parses the ``.flow`` files shipped in ``bbflow/stdlib``
(``std/prelude.flow`` is the module ``std.prelude``). ``link`` gives every
module its namespace: own declarations, ``from M import a as b`` and
``import M as m`` bindings, and the implicit ``std.prelude``. It reports
BBF103 for a module that does not exist, BBF101 for a member a module does not
declare, BBF102 for a name bound twice, and BBF104 once per import cycle, at the
import that closes it in the cycle's first module. A failed import binds its
names as UNKNOWN symbols, so their uses are not reported again.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.diagnostics.suggest import closest
from bbflow.compiler.semantic.resolve import did_you_mean, duplicate
from bbflow.compiler.semantic.symbols import ModuleScope, Symbol, SymKind
from bbflow.compiler.source import SUFFIX, SourceFile, Span
from bbflow.compiler.syntax.parser import parse_module

PRELUDE = "std.prelude"
STDLIB_PACKAGE = "bbflow.stdlib"
STDLIB_FILE = "<stdlib>/"  # how spans name the standard library's files: <stdlib>/std/prelude.flow


def is_std(module: str) -> bool:
    """Is ``module`` part of the standard library (``std`` or a module below it)?"""
    return module == "std" or module.startswith("std.")


def _stdlib_files() -> list[tuple[str, str, str]]:
    """(module name, path in the package, text) of every ``.flow`` file in ``bbflow/stdlib``, in path order."""
    found: list[tuple[str, str, str]] = []

    def walk(folder: Traversable, prefix: tuple[str, ...]) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith((".", "_")):
                walk(entry, (*prefix, entry.name))
            elif entry.name.endswith(SUFFIX):
                stem = entry.name[: -len(SUFFIX)]
                path = "/".join((*prefix, entry.name))
                found.append((".".join((*prefix, stem)), path, entry.read_text(encoding="utf-8")))

    walk(resources.files(STDLIB_PACKAGE), ())
    return found


def stdlib_sources() -> dict[str, str]:
    """Module name -> text of every ``.flow`` file shipped in ``bbflow/stdlib`` (``std.prelude``)."""
    return {name: text for name, _, text in _stdlib_files()}


def load_stdlib(diags: Diagnostics) -> list[ast.Module]:
    """Parse every ``.flow`` file of the standard library, named by its path (``std.prelude``)."""
    return [parse_module(SourceFile(STDLIB_FILE + path, text), name, diags) for name, path, text in _stdlib_files()]


def _dotted(parts: tuple[ast.Ident, ...]) -> str:
    return ".".join(p.name for p in parts)


def _path_span(parts: tuple[ast.Ident, ...]) -> Span:
    return parts[0].span.to(parts[-1].span)


def link(modules: dict[str, ast.Module], own: dict[str, dict[str, Symbol]], broken: set[str],
         diags: Diagnostics) -> dict[str, ModuleScope]:
    """Every module's namespace (see the module docstring)."""
    prelude = own.get(PRELUDE, {})
    scopes: dict[str, ModuleScope] = {}
    graph: dict[str, dict[str, ast.Import]] = {}  # module -> module it imports -> the (first) import
    for name, module in modules.items():
        graph[name] = {}
        scope = ModuleScope(module, own[name], {}, prelude if name != PRELUDE else {}, name in broken)
        scopes[name] = scope
        for imp in module.imports:
            _bind_import(imp, scope, modules, own, broken, diags, graph)
    _report_cycles(graph, modules, diags)
    return scopes


def _bind_import(imp: ast.Import, scope: ModuleScope, modules: dict[str, ast.Module],
                 own: dict[str, dict[str, Symbol]], broken: set[str], diags: Diagnostics,
                 graph: dict[str, dict[str, ast.Import]]) -> None:
    target = _dotted(imp.module)
    found = target in modules
    cut = scope.name in broken and _holds_error(_path_span(imp.module), diags)
    if found:
        graph[scope.name].setdefault(target, imp)
    elif not cut:
        package = f"{target}.__init__"  # a folder's __init__.flow is imported by its path too
        unimportable = _unimportable_match(target, modules)
        diags.error(codes.BBF103, f"module `{target}` not found", _path_span(imp.module),
                    help=(f"did you mean `{package}`?" if package in modules and package != scope.name
                          else _rename_help(unimportable, modules) if unimportable is not None
                          else did_you_mean(target, [m for m in modules if m != scope.name and _importable(m)])),
                    notes=("a module is named by its path under the source root: "
                           "`cell/arm.flow` is `cell.arm`, `cell/__init__.flow` is `cell.__init__`",
                           *([f"`{modules[unimportable].file}` is the module `{unimportable}`, which no import "
                              "can name: each part of a module's path must be a name (letters, digits and `_`, "
                              "not starting with a digit)"] if unimportable is not None else [])))
    if isinstance(imp, ast.ModuleImport):
        ident = imp.alias or imp.module[-1]
        kind = SymKind.MODULE if found else SymKind.UNKNOWN
        _bind(scope, ident, Symbol(kind, ident.name, target, target, target), diags)
        return
    members = own.get(target, {})
    for item in imp.names:
        ident = item.alias or item.name
        sym = members.get(item.name.name) if found else None
        if sym is None:
            if found and target not in broken and not (scope.name in broken and _holds_error(item.span, diags)):
                signal = any(isinstance(d, ast.SignalDecl) and d.type.text == item.name.name for d in modules[target].decls)
                diags.error(codes.BBF101, f"module `{target}` has no `{item.name.name}`", item.name.span,
                            help=did_you_mean(item.name.name, members),
                            notes=(f"`{item.name.name}` is a signal of `{target}`: signals are not imported, "
                                   "every module of the program uses them by name",) if signal else ())
            sym = Symbol(SymKind.UNKNOWN, ident.name, f"{target}.{item.name.name}", None, target)
        else:
            sym = Symbol(sym.kind, ident.name, sym.qualname, sym.decl, sym.module)
        _bind(scope, ident, sym, diags)


def _holds_error(span: Span, diags: Diagnostics) -> bool:
    """Is there an error inside the name of an import, or at its end? The parser then cut it short
    (``from my-cell.x import A`` reads as ``from my import A``): it is not the name that was written."""
    return any(d.is_error and d.span.file == span.file
               and (span.line, span.column) <= (d.span.line, d.span.column) <= (span.end_line, span.end_column)
               for d in diags)


def _importable(module: str) -> bool:
    return all(part.isidentifier() for part in module.split("."))


def _unimportable_match(target: str, modules: dict[str, ast.Module]) -> str | None:
    """A module that no import can name (``my-cell.tools``, from ``my-cell/tools.flow``) which ``target``
    was meant to name: the same path with `_` for what is not a name (``my_cell.tools``), or its start
    (``my``), or close to it."""
    wanted = {m: ".".join(_as_name(part) for part in m.split(".")) for m in modules if not _importable(m)}
    for module, fixed in wanted.items():
        if target == fixed or re.match(re.escape(target) + r"[^\w.]", module):
            return module
    near = closest(target, wanted, limit=1)
    return near[0] if near else None


def _as_name(part: str) -> str:
    """``my-cell`` -> ``my_cell``: what a file or folder could be renamed to, to be imported."""
    name = re.sub(r"\W", "_", part)
    return name if name.isidentifier() else f"_{name}"


def _rename_help(module: str, modules: dict[str, ast.Module]) -> str:
    parts = module.split(".")
    at = next(i for i, part in enumerate(parts) if not part.isidentifier())
    what = "file" if at == len(parts) - 1 else "folder"
    path = "/".join(parts[: at + 1]) + ("/" if what == "folder" else ".flow")
    return f"rename the {what} `{path}` to `{_as_name(parts[at])}`, and import it as `" + \
        ".".join(_as_name(part) for part in parts) + "`"


def _bind(scope: ModuleScope, ident: ast.Ident, sym: Symbol, diags: Diagnostics) -> None:
    """Bind an imported name; BBF102 at the later of two bindings of one name."""
    earlier = _earlier_import(scope, ident)
    if earlier is not None:  # imported twice: reported here, so that a declaration of it is reported once
        duplicate(diags, "name", ident, earlier.span)
        return
    clash = scope.imported.get(ident.name) or scope.own.get(ident.name)
    if clash is None:
        scope.imported[ident.name] = sym
        return
    first = _binding_ident(scope, clash)
    if first is not None and (first.span.line, first.span.column) > (ident.span.line, ident.span.column):
        duplicate(diags, "name", first, ident)
    else:
        duplicate(diags, "name", ident, first.span if first is not None else scope.module.span)


def _imported_idents(module: ast.Module) -> Iterator[ast.Ident]:
    """The names an import binds, in the order written."""
    for imp in module.imports:
        if isinstance(imp, ast.ModuleImport):
            yield imp.alias or imp.module[-1]
        else:
            yield from (item.alias or item.name for item in imp.names)


def _earlier_import(scope: ModuleScope, ident: ast.Ident) -> ast.Ident | None:
    """An import of this module that binds the name of ``ident`` before it."""
    return next((i for i in _imported_idents(scope.module) if i.name == ident.name
                 and (i.span.line, i.span.column) < (ident.span.line, ident.span.column)), None)


def _binding_ident(scope: ModuleScope, sym: Symbol) -> ast.Ident | None:
    """Where ``sym`` is bound in this module: its declaration's name or its import."""
    if sym.module == scope.name and sym.decl is not None and hasattr(sym.decl, "name"):
        return sym.decl.name
    return next((i for i in _imported_idents(scope.module) if i.name == sym.name), None)


def _report_cycles(imports: dict[str, dict[str, ast.Import]], modules: dict[str, ast.Module],
                   diags: Diagnostics) -> None:
    """BBF104 once per cycle: at the import in the cycle's first module (by name) that starts it."""
    try:
        graphlib.TopologicalSorter(imports).prepare()
        return  # no cycle: the common case never needs networkx
    except graphlib.CycleError:
        pass
    import networkx as nx  # imported late: it costs a quarter of a short check's start

    graph = nx.DiGraph()
    graph.add_nodes_from(imports)
    graph.add_edges_from((a, b, {"at": imp}) for a, targets in imports.items() for b, imp in targets.items())
    for component in nx.strongly_connected_components(graph):
        start = min(component)
        if len(component) == 1 and not graph.has_edge(start, start):
            continue
        sub = graph.subgraph(component)
        nxt = min(sub.successors(start))
        path = [start, *nx.shortest_path(sub, nxt, start)] if nxt != start else [start, start]
        imp: ast.Import = graph.edges[start, nxt]["at"]
        itself = nxt == start
        diags.error(codes.BBF104, "import cycle: " + " -> ".join(f"`{m}`" for m in path), _path_span(imp.module),
                    notes=("a module sees its own declarations without importing itself" if itself else
                           "modules must import each other in one direction; move what both need "
                           "into a module of its own",),
                    help="remove the import" if itself else None)
