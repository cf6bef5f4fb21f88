"""The grammar is free of terminal collisions that lark can only detect in strict mode.

``strict=True`` needs the ``interegular`` package (a test dependency, not a
runtime one): it proves that in no parser state two acceptable terminals can
match the same text, so the contextual lexer never settles a tie silently.
The parser itself adds one deliberate overlap on top (its post-lexer makes
NAME acceptable everywhere, so that ``steps`` lexes as one bad word rather than
``step`` + ``s``); that is why the check builds the grammar without it.
"""

from importlib.resources import files

import pytest
from lark import Lark

pytest.importorskip("interegular")


def test_grammar_builds_in_strict_mode():
    grammar = files("bbflow.grammar").joinpath("flow.lark").read_text(encoding="utf-8")
    parser = Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                  maybe_placeholders=True, start="start", strict=True)
    assert parser.parse("reactor R() { let a = 1 }") is not None


def test_no_anonymous_terminals():
    grammar = files("bbflow.grammar").joinpath("flow.lark").read_text(encoding="utf-8")
    parser = Lark(grammar, parser="lalr", lexer="contextual", start="start")
    anonymous = [t.name for t in parser.terminals if t.name.startswith("__ANON")]
    assert anonymous == []
