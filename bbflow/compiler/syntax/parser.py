"""The front end's entry point: ``.flow`` text to an ``ast.Module`` and diagnostics.

The lark parser (LALR, contextual lexer, grammar in ``bbflow/grammar/flow.lark``)
is made once per process, on first use, from tables built once per grammar version
(``tables``). Parsing never raises for bad input:
syntax errors are BBF001, malformed literals BBF002, and any unexpected
exception inside the front end becomes one BBF900 diagnostic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from importlib.resources import files

from lark import Lark, Token

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.source import SourceFile, Span
from bbflow.compiler.syntax.build_ast import build_module
from bbflow.compiler.syntax.nesting import check_nesting, too_deep_to_read
from bbflow.compiler.syntax.reductions import parse_clean
from bbflow.compiler.syntax.tables import load_or_build

__all__ = ["flow_parser", "parse_module", "parse_text"]


class _NamesEverywhere:
    """A post-lexer that only makes NAME known to the lexer of every parser state.

    Then a word is always lexed whole: ``steps`` where only keywords may follow is
    the NAME ``steps`` (a clear error), never the keyword ``step`` followed by ``s``.
    """

    always_accept = ("NAME",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return stream


@functools.cache
def flow_parser() -> Lark:
    """The lark parser of ``.flow`` files (loaded from the tables cache, or built, on first use; then shared)."""
    return load_or_build(_grammar(), build_parser)


def build_parser() -> Lark:
    """A new parser built from the grammar (slow; it keeps ``.grammar``, which a loaded one lacks)."""
    return Lark(_grammar(), parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=True, postlex=_NamesEverywhere(), start="start")


def _grammar() -> str:
    return files("bbflow.grammar").joinpath("flow.lark").read_text(encoding="utf-8")


def parse_module(source: SourceFile, module_name: str, diags: Diagnostics) -> ast.Module:
    """Parse one file; append BBF001/BBF002 (or BBF900) to ``diags`` and return the best module possible.

    A clean file is parsed once, its AST built in the parser's reductions
    (``reductions``). After a syntax error it is parsed again by the driver,
    which recovers, so the declarations after the error (and the unaffected
    statements around it) are still in the module.
    """
    local = Diagnostics()
    try:
        parser = flow_parser()
        clean = parse_clean(parser, source, module_name, local)
        if clean is not None:
            module = clean
        else:  # a syntax error: again, with the driver that reports and recovers, from its tree
            from bbflow.compiler.syntax.recovery import SyntaxDriver  # only then

            local = Diagnostics()
            tree = SyntaxDriver(parser, source, local).run()
            module = (build_module(tree, source.path, module_name, source.text, local) if tree is not None
                      else _empty_module(source, module_name))
        module = _with_comments(module, _comments(source))
        check_nesting(module, local)
    except RecursionError:  # nested deeper than the parser's stack: a limit of the language, not a bug
        local.items = [d for d in local.items if d.code != codes.BBF003.code]
        too_deep_to_read(source, local)
        module = _empty_module(source, module_name)
    except Exception as exc:
        local.error(codes.BBF900, f"internal compiler error while parsing: {type(exc).__name__}: {exc}",
                    Span.point(source.path, 1, 1), notes=("this is a bug in bbflow, please report it",))
        module = _empty_module(source, module_name)
    diags.extend(sorted(local.items, key=lambda d: (d.span.line, d.span.column)))
    return module


def parse_text(text: str, file: str = "<string>", module_name: str = "main") -> tuple[ast.Module, Diagnostics]:
    """Parse ``text`` as the module ``module_name``; the diagnostics are returned beside it."""
    diags = Diagnostics()
    return parse_module(SourceFile(file, text), module_name, diags), diags


def _empty_module(source: SourceFile, module_name: str) -> ast.Module:
    lines = source.text.split("\n")
    span = Span(source.path, 1, 1, len(lines), len(lines[-1]) + 1)
    return ast.Module(module_name, source.path, (), (), (), span)


# A comment, or a string (skipped, so that a `#` inside one is not a comment).
_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]+|\\[^\n])*\\?"?|#[^\n]*')


def _comments(source: SourceFile) -> Iterable[ast.Comment]:
    text = source.text
    line, line_start, counted = 1, 0, 0  # the line of ``counted``, and where that line starts
    for m in _COMMENT_OR_STRING.finditer(text):
        if not m.group().startswith("#"):
            continue
        start = m.start()
        newlines = text.count("\n", counted, start)
        if newlines:
            line += newlines
            line_start = text.rfind("\n", counted, start) + 1
        counted = start
        column = start - line_start + 1
        yield ast.Comment(m.group(), Span(source.path, line, column, line, column + len(m.group())))


def _with_comments(module: ast.Module, comments: Iterable[ast.Comment]) -> ast.Module:
    return ast.Module(module.name, module.file, module.imports, module.decls, tuple(comments), module.span)
