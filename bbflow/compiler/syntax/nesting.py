"""BBF003: expressions nested deeper than the toolchain can carry.

A program the checker accepts must build and run. Generated Python nests an
expression as the source does (Python's own parser refuses more than about 200
nested parentheses), and the passes that read expressions recurse on them. So
nesting is bounded where it is written: an expression with more than
``MAX_NESTING`` levels (brackets, operands of operators, a chain of ``-`` or
``not``, a sum of many terms) is a BBF003 at the expression. A text nested so
deeply that even reading it fails is a BBF003 too (``too_deep_to_read``),
pointing at where the nesting starts.
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

__all__ = ["MAX_NESTING", "check_nesting", "too_deep_to_read"]

MAX_NESTING = 64
_EXPRS = tuple(ast.Expr.__args__)
_HELP = "name the inner parts with `let` (or split a long sum into several), so that each expression stays shallow"


def check_nesting(module: ast.Module, diags: Diagnostics) -> None:
    """BBF003 for each outermost expression of ``module`` nested deeper than ``MAX_NESTING``."""
    for expr in _outermost_exprs(module):
        depth = _depth(expr, MAX_NESTING)
        if depth > MAX_NESTING:
            diags.error(codes.BBF003, f"expression nested too deeply ({depth} levels; at most {MAX_NESTING})",
                        expr.span, help=_HELP)


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
