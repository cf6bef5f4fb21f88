"""Properties: whatever the text, the front end returns a module and coded diagnostics, never an exception."""

from __future__ import annotations

from flow_strategies import GENERATED, PROGRAMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbflow.compiler import ast
from bbflow.compiler.syntax.parser import parse_text

CODES = {"BBF001", "BBF002"}


def _check(text: str) -> None:
    module, diags = parse_text(text, "p.flow")
    assert isinstance(module, ast.Module)
    assert {d.code for d in diags} <= CODES, [(d.code, d.message) for d in diags]
    for d in diags:
        assert d.span.line >= 1 and d.span.column >= 1 and d.message
        assert "ANON" not in d.message and "$END" not in d.message


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(GENERATED)
def test_programs_from_the_grammar_parse_or_give_coded_diagnostics(text: str) -> None:
    _check(text)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(GENERATED)
def test_programs_from_the_grammar_with_valid_words_parse_cleanly(text: str) -> None:
    """Only keywords as declaration names and malformed sample literals may be reported."""
    _, diags = parse_text(text)
    for d in diags:
        assert d.code == "BBF002" or "is a keyword and cannot name" in d.message or "given twice" in d.message \
            or d.message.startswith("expected a") and ("duration" in d.message or "whole number" in d.message) \
            or "takes no type argument" in d.message or "can be called" in d.message, d.message


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A real program with a few characters or words deleted, inserted, replaced or swapped."""
    text = draw(st.sampled_from(PROGRAMS))
    pieces = ["{", "}", "(", ")", ",", ":", "=", "\"", "\\", "#", ".", "*", "?", "-", "\n", "step", "on", "when",
              "max", "return", "1s", "12mss", "é", "@", "\x00"]
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = min(len(text), i + draw(st.integers(1, 12)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "swap"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(pieces)) + text[i:]
        elif op == "replace":
            text = text[:i] + draw(st.sampled_from(pieces)) + text[j:]
        else:
            k = draw(st.integers(0, len(text) - 1))
            a, b = sorted((i, k))
            text = text[:a] + text[b:j if j > b else b + 1] + text[a:b] + text[(j if j > b else b + 1):]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_real_programs_parse_or_give_coded_diagnostics(text: str) -> None:
    _check(text)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=200))
def test_arbitrary_text_gives_coded_diagnostics(text: str) -> None:
    _check(text)
