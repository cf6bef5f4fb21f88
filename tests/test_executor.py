"""The reactor executor at the API level: the conformance run cases 01-05 and the scheduling rules."""

import uuid

import pytest

from bbflow.runtime import model
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.reactor_plan import PlanError
from runtime_fakes import PICK, PLACE, arm, op, ops, pick_and_place, program, reactor, run, steps_of

INPUTS = {"pick": PICK, "place": PLACE}


def names(recorder, *events):
    return [(e["event"], e["step"]) for e in recorder.events if e["event"] in events]


# --- conformance/run 01-05 -------------------------------------------------------------


def test_01_pick_and_place_ok():
    robot = arm()
    result, rec = run(pick_and_place(), robot, INPUTS)
    assert result.status == "ok"
    assert result.value == PLACE
    assert result.completed == ("ready", "approach", "grip", "gripped", "lift", "placed", "release")
    assert steps_of(rec, "step.ok") == list(result.completed)
    assert rec.events[0]["event"] == "run.start" and rec.events[0]["inputs"] == INPUTS
    assert rec.events[-1] == {**rec.events[-1], "event": "run.ok", "reactor": "PickAndPlace", "result": PLACE}
    assert not rec.named("undo.start", "step.error")
    assert robot.commands() == ["move_to", "close_gripper", "move_to", "move_to", "open_gripper"]


def test_02_grip_fails_rolls_back_the_approach():
    robot = arm().cue("close_gripper", error="jammed")
    result, rec = run(pick_and_place(), robot, INPUTS)
    assert result.status == "failed"
    assert (result.error.code, result.error.message) == ("command", "close_gripper: jammed")
    assert names(rec, "step.ok", "step.error", "undo.start", "undo.ok", "run.failed")[-5:] == [
        ("step.ok", "approach"), ("step.error", "grip"), ("undo.start", "approach"), ("undo.ok", "approach"),
        ("run.failed", None),
    ]
    assert "lift" not in steps_of(rec, "step.start")
    assert steps_of(rec, "undo.start") == ["approach"]
    assert robot.commands() == ["move_to", "close_gripper", "home"]


def test_03_undo_in_reverse_completion_order():
    robot = arm().cue("move_to", call=3, error="collision")
    result, rec = run(pick_and_place(), robot, INPUTS)
    assert result.status == "failed" and result.error.message == "move_to: collision"
    assert steps_of(rec, "undo.start") == ["lift", "grip", "approach"]
    assert len(rec.named("undo.ok")) == 3
    # each undo ran with the right values: lift back to pick, the gripper's default undo, then home
    undo_calls = robot.calls[-3:]
    assert [(c.command, c.kwargs) for c in undo_calls] == [
        ("move_to", {"target": PICK, "speed": 0.5}),
        ("open_gripper", {}),
        ("home", {}),
    ]
    assert rec.events.index(rec.named("step.error")[0]) < rec.events.index(rec.named("undo.start")[0])


def test_04_retry_then_succeed():
    robot = arm().cue("move_to", call=1, error="slip")
    result, rec = run(pick_and_place(), robot, INPUTS)
    assert result.status == "ok"
    retry = rec.named("step.retry")
    assert [(e["step"], e["attempt"], e["delay"]) for e in retry] == [("approach", 2, 0.05)]
    starts = [e for e in rec.named("step.start") if e["step"] == "approach"]
    assert [e["attempt"] for e in starts] == [1, 2]
    assert starts[1]["time"] - retry[0]["time"] == pytest.approx(0.05)  # the backoff, on the virtual clock
    assert not rec.named("undo.start")


def test_05_disarm_halts_without_undo():
    robot = arm().cue("move_to", call=2, disarm=True)
    result, rec = run(pick_and_place(), robot, INPUTS)
    assert result.status == "halted"
    assert result.error.code == "halted"
    assert result.completed == ("ready", "approach", "grip", "gripped")
    assert not rec.named("undo.start")
    assert "placed" not in steps_of(rec, "step.start")
    halted = rec.named("run.halted")
    assert len(halted) == 1 and halted[0]["completed"] == list(result.completed)
    assert robot.commands() == ["move_to", "close_gripper", "move_to"]  # nothing moved back


# --- start rules and concurrency -----------------------------------------------------------


def test_no_step_starts_before_its_dependencies_and_independent_steps_overlap():
    robot = ops().cue("op", match={"tag": "a"}, delay=0.05)
    r = reactor(op("a"), op("b"), op("c", "a", "b"), op("d", "c"))
    result, rec = run(r, robot)
    assert result.status == "ok"
    time_of = {(e["event"], e["step"]): e["time"] for e in rec.events}
    assert time_of[("step.start", "a")] == time_of[("step.start", "b")] == 0
    assert time_of[("step.start", "c")] == time_of[("step.ok", "a")] == pytest.approx(0.05)
    assert time_of[("step.start", "d")] == time_of[("step.ok", "c")]
    assert result.completed == ("b", "a", "c", "d")


def test_concurrency_bounds_steps_in_flight():
    robot = ops()
    r = reactor(*(op(f"s{i}") for i in range(7)), concurrency=2)
    result, _ = run(r, robot)
    assert result.status == "ok"
    assert robot.max_in_flight() == 2
    assert len(robot.calls) == 7


def test_default_concurrency_is_eight():
    robot = ops()
    result, _ = run(reactor(*(op(f"s{i}") for i in range(20))), robot)
    assert result.status == "ok" and robot.max_in_flight() == 8


def test_step_timeout_fails_the_attempt_and_the_driver_sees_the_cancellation():
    robot = ops().cue("op", match={"tag": "a"}, hang=True)
    result, rec = run(reactor(op("a", timeout=2.0)), robot)
    assert result.status == "failed"
    assert result.error.code == "timeout"
    assert rec.named("step.error")[0]["time"] == 2.0
    assert robot.calls[0].outcome == "cancelled" and robot.calls[0].timeout == 2.0


def test_retries_exhausted_fail_the_run_with_the_last_error():
    robot = ops().cue("op", match={"tag": "a"}, error="nope")
    r = reactor(op("first"), op("a", "first", retry=model.Retry(2, 0.1, 0.15)))
    result, rec = run(r, robot)
    assert result.status == "failed" and result.error.message == "op: nope"
    assert [e["delay"] for e in rec.named("step.retry")] == [0.1, 0.15]
    assert [e["attempt"] for e in rec.named("step.error")] == [1, 2, 3]
    assert robot.tags("op") == ["first", "a", "a", "a"]
    assert robot.tags("undo") == ["first"]


def test_backoff_doubles_up_to_ten_times_the_first_delay_by_default():
    robot = ops().cue("op", error="nope")
    result, rec = run(reactor(op("a", retry=model.Retry(5, 1.0))), robot)
    assert result.status == "failed"
    assert [e["delay"] for e in rec.named("step.retry")] == [1.0, 2.0, 4.0, 8.0, 10.0]


def test_a_step_retried_over_a_thousand_times_keeps_its_capped_backoff():
    """Attempt 1,026 of `retry 1100 backoff 1ms max 5ms` failed the run with 'executor: int too large to
    convert to float' (code internal): the doubling overflowed a float long after the cap applied."""
    robot = ops().cue("op", error="nope")
    result, rec = run(reactor(op("a", retry=model.Retry(1100, 0.001, 0.005))), robot)
    assert (result.error.code, result.error.message) == ("command", "op: nope")
    assert len(rec.named("step.error")) == 1101
    assert {e["delay"] for e in rec.named("step.retry")[3:]} == {0.005}


def test_retry_without_backoff_retries_at_once():
    robot = ops().cue("op", call=1, error="slip")
    result, rec = run(reactor(op("a", retry=model.Retry(1))), robot)
    assert result.status == "ok"
    assert rec.named("step.retry")[0]["delay"] == 0.0


def test_fallback_replaces_the_value_after_the_last_attempt_and_is_never_undone():
    robot = ops().cue("op", match={"tag": "a"}, error="nope").cue("op", match={"tag": "c"}, error="late")
    seen = []
    r = reactor(
        op("a", retry=model.Retry(1), fallback=lambda s: "plan B"),
        model.Step("b", model.CommandCall("op", lambda s: seen.append(s["a"]) or {"tag": "b"}), deps=("a",),
                   undo=model.Undo(model.CommandCall("undo", lambda s: {"tag": "b"}))),
        op("c", "b"),
    )
    result, rec = run(r, robot)
    assert seen == ["plan B"]
    assert [e.get("fallback") for e in rec.named("step.ok")] == [True, None]
    assert result.status == "failed" and result.completed == ("a", "b")
    assert robot.tags("undo") == ["b"]  # the fallback step did nothing to undo


def test_a_failing_fallback_expression_fails_the_run():
    robot = ops().cue("op", error="nope")
    result, _ = run(reactor(op("a", fallback=lambda s: 1 / 0)), robot)
    assert result.status == "failed" and result.error.code == "expression"


def test_driver_exceptions_become_command_failures():
    robot = ops().cue("op", exception=ValueError("driver bug"))
    result, _ = run(reactor(op("a")), robot)
    assert (result.status, result.error.code, result.error.message) == ("failed", "command", "op: driver bug")


def test_argument_expression_error_is_a_failed_attempt_and_is_retried():
    calls = []

    def args(scope):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("pose")
        return {"tag": "a"}

    r = reactor(model.Step("a", model.CommandCall("op", args), retry=model.Retry(1)))
    result, rec = run(r, ops())
    assert result.status == "ok"
    assert rec.named("step.error")[0]["error"]["code"] == "expression"


def test_reactor_timeout_fails_the_run_and_rolls_back():
    robot = ops().cue("op", match={"tag": "b"}, delay=10.0)
    result, rec = run(reactor(op("a"), op("b", "a"), timeout=1.0), robot)
    assert result.status == "failed" and result.error.code == "timeout"
    # the deadline, then undo b (cut off in flight: it may have moved) and a, 10 ms each
    assert rec.named("run.failed")[0]["time"] == pytest.approx(1.02)
    assert robot.tags("undo") == ["b", "a"]
    assert [c.outcome for c in robot.calls if c.command == "op" and c.kwargs["tag"] == "b"] == ["cancelled"]


def test_long_timeouts_are_said_as_written_not_in_thousands_of_seconds():
    """``timeout 2h`` failed with "... within its timeout of 7200s", and 1000 h as "3.6e+06s"."""
    robot = ops().cue("op", match={"tag": "b"}, delay=1e7)
    result, _ = run(reactor(op("a"), op("b", "a"), timeout=7200.0), robot)
    assert result.error.message == "R did not finish within its timeout of 2h"
    result, _ = run(reactor(op("b", timeout=3.6e6)), ops().cue("op", delay=1e7))
    assert result.error.message == "b timed out after 1000h"
    result, _ = run(reactor(op("b", timeout=1e7)), ops().cue("op", delay=2e7))
    assert result.error.message == "b timed out after 2777.78h"


def test_body_with_no_nodes_and_a_return():
    r = reactor(end=model.Return(lambda s: 42))
    result, _ = run(r, ops())
    assert (result.status, result.value, result.completed) == ("ok", 42, ())


def test_a_dependency_cycle_is_refused_before_the_run_starts():
    r = reactor(op("a", "b"), op("b", "a"))
    with pytest.raises(PlanError, match="cycle"):
        run(r, ops())


def test_duplicate_node_names_are_refused():
    with pytest.raises(PlanError, match="two nodes"):
        run(reactor(op("a"), op("a")), ops())


def test_a_run_id_may_be_given():
    result, rec = run(reactor(op("a")), ops(), run_id="r-1")
    assert result.run_id == "r-1" and {e["run"] for e in rec.events} == {"r-1"}


def test_generated_run_ids_are_uuid7_in_start_order():
    first, _ = run(reactor(op("a")), ops())
    second, _ = run(reactor(op("a")), ops())
    assert uuid.UUID(first.run_id).version == 7 and first.run_id < second.run_id


def test_a_command_on_a_disarmed_robot_fails_the_run():
    result, _ = run(reactor(op("a")), ops(safety="disarmed"))
    assert (result.status, result.error.code) == ("failed", "not_armed")


def test_failure_object_is_a_runtime_failure():
    robot = ops().cue("op", error="nope")
    result, _ = run(reactor(op("a")), robot)
    assert isinstance(result.error, RuntimeFailure) and not result.ok


def test_a_step_spawned_beside_one_that_fails_at_once_never_starts():
    robot = ops(duration=0).cue("op", match={"tag": "a"}, error="boom")
    result, rec = run(reactor(op("a"), op("b")), robot)
    assert result.status == "failed"
    assert steps_of(rec, "step.start") == ["a"] and robot.tags("op") == ["a"]


def test_a_reactor_never_moves_another_robot_nor_runs_without_its_robot():
    """The runtime side of BBF206: a reactor given a robot of another interface (or none) fails before
    anything moves, with code `robot`, whatever program reaches the runtime."""
    other = arm()
    parked = reactor(op("a"), op("b", "a"))  # on t.Ops
    for robot in (other, None):
        result, rec = run(parked, robot, prog=program(parked))
        assert result.status == "failed" and result.error.code == "robot", result.error
        assert [e["event"] for e in rec.events] == ["run.start", "run.failed"]
    assert other.commands() == []
