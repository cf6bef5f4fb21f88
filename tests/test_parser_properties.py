"""Properties: whatever the text, the front end returns a module and coded diagnostics, never an exception."""

from __future__ import annotations

from pathlib import Path

from arm_spec import GRIP_ENUM, POSE_TYPE, arm_robot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark.lexer import PatternStr

from bbflow.compiler import ast
from bbflow.compiler.syntax.parser import flow_parser, parse_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
SAMPLE = f"""# a sample program, used when the shared conformance cases are absent
{POSE_TYPE}
{GRIP_ENUM}
signal pick.requested: {{pick: Pose, place: Pose}}
signal cell.alarm
{arm_robot("command wave() -> bool allowed idle")}
""" + """action locate(color: str) -> Pose? pure = "cell.vision:locate"
reactor Pick(pick: Pose, place: Pose) -> Pose on Arm {
    concurrency 2
    step approach = move_to(target: pick) retry 2 backoff 200ms max 1s undo move_to(target: place)
    step grip = close_gripper(force: 15.0) after approach
    step g = wait_event(force) where g.newtons > 5.0 timeout 2s after grip
    let n = len([1, 2]) ?? 0
    map m over [pick] as p concurrency 1 { step v = move_to(target: p) return v }
    switch s on n { case 1, 2 { fail "no \\u{1F916}" } default { return approach } }
}
agent Picker on Arm {
    state { busy: bool = false }
    on pick.requested as req when not busy priority -1 {
        set busy = true
        run Pick(pick: req.data.pick, place: req.data.place) then { emit cell.alarm } else { set busy = false }
        if busy { schedule cell.alarm {} in 1s } else { emit cell.alarm }
    }
    on robot.event.** { }
}
"""


def _programs() -> list[str]:
    files = sorted(SHARED.glob("**/*.flow")) if SHARED.is_dir() else []
    return [f.read_text(encoding="utf-8") for f in files] or [SAMPLE]


PROGRAMS = _programs()
CODES = {"BBF001", "BBF002"}


def _check(text: str) -> None:
    module, diags = parse_text(text, "p.flow")
    assert isinstance(module, ast.Module)
    assert {d.code for d in diags} <= CODES, [(d.code, d.message) for d in diags]
    for d in diags:
        assert d.span.line >= 1 and d.span.column >= 1 and d.message
        assert "ANON" not in d.message and "$END" not in d.message


def _terminal_strategies() -> dict[str, st.SearchStrategy[str]]:
    """Every terminal spelled with spaces around it, so that generated programs are mostly lexable."""
    words = {
        "NAME": st.sampled_from(["a", "pick", "x_1", "Pose", "max", "state", "idle"]),
        "NUMBER": st.sampled_from(["0", "42", "1_000", "0.5", "1e-3", "250ms", "1.5s", "2m", "1h", "1__0", "3x"]),
        "STRING": st.sampled_from(['""', '"a b"', '"q\\"\\n\\u{1F916}"', '"bad \\q"']),
        "SIGNAL_TYPE": st.sampled_from(["pick.requested", "cell.alarm", "robot.state.changed"]),
        "PATTERN": st.sampled_from(["pick.*", "cell.**", "a.b", "robot.event.*"]),
        "WS": st.just(" "),
        "COMMENT": st.just("# c\n"),
    }
    out = {name: strat.map(lambda s: f" {s} ") for name, strat in words.items()}
    for term in flow_parser().terminals:
        if isinstance(term.pattern, PatternStr):
            out[term.name] = st.just(f" {term.pattern.value} ")
    return out


GENERATED = from_lark(flow_parser(), explicit=_terminal_strategies())
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
