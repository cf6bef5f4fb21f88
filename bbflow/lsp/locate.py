"""Positions, ranges and finding the syntax under the cursor.

Positions here are 0-based lines and 0-based *characters* (code points), the
compiler's columns minus one; the server converts them to the client's
position encoding (UTF-16 by default). Spans (1-based, end exclusive) become
ranges one to one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from bbflow.compiler import PRELUDE, STDLIB_FILE, STDLIB_PACKAGE, Facts, Span, ast


@attrs.frozen(slots=True, order=True)
class Pos:
    line: int  # 0-based
    character: int  # 0-based, in code points


@attrs.frozen(slots=True)
class Range:
    start: Pos
    end: Pos

    @classmethod
    def of(cls, span: Span) -> Range:
        return cls(Pos(span.line - 1, span.column - 1), Pos(span.end_line - 1, span.end_column - 1))


@attrs.frozen(slots=True)
class Location:
    path: Path
    range: Range


def file_path(span_file: str) -> Path | None:
    """The file a span names, on disk: a program file, or a standard library file shipped in the package."""
    if span_file.startswith(STDLIB_FILE):
        shipped = resources.files(STDLIB_PACKAGE).joinpath(span_file[len(STDLIB_FILE):])
        return Path(str(shipped)) if isinstance(shipped, Path) else None
    return Path(span_file) if span_file and not span_file.startswith("<") else None


def in_stdlib(path: Path) -> bool:
    """Is ``path`` a file of the standard library shipped in the package (a jump to a definition opens
    one)? Not a module of any program: compiled as one, each declaration would clash with itself."""
    shipped = resources.files(STDLIB_PACKAGE)
    return isinstance(shipped, Path) and shipped.resolve() in path.parents


def location(span: Span) -> Location | None:
    path = file_path(span.file)
    return Location(path, Range.of(span)) if path is not None else None


def contains(span: Span, pos: Pos) -> bool:
    here = (pos.line + 1, pos.character + 1)
    return (span.line, span.column) <= here < (span.end_line, span.end_column)


def children(node: Any) -> Iterator[Any]:
    """The syntax nodes directly below ``node``, in field order."""
    for field in attrs.fields(type(node)):
        yield from _nodes(getattr(node, field.name))


def _nodes(value: Any) -> Iterator[Any]:
    if isinstance(value, tuple):
        for item in value:
            yield from _nodes(item)
    elif attrs.has(type(value)) and hasattr(value, "span"):
        yield value


def path_at(module: ast.Module, pos: Pos) -> list[Any]:
    """The nodes from ``module`` down to the innermost one containing ``pos``.

    A cursor just after a word (``pick|``) counts as on it, as editors expect
    when they ask about the word the cursor touches.
    """
    path = _descend(module, pos)
    if not isinstance(path[-1], (ast.Ident, ast.SignalType)) and pos.character > 0:
        before = _descend(module, Pos(pos.line, pos.character - 1))
        if isinstance(before[-1], (ast.Ident, ast.SignalType)):
            return before
    return path


def name_paths(module: ast.Module) -> Iterator[list[Any]]:
    """The nodes from ``module`` down to each name in it (an ``Ident`` or a ``SignalType`` that spans
    text), in field order: what ``path_at`` finds on each name, for all of them in one walk."""
    stack: list[list[Any]] = [[module]]
    while stack:
        path = stack.pop()
        node = path[-1]
        if isinstance(node, (ast.Ident, ast.SignalType)):
            span = node.span
            if (span.line, span.column) < (span.end_line, span.end_column):
                yield path
            continue
        stack.extend([*path, c] for c in reversed(list(children(node))))


def _descend(module: ast.Module, pos: Pos) -> list[Any]:
    path: list[Any] = [module]
    while True:
        inner = _inner(path[-1], pos)
        if inner is None:
            return path
        path.append(inner)


def _inner(node: Any, pos: Pos) -> Any:
    """The first node directly below ``node`` that contains ``pos``. A list of nodes (a tuple of the syntax
    tree: all nodes, in source order, as the parser made them) is searched by halves: a 3,000-step
    reactor's steps at every completion."""
    here = (pos.line + 1, pos.character + 1)
    for field in attrs.fields(type(node)):
        value = getattr(node, field.name)
        if isinstance(value, tuple) and value and attrs.has(type(value[0])) and hasattr(value[0], "span"):
            i = bisect.bisect_right(value, here, key=lambda n: (n.span.end_line, n.span.end_column))
            if i < len(value) and contains(value[i].span, pos):
                return value[i]
            continue
        found = next((c for c in _nodes(value) if contains(c.span, pos)), None)
        if found is not None:
            return found
    return None


# --- declarations by name -----------------------------------------------------------


def declared_ident(decl: Any, ref_value: str | None = None) -> ast.Ident | None:
    """The identifier that names ``decl`` (a member's, for an enum member or robot state ``ref_value``)."""
    if ref_value is not None:
        if isinstance(decl, ast.EnumDecl):
            return next((m for m in decl.members if m.name == ref_value), decl.name)
        if isinstance(decl, ast.RobotDecl):
            states = (n for s in decl.states for n in s.names)
            return next((n for n in states if n.name == ref_value), decl.name)
    if isinstance(decl, ast.RouteDecl):
        return decl.bind
    if isinstance(decl, ast.SignalDecl):
        return None
    name = getattr(decl, "name", None)
    return name if isinstance(name, ast.Ident) else None


def decl_span(decl: Any, ref_value: str | None = None) -> Span | None:
    """Where to jump for ``decl``: its name, else the whole declaration."""
    if isinstance(decl, ast.SignalDecl):
        return decl.type.span
    ident = declared_ident(decl, ref_value)
    if ident is not None:
        return ident.span
    span = getattr(decl, "span", None)
    return span if isinstance(span, Span) else None


def global_decl(facts: Facts, module: ast.Module, parts: tuple[str, ...]) -> Any:
    """The top-level declaration a (dotted) name written in ``module`` stands for, as the checker binds it.

    Own declarations first, then imports (``from M import a as b``, ``import
    M as m`` then ``m.a``), then the prelude.
    """
    first, rest = parts[0], parts[1:]
    candidates: list[str] = [f"{module.name}.{first}"]
    for imp in module.imports:
        target = ".".join(i.name for i in imp.module)
        if isinstance(imp, ast.FromImport):
            candidates += [f"{target}.{n.name.name}" for n in imp.names if (n.alias or n.name).name == first]
        elif (imp.alias or imp.module[-1]).name == first and rest:
            candidates.append(target)
    candidates.append(f"{PRELUDE}.{first}")
    for qual in candidates:
        found = facts.decls.get(".".join((qual, *rest)))
        if found is not None:
            return found
    return facts.decls.get(".".join(parts)) if rest else None


def module_file(facts: Facts, dotted: str) -> Span | None:
    """The start of the module ``dotted``, for jumping to an import."""
    module = facts.modules.get(dotted)
    return Span.point(module.file, 1, 1) if module is not None else None

