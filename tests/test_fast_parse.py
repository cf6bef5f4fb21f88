"""The fast path (the AST built in the parser's reductions) gives what the recovering driver's tree gives.

For every program at hand (the .flow files of the tests, the stdlib, the examples and the docs, every
program written in a test's source, the conformance cases, generated projects and programs generated
from the grammar), both paths are run: the same nodes with the same spans and the same diagnostics
when the file is clean; and the fast path gives up exactly when the driver finds a syntax error.
"""

from __future__ import annotations

import ast as pyast
import re
import sys
from pathlib import Path

import pytest
from flow_strategies import GENERATED, PROGRAMS, SAMPLE
from hypothesis import HealthCheck, given, settings
from lark import Token

from bbflow.compiler import ast
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.source import SourceFile
from bbflow.compiler.syntax.build_ast import build_module
from bbflow.compiler.syntax.parser import flow_parser, parse_text
from bbflow.compiler.syntax.recovery import SyntaxDriver
from bbflow.compiler.syntax.reductions import _callbacks, _Node, _shapes, parse_clean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gen_project import COMMON, cell_module  # noqa: E402

_FLOW_START = re.compile(r"^\s*(reactor|agent|signal|robot|type|enum|action|from|import)\s", re.M)
_FENCE = re.compile(r"```flow\n(.*?)```", re.S)


def same_by_both_paths(text: str, file: str = "m.flow") -> bool:
    """Assert the two paths agree on ``text``; whether it was clean (the fast path was taken)."""
    source = SourceFile(file, text)
    fast_diags = Diagnostics()
    fast = parse_clean(flow_parser(), source, "m", fast_diags)
    tree_diags = Diagnostics()
    tree = SyntaxDriver(flow_parser(), source, tree_diags).run()
    syntax_errors = list(tree_diags.items)
    if fast is None:
        assert syntax_errors, f"the fast path gave up on a text the driver reads without error:\n{text}"
        return False
    assert not syntax_errors, f"the fast path read a text with syntax errors {syntax_errors}:\n{text}"
    assert tree is not None
    slow = build_module(tree, file, "m", text, tree_diags)
    assert ast.dump(fast, spans=True) == ast.dump(slow, spans=True)
    assert fast.span == slow.span
    assert fast_diags.items == tree_diags.items
    return True


def _files() -> list[Path]:
    found = [*ROOT.glob("tests/**/*.flow"), *ROOT.glob("examples/**/*.flow"), *ROOT.glob("bbflow/**/*.flow")]
    return sorted(found)


def _test_source_programs() -> list[str]:
    """Every string constant in the tests' sources that reads as a program (a declaration starts a line)."""
    out = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in pyast.walk(pyast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, pyast.Constant) and isinstance(node.value, str) and _FLOW_START.search(node.value):
                out.append(node.value)
    return out


def _doc_programs() -> list[str]:
    return [m.group(1) for path in sorted(ROOT.glob("docs/**/*.md"))
            for m in _FENCE.finditer(path.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_flow_files(path: Path) -> None:
    same_by_both_paths(path.read_text(encoding="utf-8"), str(path))


def test_programs_in_the_tests_and_the_docs() -> None:
    programs = [*_test_source_programs(), *_doc_programs(), *PROGRAMS, SAMPLE]
    clean = sum(same_by_both_paths(text) for text in programs)
    assert len(programs) > 300 and clean > 100  # most are programs, and both outcomes are compared


def test_conformance_cases(conformance: Path) -> None:
    files = sorted(conformance.glob("**/*.flow"))
    assert files
    for path in files:
        same_by_both_paths(path.read_text(encoding="utf-8"), str(path))


def test_generated_project_modules() -> None:
    import random

    rng = random.Random(3)
    assert same_by_both_paths(COMMON)
    for i in range(4):
        assert same_by_both_paths(cell_module(i, rng))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(GENERATED)
def test_programs_from_the_grammar(text: str) -> None:
    same_by_both_paths(text)


def test_a_syntax_error_falls_back_to_the_driver() -> None:
    module, diags = parse_text("reactor R() -> int {\n    step a beep()\n    return 1\n}\nsignal x.y\n")
    assert [d.code for d in diags.items] == ["BBF001"]
    assert "expected `=`" in diags.items[0].message
    assert [type(d).__name__ for d in module.decls] == ["ReactorDecl", "SignalDecl"]  # recovered past it


def test_a_clean_file_with_a_malformed_literal_keeps_its_diagnostics() -> None:
    text = 'reactor R() -> int {\n    fail "bad \\q"\n}\n'
    assert same_by_both_paths(text)
    assert [d.code for d in parse_text(text)[1].items] == ["BBF002"]


def test_brackets_around_an_expression_belong_to_the_span_of_what_holds_it() -> None:
    text = ("reactor R(a: int) -> int {\n    let x = (a + 1)\n    let y = ((a)) * (2)\n"
            "    step s = f(v: (x)) when (y > 1) timeout 1s\n    return (-(x))\n}\n")
    assert same_by_both_paths(text)
    let = parse_text(text)[0].decls[0].body.stmts[0]
    assert (let.span.column, let.span.end_column) == (5, 20)  # to the closing bracket


def test_a_long_sum_extends_one_list_instead_of_copying_it_term_by_term() -> None:
    """`1 + 1 + ...` reduces lark's left-recursive `__sum_star: __sum_star PLUS product` once per term; each
    reduction must extend the terms gathered so far, not copy them, or a sum of n terms costs n**2 (32,000
    terms took 7 s to be refused)."""
    parser = flow_parser()
    _, callbacks = _callbacks(parser)
    index = next(i for i, (rule, *_) in enumerate(_shapes(parser))
                 if rule.origin.name.startswith("__sum_star") and len(rule.expansion) == 3)
    gathered = _Node()
    gathered.value = terms = ["1", "+", "1"]
    reduced = callbacks[index]([gathered, Token("PLUS", "+", line=1, column=9, end_line=1, end_column=10), "1"])
    assert reduced.value is terms
    assert terms == ["1", "+", "1", "+", "1"]
