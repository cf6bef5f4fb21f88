"""Syntax errors: what they say, and recovery so that independent errors are all reported, once each."""

from __future__ import annotations

from bbflow.compiler import ast
from bbflow.compiler.syntax.parser import parse_text

ROBOT = """robot Arm {
    limit motion 1
    command move_to(target: float) -> float category motion
    command beep() -> bool
}
"""


def diagnose(text: str) -> tuple[ast.Module, list[tuple[str, int]]]:
    module, diags = parse_text(text, "r.flow")
    return module, [(d.code, d.span.line) for d in diags]


def names(module: ast.Module) -> list[str]:
    return [d.name.name if hasattr(d, "name") else d.type.text for d in module.decls]


def test_two_independent_errors_in_two_reactors() -> None:
    text = ROBOT + """
reactor A() on Arm {
    step a beep()
    step b = move_to(target: 1.0) after a
}
reactor B() on Arm {
    step c = move_to(target: 2.0
    step d = beep() after c
}
"""
    module, found = diagnose(text)
    assert found == [("BBF001", 8), ("BBF001", 13)]
    a, b = module.decls[1:]
    assert [s.name.name for s in a.body.stmts] == ["a", "b"]  # `=` inserted: nothing lost
    assert [s.name.name for s in b.body.stmts] == ["c", "d"]  # `)` inserted


def test_three_independent_errors_and_the_declarations_after_them() -> None:
    text = """type Pose = {x: float y: float}
recator Go() { }
agent A {
    on go.now { set x = }
}
signal after.all
"""
    module, found = diagnose(text)
    assert found == [("BBF001", 1), ("BBF001", 2), ("BBF001", 4)]
    assert names(module) == ["Pose", "Go", "A", "after.all"]
    assert [f.name.name for f in module.decls[0].type.fields] == ["x", "y"]


def test_three_errors_in_one_reactor_keep_the_good_statements() -> None:
    text = """reactor R() -> int {
    step a = one() timeout
    step b = two() after a
    lett c = 3
    step d = three(x: ) after b
    step e = four() after d
    return 1
}
"""
    module, diags = parse_text(text)
    assert [(d.code, d.span.line) for d in diags] == [("BBF001", 3), ("BBF001", 4), ("BBF001", 5)]
    assert diags.items[1].help == "did you mean `let`?"
    stmts = module.decls[0].body.stmts
    assert [s.name.name for s in stmts if isinstance(s, (ast.StepStmt, ast.LetStmt))] == ["a", "b", "c", "e"]
    assert isinstance(stmts[-1], ast.ReturnStmt)


def test_one_mistake_gives_one_diagnostic() -> None:
    for text in [
        "reactor R() { step a = b(x: 1 y: 2) }",  # a missing comma
        "reactor R() { step a = b() after }",  # a modifier without its names
        "reactor R() { step a = b(( }",  # a stray bracket
        "agent A { on x.y when { set a = 1 } }",  # a missing condition
        "reactor R() { let x = 1 + * 2 }",
        "robot A { command c() -> }",
        "type T = {x: float",
        "reactor R() {",
        "reactor R() { switch s on x { case 1 { return 1 } dflt { return 2 } } }",
        "from a.b import",
        "reactor R() { step a = b() @ }",
        # a declaration keyword in a block: it was resumed as the enclosing agent's name, and reported
        # again as "`agent` is a keyword and cannot name an agent"
        "signal s\nagent A {\n    on s { agent\n    on s { }\n}\n",
    ]:
        _, found = diagnose(text)
        assert len(found) == 1 and found[0][0] == "BBF001", (text, found)


def test_keyword_typos_are_suggested() -> None:
    for text, word in [("recator R() { }", "reactor"), ("reactor R() { stpe a = b() }", "step"),
                       ("agent A { on x { emti a.b } }", "emit"), ("robot A { comand c() }", "command"),
                       ("reactor R() { step a = b() aftr c }", "after"), ("sginal a.b", "signal")]:
        module, diags = parse_text(text)
        (d,) = diags
        assert d.help == f"did you mean `{word}`?", text
        assert len(module.decls) == 1, text  # the suggestion is taken as the repair


def test_messages_say_what_was_expected_in_words() -> None:
    cases = {
        "reactor R() { step a beep() }": "expected `=` after the step name `a`, found `beep`",
        "reactor R( { }": "expected `)` or a name after `(`, found `{`",
        "agent A { on x.y { emit } }": "expected a signal type (like `pick.requested`) after `emit`, found `}`",
        "robot R { command c() -> }": "expected",
        "type T = ": "expected",
        "x": "expected a declaration (`type`, `enum`, `signal`, `robot`, `action`, `reactor`, `agent`, `import`), "
             "found `x`",
    }
    for text, message in cases.items():
        (d,) = parse_text(text)[1]
        assert d.message.startswith(message), (text, d.message)
        assert "ANON" not in d.message and "_" not in d.message.split(",")[0].replace("`", ""), d.message


def test_an_unclosed_block_at_the_end_of_the_file() -> None:
    module, diags = parse_text("reactor R() -> int {\n  step a = b()\n  return a\n")
    (d,) = diags
    assert (d.code, d.span.line) == ("BBF001", 3)
    assert "found the end of the file" in d.message and d.help == "is a `{` left open?"
    assert [type(s).__name__ for s in module.decls[0].body.stmts] == ["StepStmt", "ReturnStmt"]


def test_an_unclosed_call_before_the_next_statement() -> None:
    module, diags = parse_text("reactor R() {\n  step a = b(\n  let c = 1\n}")
    (d,) = diags
    assert (d.span.line, d.span.column) == (3, 3)
    assert d.message == "expected an expression or `)` after `(`, found `let`"
    assert [type(s).__name__ for s in module.decls[0].body.stmts] == ["StepStmt", "LetStmt"]


def test_unexpected_characters() -> None:
    module, diags = parse_text("type A = int\n$$$\ntype B = 'x'\ntype C = int")
    assert [(d.code, d.span.line, d.span.column) for d in diags] == [("BBF001", 2, 1), ("BBF001", 3, 10)]
    assert diags.items[1].help == "strings are written in double quotes"
    assert [d.name.name for d in module.decls][0::2] == ["A", "C"]


def test_syntax_and_literal_errors_together_in_source_order() -> None:
    text = 'reactor R() {\n  step a = b(x: "\\q")\n  step c d()\n  let e = 12mss\n}'
    _, found = diagnose(text)
    assert found == [("BBF002", 2), ("BBF001", 3), ("BBF002", 4)]


def test_a_non_ascii_letter_in_a_name_says_names_are_ascii() -> None:
    _, diags = parse_text("reactor Größe(maß: int) -> int {\n    return maß\n}\n", "z.flow", "z")
    assert [(d.code, d.span.line, d.span.column) for d in diags.items] == [("BBF001", 1, 11)]
    assert diags.items[0].help == "names are made of ASCII letters, digits and `_` (any character may be in a string)"
