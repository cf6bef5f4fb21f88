"""Differential tests of the checker against the runtime: whatever ``bbflow check`` accepts runs, and what
the runtime computes is what the language says, of exactly the type the checker gave it.

Each example is a module of generated reactors (``expr_programs``), compiled by the real compiler and run on
the simulated robot and a virtual clock. Well-typed expressions are compared with the value the docs give
them: ``E<k>`` returns one as ``any`` (its value as the runtime computed it, not conformed), ``T<k>`` as the
type it was built for (which the checker must give it). Expressions put together at random are kept where
the checker accepts them: each must run to a value of the type the checker gave it, or fail the expression
in the language's words (a failure found once becomes a plain test in ``test_expr_semantics.py``).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from expr_programs import ENUM, INPUTS, RECORD, Expr, Failed, any_expressions, expressions, same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbflow.compiler import ast
from bbflow.compiler.codegen.types import to_rtype
from bbflow.compiler.pipeline import compile_paths
from bbflow.runtime import types as rt
from bbflow.runtime.types import non_finite
from bbflow.testing import Flow, FlowError

TYPES = ("int", "float", "duration", "bool", "str", "list[int]", "list[float]", "list[str]", "map[int]", "int?",
         "float?", "Grip", "P")
#: words of Python, not of bbflow, that no message may show
PYTHON = re.compile(r"Traceback|NoneType|object|unsupported operand|subscriptable|'(int|float|str|list|dict)'"
                    r"|__|KeyError|IndexError|\bdict\b|\btuple\b|division result|convert to float")


def module(exprs: list[Expr]) -> str:
    """``E<k>`` and ``T<k>`` for each expression; with the one before it, when their types join, ``S<k>`` (a
    ``switch`` on ``i`` returning either) and ``M<k>`` (a ``map`` over ``xs`` returning it for each item)."""
    params = ", ".join(f"{n}: {t}" for n, (t, _) in INPUTS.items())
    lines = [ENUM, RECORD]
    for k, e in enumerate(exprs):
        lines.append(f"reactor E{k}({params}) -> any {{ return {e.text} }}")
        lines.append(f"reactor T{k}({params}) -> {e.type} {{ return {e.text} }}")
        if k and joined(exprs[k - 1].type, e.type):
            lines.append(f"reactor S{k}({params}) -> any {{ switch v on i {{ case 0, 1 {{ return {exprs[k - 1].text} }} "
                         f"default {{ return {e.text} }} }} return v }}")
            lines.append(f"reactor M{k}({params}) -> any {{ map out over xs as item {{ return {e.text} }} return out }}")
    return "\n".join(lines) + "\n"


def joined(a: str, b: str) -> str | None:
    """The type of a switch whose cases return an ``a`` and a ``b`` (None: they do not join)."""
    return a if a == b else "float" if {a, b} == {"int", "float"} else None


def expected(e: Expr, env: dict[str, Any]) -> Any:
    try:
        return e.eval(env)
    except Failed as exc:
        return exc


def expected_switch(first: Expr, other: Expr, env: dict[str, Any]) -> Any:
    want = expected(first if env["i"] in (0, 1) else other, env)
    return float(want) if joined(first.type, other.type) == "float" and not isinstance(want, Failed) else want


def expected_map(e: Expr, env: dict[str, Any]) -> Any:
    if not env["xs"]:
        return []
    want = expected(e, env)
    return want if isinstance(want, Failed) else [want] * len(env["xs"])


@st.composite
def programs(draw: st.DrawFn) -> list[Expr]:
    """One to four expressions; each but the first is often of a type that joins the one before it."""
    out: list[Expr] = []
    for _ in range(draw(st.integers(1, 4))):
        if out and draw(st.booleans()):
            prev = out[-1].type  # a number is followed by the other kind: `case 0 { return 1 } default { return 2.5 }`
            ty = {"int": "float", "float": "int"}.get(prev, prev)
        else:  # numbers half the time: most of what can go wrong between an int and a float
            ty = draw(st.sampled_from(TYPES) | st.sampled_from(("int", "float")))
        out.append(draw(expressions(ty)))
    return out


def check_run(project: Any, name: str, env: dict[str, Any], want: Any, source: str) -> None:
    run = project.run_reactor(name, env)
    if isinstance(want, Failed):
        assert run.failed, (name, run.result, want, source)
        (failed,) = run.events.named("run.failed")
        error = failed["error"]
        assert error["code"] == "expression", (name, error, source)
        assert "(at cell.flow:" in error["message"], error
        assert not PYTHON.search(error["message"]), (name, error, source)
    else:
        assert run.ok, (name, run.events.named("run.failed"), want, source)
        assert same(run.result, want), (name, run.result, want, source)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(), st.fixed_dictionaries({n: values for n, (_, values) in INPUTS.items()}))
def test_checked_expressions_compute_what_the_language_says(exprs: list[Expr], env: dict[str, Any]) -> None:
    source = module(exprs)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            project = Flow(Path(tmp)).source(source)
        except FlowError as exc:  # the checker must give each expression the type it was built for
            raise AssertionError(f"{exc}\n{source}") from None
        for k, e in enumerate(exprs):
            want = expected(e, env)
            check_run(project, f"E{k}", env, want, source)
            check_run(project, f"T{k}", env, want, source)
            if k and joined(exprs[k - 1].type, e.type):
                check_run(project, f"S{k}", env, expected_switch(exprs[k - 1], e, env), source)
                check_run(project, f"M{k}", env, expected_map(e, env), source)


def _refused(error: FlowError) -> set[int]:
    """The lines the checker refused (a compiler bug, BBF900, is not a refusal)."""
    assert "BBF900" not in str(error), error
    return {int(m) for m in re.findall(r"cell\.flow:(\d+):\d+: BBF", str(error))}


def _return_types(root: Path) -> dict[str, rt.RType]:
    """Each reactor's returned expression's type, as the checker found it."""
    result = compile_paths([root / "flows"])
    assert result.facts is not None
    (mod,) = [m for m in result.modules if m.name == "cell"]
    out = {}
    for decl in mod.decls:
        if isinstance(decl, ast.ReactorDecl):
            (ret,) = [s for s in decl.body.stmts if isinstance(s, ast.ReturnStmt)]
            out[decl.name.name] = to_rtype(result.facts.type_of(ret.value))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(any_expressions(), min_size=8, max_size=8),
       st.fixed_dictionaries({n: values for n, (_, values) in INPUTS.items()}))
def test_what_the_checker_accepts_runs_with_the_type_it_gave(texts: list[str], env: dict[str, Any]) -> None:
    params = ", ".join(f"{n}: {t}" for n, (t, _) in INPUTS.items())
    lines = {k: f"reactor U{k}({params}) -> any {{ return {t} }}" for k, t in enumerate(texts)}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(len(texts) + 1):  # drop what the checker refuses
            source = "\n".join([ENUM, RECORD, *lines.values()]) + "\n"
            try:
                project = Flow(Path(tmp)).source(source)
                break
            except FlowError as exc:
                refused = _refused(exc)
                assert refused, exc  # only the checker refuses (no BBF900)
                lines = {k: line for n, (k, line) in enumerate(lines.items(), start=3) if n not in refused}
        else:
            raise AssertionError("the checker never accepted what was left")
        types = _return_types(Path(tmp) / "bbflow-cell")
        for k in lines:
            name = f"U{k}"
            run = project.run_reactor(name, env)
            if run.ok:
                assert types[name].accepts(run.result), (name, types[name], run.result, source)
                assert same(types[name].conform(run.result), run.result), (name, types[name], run.result, source)
                assert non_finite(run.result) is None, (name, run.result, source)
            else:
                assert run.failed, (name, run.summary, source)
                (failed,) = run.events.named("run.failed")
                error = failed["error"]
                assert error["code"] == "expression", (name, error, source)
                assert "(at cell.flow:" in error["message"], error
                assert not PYTHON.search(error["message"]), (name, error, source)
