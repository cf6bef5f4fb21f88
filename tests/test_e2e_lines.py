"""End to end: an expression that fails in generated code names its .flow line (in the event's message
and as a PEP 678 note), and a driver that returns a wrong shape fails the step naming command and field."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bbflow.runtime.clock import run_virtual
from bbflow.runtime.driver import Driver
from bbflow.runtime.events import Recorder
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.proxy import RobotProxy
from e2e_flows import ROBOT, Generated, build, run_on_sim


def _line(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def _run(body: str, n: int = 0):
    source = ROBOT + "\nreactor Main(n: int) -> int on R {\n" + body + "}\n"
    out = run_on_sim(build(source), Generated(source, {}, {}, {"n": n}, (), {}))
    return source, out


@pytest.mark.parametrize(("body", "marker", "event"), [
    ("    step a = p1(v: [1, 2][n + 5]) irreversible \"x\"\n    return a\n", "[n + 5]", "step.error"),
    ("    let x = round(10 / n)\n    step a = p1(v: x) irreversible \"x\"\n    return a\n", "round(10 / n)", None),
    ("    step a = p1(v: 1) when 3 / n > 1 irreversible \"x\"\n    return n\n", "3 / n", None),
    ("    step a = m1(v: 1) timeout 10ms fallback round(7 / n) irreversible \"x\"\n    return n\n", "fallback round(7 / n)",
     None),
    ("    step a = p1(v: 1) irreversible \"x\"\n    return [a][n + 1]\n", "[a][n + 1]", None),
])
def test_expression_errors_name_the_flow_line(body, marker, event):
    source, out = _run(body)
    line = _line(source, marker)
    assert out.result.status == "failed"
    error = out.result.error
    assert error.code == "expression"
    assert f"(at main.flow:{line})" in error.message
    assert f"at main.flow:{line}" in getattr(error, "__notes__", [])
    failed = [e for e in out.events if e["event"] == "run.failed"][0]
    assert f"main.flow:{line}" in failed["error"]["message"]
    if event is not None:
        errors = [e for e in out.events if e["event"] == event]
        assert errors and f"main.flow:{line}" in errors[-1]["error"]["message"]


def test_an_undo_expression_error_names_its_line():
    body = ("    step a = p0(v: n) undo back(v: round(10 / n))\n"
            "    step b = look(v: a) after a\n"
            "    switch c on b + n { case 0 { fail \"stop\" } default { return 1 } }\n"
            "    return c\n")
    source, out = _run(body)
    line = _line(source, "10 / n")
    undo_errors = [e for e in out.events if e["event"] == "undo.error"]
    assert len(undo_errors) == 3
    assert all(f"main.flow:{line}" in e["error"]["message"] for e in undo_errors)
    assert [u.step for u in out.result.undo_errors] == ["a"]


class ShapeDriver(Driver):
    """Returns a pose without its ``z``."""

    async def run_command(self, name: str, kwargs: dict[str, Any]) -> Any:
        await asyncio.sleep(0.01)
        return {"x": 1.0, "y": 2.0}


POSE_ROBOT = """\
type Pose = {x: float, y: float, z: float}
robot Arm {
    command move_to(target: Pose) -> Pose
}
reactor Go(p: Pose) -> Pose on Arm {
    step there = move_to(target: p) retry 1
    return there
}
"""


def test_a_wrong_shape_from_the_driver_fails_the_step_naming_command_and_field():
    program = build(POSE_ROBOT)

    async def main():
        rec = Recorder()
        async with RobotProxy(program.find("robots", "Arm"), "arm", ShapeDriver) as proxy:
            await proxy.call("arm", {})
            result = await run_reactor(program, "Go", {"p": {"x": 0.0, "y": 0.0, "z": 0.0}}, robot=proxy,
                                       observer=rec)
        return result, rec

    result, rec = run_virtual(main())
    assert result.status == "failed"
    assert result.error.code == "result"
    assert "move_to" in result.error.message and "z" in result.error.message
    errors = rec.named("step.error")
    assert len(errors) == 2  # both attempts
    assert all(e["error"]["command"] == "move_to" and "z" in e["error"]["message"] for e in errors)
