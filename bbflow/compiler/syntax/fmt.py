"""``bbflow fmt``: the one canonical layout of a ``.flow`` file.

The formatter works on the parser's own token stream (so a keyword is a
keyword exactly where the parser says so) plus the parse tree (which tokens
start a statement, which braces are a record's, which minus is unary), and
is written against the grammar's rule names rather than its individual
constructs: a rule named ``*_stmt`` or ``*_decl`` starts a statement, a
``record_*`` rule is written tight. New syntax therefore formats without
changes here.

The layout:

- line breaks are the author's (like gofmt): a statement may sit on its
  own line or several on one (then two spaces apart); at most one blank line
  in a row, none just inside braces; no trailing spaces; one final newline;
- indentation is 4 spaces per open brace (or bracket opened on an earlier
  line); a block's body and closing brace go by the first line of its
  statement, even when the ``{`` ends a continuation line (but a ``then`` or
  ``else`` that starts a line holds its block by that line); a line that continues a statement (a step's modifiers, a command's
  category) is indented 4 more; a step's continuation lines are indented 4
  past its call;
- consecutive steps of a block (no blank line between) align their ``=``;
- one space between tokens, none inside ``()``, ``[]`` and record braces
  ``{x: 1.0}``, none before ``, : . ?``, none after a unary minus; block
  braces get a space inside: ``{ }``, ``{ emit done }``;
- a comment keeps its line; a trailing comment keeps its column when that
  leaves at least two spaces after the code (so aligned comments stay
  aligned), else it goes two spaces after the code.

``format_text`` refuses (``FormatError``) a file with syntax errors, and
checks its own output: the program must parse to the same tree with the same
comments, or nothing is changed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
from lark import Token, Tree
from lark.exceptions import LarkError

from bbflow.compiler import ast
from bbflow.compiler.diagnostics.core import Diagnostic
from bbflow.compiler.source import SUFFIX, InputError, normalised, read_regular, source_files, undecodable_at
from bbflow.compiler.syntax.parser import flow_parser, parse_text

__all__ = ["FormatError", "flow_files", "format_diff", "format_text"]

INDENT = 4
_OPEN = {"_LPAR": "_RPAR", "_LSQB": "_RSQB", "_LBRACE": "_RBRACE"}
_CLOSE = set(_OPEN.values())
_NO_SPACE_BEFORE = {"_RPAR", "_RSQB", "_COMMA", "_DOT", "_QMARK"}
_CALLABLE = {"NAME", "_RPAR", "_RSQB"}  # a `(` or `[` right after one of these is a call or an index
_CLAUSES = {"_THEN", "_ELSE"}  # a line they start holds its own block: `then {` goes by that line
_STATEMENT_RULES = {"route", "state_block", "state_field", "case_clause", "default_clause", "reactor_option"}
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\[^\n])*\\?"?|#[^\n]*')


class FormatError(Exception):
    """A file that cannot be formatted; ``diagnostics`` holds its syntax errors, if that is why."""

    def __init__(self, message: str, diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


@attrs.frozen(slots=True)
class _Tok:
    type: str
    value: str
    start: int
    end: int
    column: int  # 1-based, in the original text


@attrs.define
class _Shape:
    """What the tree says about the tokens, by their start offsets."""

    statements: dict[int, int] = attrs.Factory(dict)  # start -> end of each statement
    calls: dict[int, int] = attrs.Factory(dict)  # start of a step's call -> the step's start
    tight: set[int] = attrs.Factory(set)  # record braces
    unary: set[int] = attrs.Factory(set)  # unary minus signs
    pads: dict[int, int] = attrs.Factory(dict)  # a step's name start -> spaces before its `=`


def format_text(text: str, file: str = "<string>") -> str:
    """``text`` in the canonical layout; raises ``FormatError`` for a file with syntax errors."""
    text = normalised(text)
    before, diags = parse_text(text, file)
    if diags.has_errors():
        errors = tuple(d for d in diags.sorted() if d.is_error)
        first = errors[0]
        raise FormatError(f"{file}:{first.span.line}:{first.span.column}: {first.code} {first.message}", errors)
    try:
        interactive = flow_parser().parse_interactive(text)
        tokens = [_tok(t) for t in interactive.iter_parse()]
        tree = interactive.feed_eof()
    except LarkError as e:  # parse_text recovered from what the plain parser cannot
        raise FormatError(f"{file}: cannot format: {e}") from None
    shape = _shape(tree, text)
    out = _Layout(text, shape).render(_merge(tokens, _comments(text)))
    after, again = parse_text(out, file)
    if again.has_errors() or not _same(before, after):
        raise FormatError(f"{file}: internal error: the formatted text would not be the same program; "
                          "the file is left as it is (this is a bug in bbflow fmt, please report it)")
    return out


def _same(a: ast.Module, b: ast.Module) -> bool:
    """The same program with the same comments, but for the blanks ending a comment (the layout drops them)."""
    return ast.dump(a.decls) == ast.dump(b.decls) and ast.dump(a.imports) == ast.dump(b.imports) and \
        [c.text.rstrip() for c in a.comments] == [c.text.rstrip() for c in b.comments]


def _tok(t: Token) -> _Tok:
    return _Tok(t.type, str(t), t.start_pos or 0, t.end_pos or 0, t.column or 1)


def _comments(text: str) -> Iterator[_Tok]:
    line_start = 0
    for m in _COMMENT_OR_STRING.finditer(text):
        if m.group().startswith("#"):
            line_start = text.rfind("\n", 0, m.start()) + 1
            yield _Tok("COMMENT", m.group().rstrip(), m.start(), m.end(), m.start() - line_start + 1)


def _merge(tokens: list[_Tok], comments: Iterator[_Tok]) -> list[_Tok]:
    return sorted([*tokens, *comments], key=lambda t: t.start)


# --- what the tree says ---------------------------------------------------------------


def _shape(tree: Tree, text: str) -> _Shape:
    shape = _Shape()
    for node in tree.iter_subtrees():
        rule = str(node.data)
        if node.meta.empty:
            continue
        start, end = node.meta.start_pos, node.meta.end_pos
        if rule.endswith(("_stmt", "_decl", "_import")) or rule in _STATEMENT_RULES or rule == "type_alias":
            shape.statements[start] = max(end, shape.statements.get(start, end))
        if rule.startswith("record_"):
            shape.tight.update((start, end - 1))
        if rule in ("neg", "priority"):
            shape.unary.update(c.start_pos for c in node.children
                               if isinstance(c, Token) and c.type == "MINUS" and c.start_pos is not None)
        if rule == "step_stmt":
            call = next(c for c in node.children if isinstance(c, Tree))
            shape.calls[call.meta.start_pos] = start
        _align_steps(node, text, shape)
    return shape


def _align_steps(node: Tree, text: str, shape: _Shape) -> None:
    """Pad the names of consecutive one-line-headed steps of a block so that their ``=`` align."""
    group: list[Token] = []
    last_end = 0
    for child in node.children:
        name = _step_name(child, text)
        if name is None:
            _pad(group, shape)
            group = []
            continue
        assert isinstance(child, Tree)
        if group and _BLANK_LINE.search(text, last_end, child.meta.start_pos):
            _pad(group, shape)
            group = []
        group.append(name)
        last_end = child.meta.end_pos
    _pad(group, shape)


def _step_name(child: object, text: str) -> Token | None:
    if not isinstance(child, Tree) or child.data != "step_stmt":
        return None
    name = child.children[0]
    assert isinstance(name, Token) and name.end_pos is not None
    head = text[child.meta.start_pos:text.index("=", name.end_pos) + 1]
    return name if "\n" not in head and "#" not in head else None


def _pad(group: list[Token], shape: _Shape) -> None:
    widest = max((len(n) for n in group), default=0)
    for n in group:
        assert n.start_pos is not None
        shape.pads[n.start_pos] = widest - len(n) + 1


# --- the layout -------------------------------------------------------------------------


@attrs.define
class _Open:
    type: str
    start: int
    inner: int  # the indentation of the lines inside
    outer: int  # the indentation of the line that opened it
    line: int  # the output line it was opened on


class _Layout:
    def __init__(self, text: str, shape: _Shape) -> None:
        self.text = text
        self.shape = shape
        self.lines: list[str] = []
        self.line = ""
        self.brackets: list[_Open] = []
        self.anchors: dict[int, int] = {}  # statement start -> indentation of its continuation lines
        self.open_statements: list[tuple[int, int]] = []  # (start, end) of the statements around
        self.first = ""  # the type of the first token of the line being written

    def render(self, tokens: list[_Tok]) -> str:
        prev: _Tok | None = None
        for i, tok in enumerate(tokens):
            while self.open_statements and self.open_statements[-1][1] <= tok.start:
                self.open_statements.pop()
            if tok.start in self.shape.statements:
                self.open_statements.append((tok.start, self.shape.statements[tok.start]))
            breaks = self.text.count("\n", prev.end, tok.start) if prev is not None else 0
            if prev is None or breaks:
                if prev is not None:
                    self._newline(blank=breaks > 1 and prev.type not in _OPEN and tok.type not in _CLOSE)
                self.line = " " * self._indent(tok if tok.type != "COMMENT" else self._after(tokens, i))
                self.first = tok.type
            else:
                self.line += self._space(prev, tok)
            self._emit(tok)
            prev = tok
        self._newline(blank=False)
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n" if self.lines else ""

    def _after(self, tokens: list[_Tok], i: int) -> _Tok:
        """What a comment on a line of its own is indented as: the code that follows, inside its block."""
        following = next((t for t in tokens[i:] if t.type != "COMMENT"), None)
        if following is None or following.type in _CLOSE:
            return _Tok("COMMENT", "", tokens[i].start, tokens[i].end, 0)
        return following

    def _newline(self, blank: bool) -> None:
        self.lines.append(self.line.rstrip())
        if blank and self.lines[-1]:
            self.lines.append("")
        self.line = ""

    def _emit(self, tok: _Tok) -> None:
        if tok.start in self.shape.statements:
            self.anchors[tok.start] = self._line_indent() + INDENT
        if tok.start in self.shape.calls:
            self.anchors[self.shape.calls[tok.start]] = len(self.line) + INDENT
        if tok.type in _CLOSE and self.brackets:
            self.brackets.pop()
        self.line += tok.value
        if tok.type in _OPEN:
            here = len(self.lines)
            same = next((b for b in reversed(self.brackets) if b.line == here), None)
            outer = self._line_indent()
            if tok.type == "_LBRACE" and tok.start not in self.shape.tight and self.first not in _CLAUSES:
                outer = self._statement_indent(outer)
            inner = same.inner if same is not None else outer + INDENT
            self.brackets.append(_Open(tok.type, tok.start, inner, outer, here))

    def _statement_indent(self, default: int) -> int:
        """The indentation of the first line of the statement being written (a block's braces and body
        go by it, not by the continuation line the `{` is on: ``reactor R(a: int,`` / ``b: int) {``)."""
        inside = self.brackets[-1].start if self.brackets else -1
        owner = self.open_statements[-1][0] if self.open_statements else None
        if owner is None or owner <= inside or owner not in self.anchors:
            return default
        return self.anchors[owner] - INDENT

    def _line_indent(self) -> int:
        return len(self.line) - len(self.line.lstrip(" "))

    def _indent(self, tok: _Tok) -> int:
        if tok.type in _CLOSE and self.brackets:
            opened = self.brackets[-1]
            return opened.outer if opened.line != len(self.lines) else opened.inner
        base = self.brackets[-1].inner if self.brackets else 0
        if tok.start in self.shape.statements:
            return base
        inside = self.brackets[-1].start if self.brackets else -1
        owner = self.open_statements[-1][0] if self.open_statements else None
        return self.anchors.get(owner, base) if owner is not None and owner > inside else base

    def _space(self, prev: _Tok, tok: _Tok) -> str:
        shape = self.shape
        if tok.type == "COMMENT":
            return " " * max(2, tok.column - 1 - len(self.line))
        if prev.start in shape.pads and tok.type == "_EQ":
            return " " * shape.pads[prev.start]
        if prev.type in ("_LPAR", "_LSQB") or tok.type in _NO_SPACE_BEFORE or prev.type == "_DOT":
            return ""
        if prev.start in shape.unary:
            return ""
        if "_COLON" in (tok.type, prev.type):
            inner = self.brackets[-1].type if self.brackets else None
            return "" if tok.type == "_COLON" or inner == "_LSQB" else " "
        if tok.type in ("_LPAR", "_LSQB") and (prev.type in _CALLABLE or (tok.type == "_LSQB" and prev.type == "_MAP")):
            return ""
        if (prev.type == "_LBRACE" and prev.start in shape.tight) or (tok.type == "_RBRACE" and tok.start in shape.tight):
            return ""
        if tok.start in shape.statements and prev.type not in ("_LBRACE", "_ELSE"):
            return "  "
        return " "


# --- files ------------------------------------------------------------------------------


def flow_files(paths: tuple[str, ...]) -> list[Path]:
    """The ``.flow`` files named or below the folders named (as ``bbflow check`` finds them), each once."""
    found: dict[Path, None] = {}
    for given in map(Path, paths):
        if given.is_dir():
            for f in source_files(given):
                found.setdefault(f)
        elif given.is_file() or given.suffix == SUFFIX:
            if given.suffix != SUFFIX:
                raise FormatError(f"{given}: not a {SUFFIX} file")
            found.setdefault(given)
        else:
            raise FormatError(f"{given}: no such file or folder")
    return list(found)


def read_flow_file(path: Path) -> str:
    """The text of ``path``, read as ``bbflow check`` reads it (a regular file of a bounded size, never a FIFO
    that would block or a link to a device that never ends); FormatError saying why if it cannot be."""
    try:
        data = read_regular(path, str(path))
    except InputError as e:
        raise FormatError(str(e)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = undecodable_at(data, e)
        raise FormatError(f"{path}:{line}:{column}: not valid UTF-8 (byte 0x{data[e.start]:02x}): save the file as "
                          "UTF-8") from None


def format_diff(before: str, after: str, name: str) -> str:
    """A unified diff from ``before`` to ``after`` (empty when they are equal)."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"{name} (original)", f"{name} (formatted)"))
