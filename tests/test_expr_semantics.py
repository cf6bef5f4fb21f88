"""What a checked expression means when it runs: the language's meaning, never Python's.

Each case is a reactor of one module, compiled once, run on the simulated robot and a virtual clock. A value
the checker could not prove (`any`) is checked where it is used; arithmetic never makes a NaN or an infinity;
a run's value has the type its reactor declares.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from bbflow.testing import Flow, FlowProject

CELL = """
type Pose = {x: float, y: float, z: float}
robot Arm {
    command setf(v: float) -> float
}
action echo(x: float) -> any pure = "semantics_actions:echo"

reactor Overflow(a: float) -> float { return a * 1e308 }
reactor OverflowDuration(d: duration) -> duration { return d * 1e308 }
reactor NotANumber(a: float) -> float { return a * 1e308 - a * 1e308 }
reactor AnyOp(a: any, b: any) -> any { return a * b }
reactor AnyPlus(a: any) -> any { return a + 1 }
reactor AnyNot(a: any) -> bool { return not a }
reactor AnyField(a: any) -> any { return a.x }
reactor AnyIndex(a: any) -> any { return a["k"] }
reactor AnyLess(a: any) -> bool { return a < 1 }
reactor AnyEqual(a: any) -> bool { return a == 1 }
reactor AnyIn(a: any) -> bool { return 1 in a }
reactor AnySlice(xs: list[int], a: any) -> list[int] { return xs[a:] }
reactor StrHuge(a: int) -> str { return str(a * a * a * a * a * a * a * a * a * a * a * a * a * a * a * a) }
reactor EqualInList(a: any) -> bool { return [a] == [1] }
reactor EqualInRecord(a: any) -> bool { return a == {x: 1} }
reactor InList(a: any) -> bool { return a in [1, 2] }
reactor InAny(a: any) -> bool { return 1 in a }
reactor SwitchAny(a: any) -> str {
    switch v on a { case 1 { return "one" } case 0 { return "zero" } default { return "other" } }
    return v
}
reactor AnyKeys(a: any) -> list[str] { return keys(a) }
reactor AnyMin(a: any) -> any { return min(a) }
reactor AnyMap(a: any) -> list[any] {
    map out over a as item { return item }
    return out
}
reactor AnyReturn(a: any) -> float { return a }
reactor AnyWhen(a: any) -> float? on Arm {
    step s = setf(v: 1.0) when a
    return s
}
reactor AnyAction(a: any) -> any {
    step s = echo(x: a)
    return s
}
reactor MissingKey(m: map[int]) -> int { return m["nope"] }
reactor Widened() -> float { return min(1, 2.5) }
reactor Branches(k: int) -> float {
    switch out on k { case 1 { return 1 } default { return 2.5 } }
    return out
}
reactor JoinedList() -> str { return str([1, 2.5]) }
reactor JoinedMin() -> str { return str(min(1, 2.5)) }
reactor JoinedMax() -> any { return max(1, 0.5) }
reactor JoinedFallback(a: int?) -> str { return str(a ?? 2.5) }
reactor JoinedFallbackRight(a: float?) -> any { return [a ?? 1] }
reactor JoinedSwitch(k: int) -> str {
    switch v on k { case 1 { return 1 } default { return 2.5 } }
    return str(v)
}
reactor JoinedSwitchList(k: int) -> any {
    switch v on k { case 1 { return [1] } default { return [2.5] } }
    return v
}
reactor JoinedMap(xs: list[int]) -> any {
    map out over xs as x {
        switch v on x { case 1 { return 1 } default { return 0.5 } }
        return v
    }
    return out
}
"""


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> FlowProject:
    actions = tmp_path_factory.mktemp("actions")
    (actions / "semantics_actions.py").write_text("def echo(x):\n    return type(x).__name__\n")
    sys.path.insert(0, str(actions))
    try:
        yield Flow(Path(tmp_path_factory.mktemp("cell"))).source(CELL)
    finally:
        sys.path.remove(str(actions))
        sys.modules.pop("semantics_actions", None)


def _error(cell: FlowProject, reactor: str, **inputs: Any) -> dict[str, Any]:
    run = cell.run_reactor(reactor, inputs)
    assert run.failed, (reactor, run.result)
    (failed,) = run.events.named("run.failed")
    return failed["error"]


@pytest.mark.parametrize(("reactor", "inputs", "message"), [
    ("Overflow", {"a": 10.0}, "the result is too large for a float"),
    ("OverflowDuration", {"d": 10.0}, "the result is too large for a float"),
    ("NotANumber", {"a": 10.0}, "the result is too large for a float"),
])
def test_arithmetic_that_leaves_the_floats_fails_the_expression(cell: FlowProject, reactor: str,
                                                                inputs: dict[str, Any], message: str) -> None:
    # as a division by zero does: no computed value is a NaN or an infinity that a robot would refuse later
    error = _error(cell, reactor, **inputs)
    assert error["code"] == "expression" and message in error["message"], error


@pytest.mark.parametrize(("reactor", "inputs", "message"), [
    ("AnyOp", {"a": "ab", "b": 3}, "`*` does not apply to a str and an int"),  # not "ababab"
    ("AnyOp", {"a": [1], "b": 100000000}, "`*` does not apply to a list and an int"),  # not a list of 10^8
    ("AnyPlus", {"a": True}, "`+` does not apply to a bool and an int"),  # not 2
    ("AnyNot", {"a": 5}, "expected bool, got int 5"),  # not False
    ("AnyField", {"a": 3}, "an int has no fields (reading `.x`)"),
    ("AnyField", {"a": {"y": 1}}, "no field `x` in the record"),
    ("AnyIndex", {"a": [1]}, "a list index is an int, not a str"),
    ("AnyLess", {"a": "s"}, "cannot compare a str with an int (`<`)"),
    ("AnyIn", {"a": 5}, "`in` looks in a list, a map's keys or a str, not in an int"),
    ("AnySlice", {"xs": [1], "a": [0]}, "a slice's bounds are ints, not a list"),  # not Python's '<' words
    ("AnySlice", {"xs": [1], "a": True}, "a slice's bounds are ints, not a bool"),  # not xs[1:]
    ("AnyKeys", {"a": [2, 1]}, "keys() takes a map, not a list"),  # not [1, 2]
    ("AnyMin", {"a": [1, "x"]}, "min() compares numbers or strs, not a str and an int"),
    ("AnyMap", {"a": {"x": 1}}, "out: expected list[any], got a record"),  # not its keys
    ("AnyReturn", {"a": "text"}, "return: expected float, got str 'text'"),
    ("AnyWhen", {"a": 1}, "expected bool, got int 1"),
    ("AnyAction", {"a": "text"}, "x: expected float, got str 'text'"),  # never handed to the action
])
def test_an_operation_on_any_has_the_languages_meaning_or_fails(cell: FlowProject, reactor: str,
                                                                inputs: dict[str, Any], message: str) -> None:
    error = _error(cell, reactor, **inputs)
    assert error["code"] == "expression" and message in error["message"], error
    assert "cell.flow:" in error["message"]  # says where


@pytest.mark.parametrize(("reactor", "inputs", "value"), [
    ("AnyOp", {"a": 2, "b": 2.5}, 5.0),
    ("AnyPlus", {"a": "s"}, None),
    ("AnyEqual", {"a": True}, False),  # a bool is not an int, whatever Python says
    ("AnyEqual", {"a": 1.0}, True),
    ("AnyIn", {"a": {"1": 0}}, False),
    ("AnyAction", {"a": 2}, "float"),  # an int is widened, as the action declares
    ("SwitchAny", {"a": True}, "other"),  # `true` is not `case 1`, whatever Python says
    ("SwitchAny", {"a": False}, "other"),
    ("SwitchAny", {"a": 1.0}, "one"),
    ("EqualInList", {"a": True}, False),  # nor is `[true]` `[1]`
    ("EqualInList", {"a": 1.0}, True),
    ("EqualInRecord", {"a": {"x": True}}, False),
    ("InList", {"a": True}, False),
    ("InList", {"a": 2.0}, True),
    ("InAny", {"a": [True]}, False),
])
def test_an_operation_on_any_that_fits_gives_its_value(cell: FlowProject, reactor: str, inputs: dict[str, Any],
                                                       value: Any) -> None:
    run = cell.run_reactor(reactor, inputs)
    if value is None:
        assert run.failed
    else:
        assert run.ok and run.result == value and type(run.result) is type(value), run.result


def test_a_missing_map_key_is_said_without_python_quotes(cell: FlowProject) -> None:
    error = _error(cell, "MissingKey", m={"a": 1})
    assert error["message"].startswith("return: no key 'nope' in the map (at "), error


@pytest.mark.parametrize(("reactor", "inputs"), [("Widened", {}), ("Branches", {"k": 1})])
def test_a_run_value_has_its_declared_type(cell: FlowProject, reactor: str, inputs: dict[str, Any]) -> None:
    run = cell.run_reactor(reactor, inputs)
    assert run.ok and run.result == 1.0 and isinstance(run.result, float), run.result


@pytest.mark.parametrize(("reactor", "inputs", "value"), [
    ("JoinedList", {}, "[1.0, 2.5]"),  # the list is a list[float]: its 1 is a float
    ("JoinedMin", {}, "1.0"),
    ("JoinedMax", {}, 1.0),
    ("JoinedFallback", {"a": 1}, "1.0"),  # `a ?? 2.5` is a float, whichever side gives it
    ("JoinedFallbackRight", {"a": None}, [1.0]),
    ("JoinedSwitch", {"k": 1}, "1.0"),  # a switch's value has the type of all its cases
    ("JoinedSwitchList", {"k": 1}, [1.0]),
    ("JoinedMap", {"xs": [1, 2]}, [1.0, 0.5]),
])
def test_a_value_has_the_type_the_checker_joined_its_parts_in(cell: FlowProject, reactor: str,
                                                               inputs: dict[str, Any], value: Any) -> None:
    # the checker types each of these as float (or list[float]): an int among them must run as a float too,
    # or str() shows `1` for a float and an `any` (an emitted payload, a result) carries an int
    run = cell.run_reactor(reactor, inputs)
    assert run.ok and run.result == value and repr(run.result) == repr(value), run.result


def test_str_of_an_int_too_long_to_write_fails_in_the_languages_words(cell: FlowProject) -> None:
    error = _error(cell, "StrHuge", a=10**300)  # 4,801 digits
    assert error["code"] == "expression", error
    assert "str() cannot write an int of more than 4300 digits (at cell.flow:" in error["message"], error
    assert "sys." not in error["message"]  # not Python's "use sys.set_int_max_str_digits() to increase the limit"


AGENT = """
signal go: {d: duration}
signal later
agent Later {
    state { n: int = 0 }
    on go as r { schedule later in r.data.d * 2 }
    on later { set n = n + 1 }
}
"""


def test_the_delay_of_a_schedule_may_be_computed(tmp_path: Path) -> None:
    # `schedule ... in EXPR` type-checked, but the code generator took only a literal: BBF900
    project = Flow(tmp_path).source(AGENT)
    run = project.run_agents({"type": "go", "data": {"d": 1.5}})
    (sent,) = run.events.named("signal.emit")
    assert run.ok and sent["type"] == "later" and sent["time"] == 3.0, run.events
    run = project.run_agents({"type": "go", "data": {"d": 1e308}})  # computed when the handler runs: it fails
    (error,) = run.events.named("agent.error")
    assert "schedule later in: " in error["error"]["message"] and "too large for a float" in error["error"]["message"]
    assert not run.events.named("signal.emit")
