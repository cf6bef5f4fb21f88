"""What check accepts, build and run accept: deep nesting is a coded diagnostic (BBF003), an over-long
integer a BBF002, never BBF900; at the limit, a program builds and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.cli import main
from bbflow.compiler import compile_paths
from bbflow.compiler.syntax.nesting import MAX_BLOCK_NESTING, MAX_NESTING


def codes(tmp_path: Path, body: str) -> list[str]:
    (tmp_path / "m.flow").write_text("reactor R() -> int {\n" + body + "\n    return 1\n}\n")
    return [d.code for d in compile_paths([tmp_path]).diagnostics.items]


@pytest.mark.parametrize("body", [
    "    let x = " + " + ".join(["1"] * 202),  # Python refused the generated code: too many nested parentheses
    "    let x = " + "[" * 300 + "1" + "]" * 300,  # was BBF900 in the code generator
    "    let x = " + "-" * 5_000 + "1",  # was BBF900 while parsing (RecursionError)
    "    let x = " + "not " * 5_000 + "true",
    "    let x = " + "[" * 5_000 + "1" + "]" * 5_000,
])
def test_too_deep_is_bbf003(tmp_path: Path, body: str) -> None:
    assert codes(tmp_path, body) == ["BBF003"]


def test_a_100000_digit_integer_is_a_malformed_literal(tmp_path: Path) -> None:
    assert codes(tmp_path, "    let x = " + "9" * 100_000) == ["BBF002"]


def test_at_the_limit_it_checks_builds_and_runs(tmp_path: Path) -> None:
    n = MAX_NESTING
    (tmp_path / "bbflow.toml").write_text('[project]\nname = "k"\n')
    (tmp_path / "k.flow").write_text(
        "reactor K() -> int {\n"
        f"    let x = {'[' * (n - 1)}1{']' * (n - 1)}\n"
        f"    let y = {' + '.join(['1'] * n)}\n"
        f"    let z = {'-' * (n - 1)}1\n"
        f"    let w = {'not ' * (n - 1)}true\n"
        "    return y\n}\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--reactor", "K"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(n)


def test_a_short_line_is_never_too_deep_and_one_level_more_is(tmp_path: Path) -> None:
    """At the limit a level costs one character (`-`): the check that skips short lines must not skip these."""
    assert codes(tmp_path, "    let x = " + "-" * (MAX_NESTING - 1) + "1") == []
    assert codes(tmp_path, "    let x = " + "-" * MAX_NESTING + "1") == ["BBF003"]
    assert codes(tmp_path, "    let x = " + "[" * MAX_NESTING + "1" + "]" * MAX_NESTING) == ["BBF003"]


@pytest.mark.parametrize(("brackets", "levels"), [(MAX_NESTING - 2, None), (MAX_NESTING - 1, MAX_NESTING + 1),
                                                  (MAX_NESTING + 5, MAX_NESTING + 7)])
def test_the_depth_inside_an_expression_on_several_lines_is_counted_exactly(tmp_path: Path, brackets: int,
                                                                           levels: int | None) -> None:
    """A record over three lines (a level) holding a deep list: parts of it written on one short line are
    not walked, and what is counted is still every level (the record, the lists, the literal)."""
    deep = "[" * brackets + "1" + "]" * brackets
    (tmp_path / "m.flow").write_text("reactor R() -> int {\n    let x = {\n        a: [1, 2],\n"
                                     f"        b: {deep}\n    }}\n    return 1\n}}\n")
    found = [(d.code, d.message) for d in compile_paths([tmp_path]).diagnostics.items]
    assert found == ([] if levels is None else
                     [("BBF003", f"expression nested too deeply ({levels} levels; at most {MAX_NESTING})")])


def _switches(n: int) -> str:
    """A reactor of ``n`` nested switches (a `switch` case costs the generated Python the most brackets)."""
    opened = "".join(f"    switch s{i} on e {{\n    case a {{\n" for i in range(n))
    closed = "".join(f"    }}\n    default {{ return {i} }}\n    }}\n    return s{i}\n" for i in reversed(range(n)))
    return f"enum E {{ a, b }}\nreactor K(e: E) -> int {{\n{opened}    return {n}\n{closed}}}\n"


def _agent(n: int, opener: str, closer: str = "}\n") -> str:
    return ("signal a.b\nreactor Go() -> int {\n    return 1\n}\n"
            f"agent A {{\n    state {{ x: int = 0 }}\n    on a.b {{\n{opener * n}set x = 1\n{closer * n}    }}\n}}\n")


def _maps(n: int) -> str:
    return ("reactor K(xs: list[int]) -> int {\n" + "".join(f"map m{i} over xs as x{i} {{\n" for i in range(n))
            + "return 1\n" + "".join(f"}}\nreturn len(m{i})\n" for i in reversed(range(n))) + "}\n")


DEEP_BLOCKS = {
    "switch": _switches,
    "map": _maps,
    "if": lambda n: _agent(n, "if x > 0 {\n"),
    "then": lambda n: _agent(n, "run Go() then {\n"),
    # an `else if` is an `if` in an `else` block: each is a level
    "else if": lambda n: _agent(1, "if x > 0 { set x = 0 }" + "".join(f" else if x > {i} {{ set x = {i} }}"
                                                                      for i in range(1, n)) + " else {\n"),
}


@pytest.mark.parametrize("kind", DEEP_BLOCKS)
@pytest.mark.parametrize("levels", [MAX_BLOCK_NESTING + 1, 1_000])
def test_blocks_nested_too_deeply_are_bbf003(tmp_path: Path, kind: str, levels: int) -> None:
    """99 nested `if`s (or `else if`s) checked clean and the generated Python could not be loaded ("too many
    nested parentheses"); 40 nested switches already; 200 were BBF900 (RecursionError) in the generator."""
    (tmp_path / "m.flow").write_text(DEEP_BLOCKS[kind](levels))
    found = [(d.code, d.message) for d in compile_paths([tmp_path]).diagnostics.items]
    assert found == [("BBF003", f"blocks nested too deeply ({levels} levels; at most {MAX_BLOCK_NESTING})")]


@pytest.mark.parametrize("kind", DEEP_BLOCKS)
def test_blocks_at_the_limit_check_and_build(tmp_path: Path, kind: str) -> None:
    (tmp_path / "k.flow").write_text(DEEP_BLOCKS[kind](MAX_BLOCK_NESTING))
    result = CliRunner().invoke(main, ["build", str(tmp_path), "-o", str(tmp_path / "out"), "--no-cache"])
    assert result.exit_code == 0, result.output
    from bbflow.runtime.loader import load_program

    assert load_program(tmp_path / "out").reactors or kind != "switch"


def test_switches_at_the_limit_run(tmp_path: Path) -> None:
    (tmp_path / "bbflow.toml").write_text('[project]\nname = "k"\n')
    (tmp_path / "k.flow").write_text(_switches(MAX_BLOCK_NESTING))
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--reactor", "K", "--input", 'e="a"'])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(MAX_BLOCK_NESTING)
