"""End to end: agents compiled from .flow source, served on the real bus, router and agent server,
commanding simulated robots through the real RobotProxy, on the virtual-time loop."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bbflow.runtime.clock import run_virtual
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.faults import Fault, Faults
from e2e_flows import build, serve_agents

EXAMPLE = Path(__file__).parent.parent / "examples" / "pick_and_place"
CELL = (EXAMPLE / "flows" / "cell.flow").read_text(encoding="utf-8")
ARM_TABLE = tomllib.loads((EXAMPLE / "bbflow.toml").read_text(encoding="utf-8"))["robot"]["arm"]
POSE = {"x": 0.1, "y": 0.2, "z": 0.3}
PLACE = {"x": 0.5, "y": 0.0, "z": 0.3}
REQUEST = {"type": "pick.requested", "data": {"pick": POSE, "place": PLACE}}


@pytest.fixture(scope="module")
def cell():
    return build(CELL)


def _picker(cell, signals, faults=(), gap=0.0):
    robots = {"arm": ("Arm", ARM_TABLE, Faults("<test>", tuple(faults)))}
    return serve_agents(cell, robots, {"Picker": "arm"}, signals, gap=gap)


def _emitted(run, signal_type):
    return [e for e in run.named("signal.emit") if e["type"] == signal_type]


def test_picker_picks_and_counts(cell):
    run = _picker(cell, [REQUEST, REQUEST], gap=5.0)
    assert [e["data"] for e in _emitted(run, "pick.completed")] == [{"at": PLACE}] * 2
    assert run.servers["Picker"].state == {"busy": False, "done": 2}
    assert [e["event"] for e in run.named("run.ok", "run.failed")] == ["run.ok", "run.ok"]
    assert run.tasks_left == 0


def test_picker_rejects_while_busy(cell):
    run = _picker(cell, [REQUEST, REQUEST, REQUEST])
    assert len(_emitted(run, "pick.completed")) == 1
    assert [e["data"] for e in _emitted(run, "pick.rejected")] == [{"reason": "busy"}] * 2
    assert run.servers["Picker"].state == {"busy": False, "done": 1}


def test_picker_reports_a_failed_pick_and_goes_on(cell):
    jam = Fault(1, "close_gripper", 1, error="jammed")
    run = _picker(cell, [REQUEST, REQUEST], faults=[jam], gap=5.0)
    failed = _emitted(run, "pick.failed")
    assert len(failed) == 1 and "jammed" in failed[0]["data"]["reason"]
    assert len(_emitted(run, "pick.completed")) == 1
    assert run.servers["Picker"].state == {"busy": False, "done": 1}
    # the failed run rolled back: approach undone by home()
    undone = [e["step"] for e in run.named("undo.ok")]
    assert undone == ["approach"]


def test_picker_raises_the_alarm_when_the_arm_faults(cell):
    # `disarm` on a command whose driver then fails to disarm is not simulated; a disarm drill halts the run
    run = _picker(cell, [REQUEST], faults=[Fault(1, "move_to", 2, disarm=True)])
    assert [e["event"] for e in run.named("run.halted")] == ["run.halted"]
    failed = _emitted(run, "pick.failed")
    assert len(failed) == 1 and "halted" in failed[0]["data"]["reason"]
    assert not run.named("undo.start")
    assert run.servers["Picker"].state["busy"] is False


COORDINATION = """\
signal job.request: {x: float}
signal task.assign: {robot: str, x: float}
signal task.done: {robot: str, x: float}
signal task.failed: {robot: str, reason: str}
signal job.report: {done: int, failed: int}
signal shift.check: {zero: float}

robot Arm {
    states idle
    limit motion 1
    command move(x: float) -> float category motion undo move(x: 0.0)
    command probe() -> float readonly
    event seen: {x: float}
}

reactor Go(x: float) -> float on Arm {
    step there = move(x: x)
    step check = probe() after there
    return there
}

agent Left on Arm {
    state { moves: int = 0, seen: int = 0, safety: int = 0 }
    on task.assign as t when t.data.robot == "left" {
        run Go(x: t.data.x)
            then { set moves = moves + 1  emit task.done {robot: "left", x: result} }
            else { emit task.failed {robot: "left", reason: error.message} }
    }
    on task.assign { }
    on robot.event.seen { set seen = seen + 1 }
    on robot.safety.changed { set safety = safety + 1 }
    on robot.** { }
    on ** { }
}

agent Right on Arm {
    state { moves: int = 0, seen: int = 0, safety: int = 0 }
    on task.assign as t when t.data.robot == "right" {
        run Go(x: t.data.x)
            then { set moves = moves + 1  emit task.done {robot: "right", x: result} }
            else { emit task.failed {robot: "right", reason: error.message} }
    }
    on task.assign { }
    on robot.event.seen { set seen = seen + 1 }
    on robot.safety.changed { set safety = safety + 1 }
    on robot.** { }
    on ** { }
}

agent Coordinator {
    state { left_next: bool = true, done: int = 0, failed: int = 0, reports: int = 0, ratio: float = 0.0 }
    on job.request as j {
        if left_next { emit task.assign {robot: "left", x: j.data.x} }
        else { emit task.assign {robot: "right", x: j.data.x} }
        set left_next = not left_next
    }
    on task.done {
        set done = done + 1
        if done == 2 { schedule job.report {done: done, failed: failed} in 1s }
    }
    on task.failed { set failed = failed + 1 }
    on job.report as r { set reports = reports + r.data.done }
    on shift.check as c {
        set done = done + 100
        set ratio = 1.0 / c.data.zero
    }
    on ** { }
}
"""
ROBOTS = {
    "left": ("Arm", {"sim": {"events": [{"after": "move", "event": "seen", "data": {"x": 1.0}}]}}, None),
    "right": ("Arm", {}, None),
}
AGENTS = {"Left": "left", "Right": "right", "Coordinator": None}


@pytest.fixture(scope="module")
def coordination():
    return build(COORDINATION)


def _job(x):
    return {"type": "job.request", "data": {"x": x}}


def test_a_coordinator_shares_tasks_between_two_robot_agents(coordination):
    run = serve_agents(coordination, ROBOTS, AGENTS, [_job(1.0), _job(2.0), _job(3.0)], gap=0.0)
    left, right, boss = (run.servers[n] for n in ("Left", "Right", "Coordinator"))
    assert left.state["moves"] == 2 and right.state["moves"] == 1
    assert boss.state["done"] == 3 and boss.state["failed"] == 0
    done = sorted((e["data"]["robot"], e["data"]["x"]) for e in _emitted(run, "task.done"))
    assert done == [("left", 1.0), ("left", 3.0), ("right", 2.0)]
    # the scheduled report came a second later, as a turn of its own
    reports = [e for e in run.named("signal.emit") if e["type"] == "job.report"]
    assert len(reports) == 1 and reports[0]["data"] == {"done": 2, "failed": 0}
    assert boss.state["reports"] == 2
    # each robot drove its own arm, one run per task
    assert run.robots["left"]._calls["move"] == 2 and run.robots["right"]._calls["move"] == 1
    assert run.tasks_left == 0


def test_standard_robot_signals_reach_only_the_agent_of_that_robot(coordination):
    run = serve_agents(coordination, ROBOTS, AGENTS, [_job(1.0), _job(2.0)])
    left, right, boss = (run.servers[n] for n in ("Left", "Right", "Coordinator"))
    # only the left robot's sim publishes `seen`, after each of its moves
    assert left.state["seen"] == 1 and right.state["seen"] == 0
    seen_in = [e for e in run.named("signal.in") if e["type"] == "robot.event.seen"]
    assert [e["source"] for e in seen_in] == ["/robot/left"]
    routed = [e["agent"] for e in run.named("signal.routed") if e["type"].startswith("robot.")]
    assert "Coordinator" not in routed
    # each agent saw its own robot armed (disarmed -> armed), not the other's
    assert left.state["safety"] == 1 and right.state["safety"] == 1
    safety_routes = [e["agent"] for e in run.named("signal.routed") if e["type"] == "robot.safety.changed"]
    assert sorted(safety_routes) == ["Left", "Right"]


def test_a_failing_handler_leaves_the_state_unchanged_and_the_agent_goes_on(coordination):
    check = {"type": "shift.check", "data": {"zero": 0.0}}
    run = serve_agents(coordination, ROBOTS, AGENTS, [check, _job(1.0)], gap=1.0)
    boss = run.servers["Coordinator"]
    errors = run.named("agent.error")
    assert len(errors) == 1
    error = errors[0]
    assert error["agent"] == "Coordinator" and error["route"] == "shift.check"
    line = COORDINATION.splitlines().index("        set ratio = 1.0 / c.data.zero") + 1
    assert error["line"] == line
    assert f"main.flow:{line}" in error["error"]["message"]
    assert "division by zero" in error["error"]["message"]
    # `set done = done + 100` ran before the failure and was rolled back with the turn
    assert boss.state["done"] == 1 and boss.state["ratio"] == 0.0
    assert boss.stats.errors == 1
    assert len(_emitted(run, "task.done")) == 1


DIVIDE = """\
signal go: {n: int}

reactor Divide(n: int) -> float {
    let q = 10 / n
    return q
}

agent Div {
    state { v: float = 0.0 }
    on go as g {
        set v = 10 / g.data.n
    }
}
"""


def test_an_agent_and_a_reactor_word_the_same_error_alike():
    """A handler's error said ``set v: ZeroDivisionError: division by zero`` where a reactor's said
    ``q: division by zero``: Python's class name is not part of an error a flow reports."""
    program = build(DIVIDE)
    run = serve_agents(program, {}, {"Div": None}, [{"type": "go", "data": {"n": 0}}])
    (error,) = run.named("agent.error")
    assert error["error"] == {"message": "set v: division by zero (at main.flow:11)", "code": "expression"}
    result = run_virtual(run_reactor(program, "Divide", {"n": 0}))
    assert (result.error.message, result.error.code) == ("q: division by zero (at main.flow:4)", "expression")
