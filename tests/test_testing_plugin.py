"""``bbflow.testing``: the pytest plugin's ``flow`` fixture, and the example cell's own tests that use it."""

from __future__ import annotations

import datetime
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bbflow.testing import Events, Flow, FlowError

ROOT = Path(__file__).resolve().parent.parent

CELL = """
type Pose = {x: float, y: float, z: float}
signal go: {to: Pose}
signal done: {at: Pose}
robot Arm {
    limit motion 1
    command move_to(target: Pose) -> Pose category motion
    command home() -> Pose category motion
}
reactor Visit(to: Pose) -> Pose on Arm {
    step there = move_to(target: to) undo home()
    step back  = home() after there
    return back
}
agent Visitor on Arm {
    on go as g { run Visit(to: g.data.to) then { emit done {at: result} } }
    on done { }
    on robot.** { }
}
"""
TO = {"x": 1.0, "y": 0.0, "z": 0.0}


def test_the_example_cells_own_tests_pass_with_the_plugin() -> None:
    """They are a project's tests as a user writes them: the fixture comes from the pytest11 entry point."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"],
                          cwd=ROOT / "examples" / "pick_and_place", capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


def test_a_source_string_gets_a_simulated_robot_per_interface(flow: Flow) -> None:
    cell = flow.source(CELL)
    run = cell.run_reactor("Visit", to=TO)
    assert run.ok and run.result == {"x": 0.0, "y": 0.0, "z": 0.0}
    run.events.assert_completed("there", "back")
    agents = cell.run_agents({"type": "go", "data": {"to": TO}}, '{"type": "go", "data": {"to": 3}}')
    assert agents.ok and agents.events.emitted("done") == [{"at": {"x": 0.0, "y": 0.0, "z": 0.0}}]
    assert agents.events.dropped()[0][0] == "go"  # the second signal's data is not a Pose


def test_faults_and_the_virtual_clock(flow: Flow) -> None:
    cell = flow.source(CELL)
    slow = cell.run_reactor("Visit", {"to": TO}, faults=[{"command": "move_to", "delay": "1h"}])
    assert slow.ok and slow.events.named("run.ok")[0]["time"] >= 3600.0  # an hour, at no cost
    failed = cell.run_reactor("Visit", {"to": TO}, faults=[{"command": "home", "call": 1, "error": "x"}])
    assert failed.failed and "home failed: x" in failed.summary
    failed.events.assert_undone("there")
    with pytest.raises(AssertionError, match=r"undone: \['there'\], expected nothing"):
        failed.events.assert_undone()


def test_mistakes_fail_the_test_with_a_message(flow: Flow) -> None:
    with pytest.raises(FlowError, match="BBF101"):
        flow.source(CELL.replace("move_to(target: to)", "move(target: to)"))
    cell = flow.source(CELL)
    with pytest.raises(FlowError, match="no robot of this run has a command 'grip'"):
        cell.run_reactor("Visit", to=TO, faults=[{"command": "grip", "error": "x"}])
    with pytest.raises(FlowError, match="no reactor named"):
        cell.run_reactor("Nope")


def test_mistakes_in_run_reactors_arguments_are_said_in_its_terms_not_bbflow_runs(flow: Flow) -> None:
    """The messages named ``--input`` and ``--robot``, options this test never gave; a value JSON cannot hold
    (a datetime, NaN) raised Python's TypeError or spoke of JSON numbers."""
    cell = flow.source(CELL)
    with pytest.raises(FlowError, match=r"^inputs: Visit: input to: expected \{x: float, y: float, z: float\}, got int 3 "
                                        r"\(parameters: to: \{x: float, y: float, z: float\}\)$"):
        cell.run_reactor("Visit", to=3)
    with pytest.raises(FlowError, match=r"^inputs: Visit: missing input 'to'"):
        cell.run_reactor("Visit")
    with pytest.raises(FlowError, match=r"^inputs: to: not a value a flow takes \(Object of type datetime is not JSON "
                                        r"serializable\): give dicts, lists"):
        cell.run_reactor("Visit", to={"x": datetime.datetime(2026, 1, 1), "y": 0.0, "z": 0.0})
    with pytest.raises(FlowError, match=r"^inputs: to: NaN and infinity are not values a flow takes$"):
        cell.run_reactor("Visit", to={"x": math.nan, "y": 0.0, "z": 0.0})
    with pytest.raises(FlowError, match=r"^robot='lefty': no robot instance 'lefty' \(robots: arm\)$"):
        cell.run_reactor("Visit", to=TO, robot="lefty")
    with pytest.raises(FlowError, match=r"^robot='lefty': no robot instance"):
        cell.run_agents(robot="lefty")
    with pytest.raises(FlowError, match=r"^inputs: to: given twice \(in the dict and as a keyword argument\)$"):
        cell.run_reactor("Visit", {"to": TO}, to=TO)


def test_a_signal_that_is_not_json_fails_the_test_instead_of_being_skipped_unseen(flow: Flow) -> None:
    """``bbflow run`` skips such a line with a note on standard error; the plugin dropped the note, so the run
    went on as if the signal had never been given."""
    cell = flow.source(CELL)
    with pytest.raises(FlowError, match=r"^signals: signal 2: not JSON: .* \(give a dict, or one line of JSON\)$"):
        cell.run_agents({"type": "go", "data": {"to": TO}}, '{"type": "go", data: {}}')
    with pytest.raises(FlowError, match=r"^signals: signal 1: not a value a flow takes \(Object of type set is not "):
        cell.run_agents({"type": "go", "data": {"to": {1, 2}}})


def test_event_helpers() -> None:
    events = Events([{"event": "step.ok", "step": "a", "reactor": "R"}, {"event": "undo.ok", "step": "a", "reactor": "R"},
                     {"event": "signal.emit", "type": "t", "data": 1}])
    assert events.steps("step.ok") == ["a"] and events.emitted("t") == [1] and events.named("undo.ok")
    events.assert_sequence("step.ok", "signal.emit")
    with pytest.raises(AssertionError):
        events.assert_sequence("signal.emit", "step.ok")
    with pytest.raises(AssertionError):
        events.assert_completed("b")
