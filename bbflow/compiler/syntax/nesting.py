"""BBF003: expressions and blocks nested deeper than the toolchain can carry.

A program the checker accepts must build and run. Generated Python nests an
expression as the source does (Python's own parser refuses more than about 200
nested parentheses), and the passes that read expressions recurse on them. So
nesting is bounded where it is written: an expression with more than
``MAX_NESTING`` levels (brackets, operands of operators, a chain of ``-`` or
``not``, a sum of many terms) is a BBF003 at the expression. So are blocks
(``switch`` cases, ``map`` bodies, ``if``, ``else if``, ``then`` and ``else``)
nested more than ``MAX_BLOCK_NESTING`` deep: the generated model nests each in
a few constructor calls, and the checker, the generator and the runtime walk
them recursively. A text nested so deeply that even reading it fails is a
BBF003 too (``too_deep_to_read``), pointing at where the nesting starts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import attrs

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.source import SourceFile, Span

__all__ = ["MAX_BLOCK_NESTING", "MAX_NESTING", "check_nesting", "too_deep_to_read"]

MAX_NESTING = 64
#: a `switch` case costs the generated Python five brackets, so 32 levels stay well inside its 200
MAX_BLOCK_NESTING = 32
_EXPRS = tuple(ast.Expr.__args__)
_HELP = "name the inner parts with `let` (or split a long sum into several), so that each expression stays shallow"


def check_nesting(module: ast.Module, diags: Diagnostics) -> None:
    """BBF003 for each outermost expression of ``module`` nested deeper than ``MAX_NESTING``."""
    for expr in _outermost_exprs(module):
        depth = _depth(expr, MAX_NESTING)
        if depth > MAX_NESTING:
            diags.error(codes.BBF003, f"expression nested too deeply ({depth} levels; at most {MAX_NESTING})",
                        expr.span, help=_HELP)
    for stmt, depth, in_agent in _deep_blocks(module):
        diags.error(codes.BBF003, f"blocks nested too deeply ({depth} levels; at most {MAX_BLOCK_NESTING})",
                    Span(stmt.span.file, stmt.span.line, stmt.span.column, stmt.span.line, stmt.span.column + 1),
                    help=_AGENT_HELP if in_agent else _REACTOR_HELP)


#: the statements that hold blocks of statements (an `else if` is an `if` in its `else` block)
_NESTS = (ast.SwitchStmt, ast.MapStmt, ast.IfStmt, ast.RunStmt)
_REACTOR_HELP = "move the inner part into a reactor of its own, and compose it with a step"
_AGENT_HELP = ("split the route: a route of its own for each case (`on TYPE as s when ...`), "
               "where a long `else if` chain would be")


def _deep_blocks(module: ast.Module) -> Iterator[tuple[Any, int, bool]]:
    """Each outermost statement of a body whose blocks nest deeper than ``MAX_BLOCK_NESTING``, with their
    depth and whether it is an agent's (counted without recursion; expressions hold no statements: not walked)."""
    for decl in module.decls:
        if isinstance(decl, ast.ReactorDecl):
            tops: tuple[Any, ...] = decl.body.stmts
        elif isinstance(decl, ast.AgentDecl):
            tops = tuple(stmt for route in decl.routes for stmt in route.body)
        else:
            continue
        for top in tops:
            if not isinstance(top, _NESTS):
                continue
            deepest = 0
            stack = [(top, 1)]
            while stack:
                node, depth = stack.pop()
                if isinstance(node, _NESTS):
                    deepest = max(deepest, depth)
                    depth += 1
                stack.extend((child, depth) for child in _children(node) if not isinstance(child, _EXPRS))
            if deepest > MAX_BLOCK_NESTING:
                yield top, deepest, isinstance(decl, ast.AgentDecl)


#: the syntax tree's node classes (spans are not nodes)
_NODES = frozenset(cls for cls in vars(ast).values() if isinstance(cls, type) and attrs.has(cls) and cls is not Span)


@functools.cache
def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls) if f.name != "span")


def _children(node: Any) -> list[Any]:
    out: list[Any] = []
    cls: type = type(node)
    for name in _fields(cls):
        value = getattr(node, name)
        if type(value) is tuple:
            out.extend(v for v in value if type(v) in _NODES)
        elif type(value) in _NODES:
            out.append(value)
    return out


def _shallow(node: Any, levels: int) -> bool:
    """Whether ``node`` holds at most ``levels`` levels of expressions, as its text shows: it is written on one
    line in at most ``levels`` characters (each level of an expression has a token of its own)."""
    span = getattr(node, "span", None)
    return span is not None and span.line == span.end_line and span.end_column - span.column <= levels


def _outermost_exprs(module: ast.Module) -> Iterator[Any]:
    """The outermost expressions that may nest too deeply (not those inside a ``_shallow`` node)."""
    stack: list[Any] = list(module.decls)
    while stack:
        node = stack.pop()
        if _shallow(node, MAX_NESTING):
            continue
        if isinstance(node, _EXPRS):
            yield node
        else:
            stack.extend(_children(node))


def _depth(expr: Any, limit: int) -> int:
    """Levels of expressions in ``expr`` (a literal is 1), counted without recursion: exact when more than
    ``limit``; else only at most ``limit`` (a part that cannot reach past it, being ``_shallow``, is not walked)."""
    deepest = 0
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if _shallow(node, limit - depth + 1):  # its levels end at depth - 1 + its width at the deepest
            continue
        if isinstance(node, _EXPRS):
            deepest = max(deepest, depth)
            depth += 1
        stack.extend((child, depth) for child in _children(node))
    return deepest


_OPENERS = re.compile(r'"(?:[^"\\\n]+|\\[^\n])*\\?"?|#[^\n]*|[(\[{]|[)\]}]|-|\bnot\b')


def too_deep_to_read(source: SourceFile, diags: Diagnostics) -> None:
    """BBF003 for a text too deeply nested to be read: at the point where the nesting is deepest."""
    depth = run = deepest = at = 0
    for m in _OPENERS.finditer(source.text):
        token = m.group()
        if token[0] in "\"#":
            continue
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth = max(0, depth - 1)
        if token in ("-", "not"):
            run += 1
        elif token not in "([{":
            run = 0
        if depth + run > deepest:
            deepest, at = depth + run, m.start()
    line = source.text.count("\n", 0, at) + 1
    column = at - (source.text.rfind("\n", 0, at) + 1) + 1
    diags.error(codes.BBF003, f"expression nested too deeply to be read (at most {MAX_NESTING} levels)",
                Span.point(source.path, line, column), help=_HELP)
