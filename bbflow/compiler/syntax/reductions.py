"""The fast path of the front end: the AST built in the LALR parser's reductions, with no parse tree.

A clean file is parsed by lark's LALR loop with our own reduction callbacks:
each rule's reduction calls the ``AstBuilder`` method of that rule directly, so
no lark ``Tree`` is made, no positions are propagated through one and no
``Transformer`` walks it afterwards. What lark's tree builder would have done
is done here in one step per reduction, to the same result:

- tokens of ``_NAMES`` are left out and inlined ``_rules`` spliced in,
- ``None`` stands for an absent ``[optional]`` (``maybe_placeholders``),
- a ``?rule`` with one child is that child,
- every node gets the span ``propagate_positions`` would have given its tree:
  from its first child with a position to its last, where a child's position
  includes the tokens of the inlined rules around it (lark's "container").

The first syntax error stops the fast path (``parse_clean`` returns None); the
caller then parses again with the recovering ``SyntaxDriver`` and builds the
AST from its tree, which says what went wrong and goes on. Both paths give the
same module and the same diagnostics for a clean file (tests/test_fast_parse.py
compares them on every program the tests, the stdlib and the examples hold).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedInput
from lark.grammar import Rule
from lark.parsers.lalr_analysis import Shift

from bbflow.compiler import ast
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.source import SourceFile
from bbflow.compiler.syntax.build_ast import AstBuilder

__all__ = ["parse_clean"]

END = "$END"


class _Node:
    """A reduced rule: its value, and where its text lies (the fields of lark's tree ``meta``).

    ``line``...``end_column`` are the node's own span (what ``AstBuilder`` reads);
    the ``c``-prefixed ones its container's, which a ``?rule`` around it widens
    (``(a)`` is the name ``a`` in a container that holds the brackets).
    """

    __slots__ = ("value", "empty", "line", "column", "end_line", "end_column", "cline", "ccolumn", "cend_line",
                 "cend_column")
    value: Any
    line: int | None  # as lark types a token's
    column: int | None
    end_line: int | None
    end_column: int | None
    cline: int | None
    ccolumn: int | None
    cend_line: int | None
    cend_column: int | None

    def __init__(self) -> None:
        self.empty = True


#: how one rule's reduction shapes its children: (index, splice an inlined rule, Nones before it)
_Shape = tuple[tuple[tuple[int, bool, int], ...], int, bool]


def _shape(rule: Rule, placeholders: bool) -> _Shape:
    """Which children a reduction of ``rule`` keeps, as lark's tree builder (``ChildFilter``) decides."""
    expansion = rule.expansion
    empty = rule.options.empty_indices if placeholders else ()
    if empty:  # one flag per symbol of the full rule, True where an optional was left out
        runs = [len(ones) for ones in "".join(str(int(b)) for b in empty).split("0")]
    else:
        runs = [0] * (len(expansion) + 1)
    keep_all = rule.options.keep_all_tokens
    include = []
    nones = 0
    for i, sym in enumerate(expansion):
        nones += runs[i]
        if keep_all or not (sym.is_term and sym.filter_out):  # type: ignore[attr-defined]  # terminals have it
            include.append((i, not sym.is_term and sym.name.startswith("_"), nones))
            nones = 0
    return tuple(include), nones + runs[len(expansion)], bool(rule.options.expand1 and not rule.alias)


#: a builder method as the class holds it: called with (builder, meta, children)
_Method = Callable[[AstBuilder, Any, list[Any]], Any]


@functools.cache
def _shapes(parser: Lark) -> tuple[tuple[Rule, _Method | None, _Shape, bool], ...]:
    """Every rule of ``parser``: its builder method (None: it has none), its shape, whether it is a unit rule."""
    placeholders = bool(parser.options.maybe_placeholders)
    out = []
    for rule in parser.rules:
        name = rule.alias or rule.options.template_source or rule.origin.name
        shape = _shape(rule, placeholders)
        method = None
        if not name.startswith("_"):
            found = inspect.getattr_static(AstBuilder, name, None)
            method = getattr(found, "base_func", found)  # under lark's v_args wrapper
            if not callable(method):
                if not _one_child(shape):
                    raise TypeError(f"AstBuilder has no method for the grammar's rule `{name}`")
                method = None
        out.append((rule, method, shape, _unit(rule, shape)))
    return tuple(out)


def _one_child(shape: _Shape) -> bool:
    """Whether a rule of this shape always reduces to its one kept child (``?atom: "(" expr ")"``)."""
    include, trailing, expand1 = shape
    return expand1 and len(include) == 1 and include[0][1:] == (False, 0) and not trailing


def _unit(rule: Rule, shape: _Shape) -> bool:
    """Whether ``rule`` is a ``?rule: other``: its one child, in the same container (nothing to do)."""
    return len(rule.expansion) == 1 and _one_child(shape)


def _first(children: list[Any]) -> Any:
    return children[0]


class _Binding:
    """The builder of the file being parsed, which the reductions call (set per parse, see ``_callbacks``)."""

    builder: AstBuilder


def _reduction(shape: _Shape, method: _Method | None, binding: _Binding) -> Callable[[list[Any]], Any]:
    include, trailing, expand1 = shape
    plain = not trailing and not any(splice or nones for _, splice, nones in include)
    picks = tuple(i for i, _, _ in include) if plain else None

    def reduce(children: list[Any]) -> Any:
        node = _Node()
        for c in children:
            if type(c) is Token:
                node.line = node.cline = c.line
                node.column = node.ccolumn = c.column
                node.empty = False
                break
            if type(c) is _Node and not c.empty:
                node.line = node.cline = c.cline
                node.column = node.ccolumn = c.ccolumn
                node.empty = False
                break
        if not node.empty:
            for c in reversed(children):
                if type(c) is Token:
                    node.end_line = node.cend_line = c.end_line
                    node.end_column = node.cend_column = c.end_column
                    break
                if type(c) is _Node and not c.empty:
                    node.end_line = node.cend_line = c.cend_line
                    node.end_column = node.cend_column = c.cend_column
                    break
        if picks is None:
            kept: list[Any] = []
            for i, splice, nones in include:
                if nones:
                    kept += [None] * nones
                if splice and not kept:  # a left-recursive `_rule` (`a (op a)*`): extend its list, not a copy
                    kept = children[i].value
                elif splice:
                    kept += children[i].value
                else:
                    kept.append(children[i])
            if trailing:
                kept += [None] * trailing
        else:  # the common shape: some children kept as they are
            kept = [children[i] for i in picks]
        if expand1 and len(kept) == 1:  # `?rule` with one child: the child, in a wider container
            only = kept[0]
            if type(only) is _Node and not node.empty:
                only.cline, only.ccolumn = node.cline, node.ccolumn
                only.cend_line, only.cend_column = node.cend_line, node.cend_column
            return only
        if method is None:  # an inlined `_rule`: its children, spliced into the parent's
            node.value = kept
        else:
            node.value = method(binding.builder, node, [c.value if type(c) is _Node else c for c in kept])
        return node

    return reduce


#: lark's LALR table for the loop below: state -> terminal or rule name -> (shift?, next state) for a shift
#: or a goto, (False, (rule index, rule size, rule name)) for a reduction
_Table = dict[int, dict[str, tuple[bool, Any]]]


@functools.cache
def _table(parser: Lark) -> tuple[_Table, int, int]:
    """``parser``'s LALR table with each rule as its index in ``_shapes``; the start and end states."""
    conf = parser.parse_interactive("", start="start").parser_state.parse_conf
    index = {rule: i for i, (rule, *_) in enumerate(_shapes(parser))}
    table = {state: {name: (True, arg) if action is Shift else (False, (index[arg], len(arg.expansion), arg.origin.name))
                     for name, (action, arg) in row.items()}
             for state, row in conf.parse_table.states.items()}
    return table, conf.start_state, conf.end_state


class _Position:
    """What lark's contextual lexer reads of the parser: the state it is in (which terminals may come)."""

    __slots__ = ("stack",)

    def __init__(self, stack: list[int]) -> None:
        self.stack = stack

    @property
    def position(self) -> int:
        return self.stack[-1]


def _lalr(table: _Table, end_state: int, stack: list[int], tokens: Iterator[Token],
          callbacks: list[Callable[[list[Any]], Any]]) -> Any:
    """lark's LALR loop (``ParserState.feed_token``) over ``tokens``, calling ``callbacks`` by rule index: the
    root's value; None at a token no state takes. (Written here so that a reduction costs one list index, not
    a ``Rule`` hashed and compared in Python.)"""
    values: list[Any] = []
    for tok in itertools.chain(tokens, (None,)):  # None: the end of the text
        kind = END if tok is None else tok.type
        while True:
            action = table[stack[-1]].get(kind)
            if action is None:
                return None
            shift, arg = action
            if shift:
                stack.append(arg)
                values.append(tok)
                break
            rule, size, name = arg
            if size:
                children = values[-size:]
                del stack[-size:]
                del values[-size:]
            else:
                children = []
            values.append(callbacks[rule](children))
            stack.append(table[stack[-1]][name][1])
            if tok is None and stack[-1] == end_state:
                return values[-1]
    return None  # (never reached: the end is taken or refused above)


_per_thread = threading.local()


def _callbacks(parser: Lark) -> tuple[_Binding, list[Callable[[list[Any]], Any]]]:
    """The reductions of ``parser``, made once per thread (a parse sets the binding's builder, then runs them)."""
    made: dict[int, tuple[Lark, _Binding, list[Callable[[list[Any]], Any]]]] = _per_thread.__dict__.setdefault("made", {})
    if id(parser) not in made:
        binding = _Binding()
        made[id(parser)] = (parser, binding, [_first if unit else _reduction(shape, method, binding)
                                              for _, method, shape, unit in _shapes(parser)])
    _, binding, callbacks = made[id(parser)]
    return binding, callbacks


def parse_clean(parser: Lark, source: SourceFile, module_name: str, diags: Diagnostics) -> ast.Module | None:
    """The module of a file without syntax errors (its BBF002s and the like in ``diags``); None at a syntax error.

    After a None, ``diags`` may hold diagnostics of the part read before the error: drop them.
    """
    binding, callbacks = _callbacks(parser)
    binding.builder = AstBuilder(source.path, module_name, source.text, diags)
    table, start_state, end_state = _table(parser)
    stack = [start_state]
    tokens = parser.parse_interactive(source.text, start="start").lexer_thread.lex(_Position(stack))
    try:
        root = _lalr(table, end_state, stack, tokens, callbacks)
    except UnexpectedInput:  # a character or a word no terminal of this place reads
        return None
    finally:
        del binding.builder  # (the file's text and diagnostics are not kept past its parse)
    if root is None:
        return None
    module: ast.Module = root.value
    return module
