"""Failure and rollback, undo retries, composition undone as a unit, halt and cancel."""

import asyncio
from typing import Any

import pytest

from bbflow.runtime import model
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.events import Recorder
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.rollback import UNDO_ATTEMPTS
from bbflow.runtime.types import INT
from runtime_fakes import execute, op, ops, ops_spec, program, reactor, run, steps_of


def test_undo_order_follows_completion_not_declaration():
    robot = (ops().cue("op", match={"tag": "a"}, delay=0.03).cue("op", match={"tag": "b"}, delay=0.01)
             .cue("op", match={"tag": "c"}, delay=0.02).cue("op", match={"tag": "d"}, error="boom"))
    result, rec = run(reactor(op("a"), op("b"), op("c"), op("d", "a", "b", "c")), robot)
    assert result.completed == ("b", "c", "a")
    assert robot.tags("undo") == ["a", "c", "b"]
    assert steps_of(rec, "undo.ok") == ["a", "c", "b"]


def test_a_failure_while_three_steps_are_in_flight():
    robot = ops().cue("op", match={"tag": "bad"}, error="boom")
    for tag in "xyz":
        robot.cue("op", match={"tag": tag}, delay=5.0)
    r = reactor(op("a"), op("x", "a"), op("y", "a"), op("z", "a"), op("bad", "a"), op("after", "bad"))
    result, rec = run(r, robot)
    assert result.status == "failed" and result.error.message == "op: boom"
    assert [c.outcome for c in robot.calls if c.command == "op" and c.kwargs["tag"] in "xyz"] == ["cancelled"] * 3
    cancelled = [e for e in rec.named("step.error") if e["error"]["code"] == "cancelled"]
    assert sorted(e["step"] for e in cancelled) == ["x", "y", "z"]
    assert "after" not in steps_of(rec, "step.start")
    # cut off at the driver, they may have moved part-way: undone too, newest first (where they ended)
    assert robot.tags("undo") == [*reversed([e["step"] for e in cancelled]), "a"]
    assert result.completed == ("a",) and result.undo_errors == ()
    assert [e.get("in_doubt", False) for e in rec.named("undo.start")] == [True, True, True, False]
    # the rollback starts only once every step in flight has ended
    last_cancel = max(c.end for c in robot.calls if c.outcome == "cancelled")
    assert rec.named("undo.start")[0]["time"] >= last_cancel


def test_an_undo_that_raises_is_retried_recorded_and_the_rollback_goes_on():
    robot = ops().cue("undo", match={"tag": "b"}, exception=ValueError("stuck")).cue("op", match={"tag": "c"},
                                                                                     error="boom")
    result, rec = run(reactor(op("a"), op("b", "a"), op("c", "b")), robot)
    assert result.status == "failed" and result.error.message == "op: boom"
    assert robot.tags("undo") == ["b"] * UNDO_ATTEMPTS + ["a"]
    assert [e["attempt"] for e in rec.named("undo.error")] == [1, 2, 3]
    (undo_error,) = result.undo_errors
    assert (undo_error.step, undo_error.code, undo_error.attempts) == ("b", "command", 3)
    assert "stuck" in undo_error.message
    failed = rec.named("run.failed")[0]
    assert failed["error"]["message"] == "op: boom"
    assert [u["step"] for u in failed["undo_errors"]] == ["b"]


def test_an_undo_that_succeeds_on_its_second_attempt_is_not_an_undo_error():
    robot = ops().cue("undo", call=1, error="slip").cue("op", match={"tag": "b"}, error="boom")
    result, rec = run(reactor(op("a"), op("b", "a")), robot)
    assert result.undo_errors == ()
    assert [e["event"] for e in rec.events if e["event"].startswith("undo")] == [
        "undo.start", "undo.error", "undo.start", "undo.ok"]


def test_an_undo_that_times_out_uses_the_undo_commands_timeout():
    robot = ops(spec=ops_spec(undo_timeout=1.0)).cue("undo", match={"tag": "a"}, hang=True)
    robot.cue("op", match={"tag": "b"}, error="boom")
    result, rec = run(reactor(op("a"), op("b", "a")), robot)
    (undo_error,) = result.undo_errors
    assert undo_error.code == "timeout" and undo_error.step == "a"
    errors = rec.named("undo.error")
    assert [e["time"] - s["time"] for s, e in zip(rec.named("undo.start"), errors)] == [1.0, 1.0, 1.0]
    assert [c.outcome for c in robot.calls if c.command == "undo"] == ["cancelled"] * 3


def test_an_undo_without_a_declared_timeout_gets_thirty_seconds():
    robot = ops().cue("undo", hang=True).cue("op", match={"tag": "b"}, error="boom")
    result, rec = run(reactor(op("a"), op("b", "a")), robot)
    assert result.undo_errors[0].code == "timeout"
    assert rec.named("undo.error")[0]["time"] - rec.named("undo.start")[0]["time"] == 30.0


def test_default_undo_of_a_command_gets_its_args_and_result_and_irreversible_wins():
    robot = ops().cue("op", error="boom")
    auto = model.Step("grab", model.CommandCall("auto", lambda s: {"tag": "part-7"}))
    kept = model.Step("kept", model.CommandCall("auto", lambda s: {"tag": "kept"}), irreversible="placed")
    result, _ = run(reactor(auto, kept, op("fail", "grab", "kept", undo=False)), robot)
    assert result.status == "failed"
    assert robot.tags("undo") == ["part-7"]


def test_a_step_own_undo_sees_its_result_and_earlier_values():
    seen = []
    undo = model.Undo(model.CommandCall("undo", lambda s: seen.append((s["first"], s["second"])) or {"tag": "u"}))
    r = reactor(op("first"), model.Step("second", model.CommandCall("op", lambda s: {"tag": 2}), ("first",),
                                        undo=undo), op("bad", "second", undo=False))
    robot = ops().cue("op", match={"tag": "bad"}, error="boom")
    run(r, robot)
    assert seen == [("first", 2)]


def test_an_undo_expression_error_is_an_undo_error():
    undo = model.Undo(model.CommandCall("undo", lambda s: s["missing"]))
    r = reactor(model.Step("a", model.CommandCall("op", lambda s: {"tag": "a"}), undo=undo), op("b", "a"))
    result, _ = run(r, ops().cue("op", match={"tag": "b"}, error="boom"))
    assert result.undo_errors[0].code == "expression"


# --- composition --------------------------------------------------------------------------


def child(*, fail: bool = False, name: str = "Child") -> model.Reactor:
    return reactor(op("c1"), op("c2", "c1"), name=name, end=model.Fail("child failed") if fail else None)


def compose(name: str, *deps: str, undo: model.Undo | None = None, **options) -> model.Step:
    return model.Step(name, model.ReactorCall("t.Child", lambda s: {}), deps=deps, undo=undo, **options)


def test_a_composed_reactor_is_undone_as_a_unit_at_its_position():
    parent = reactor(op("a"), compose("sub", "a"), op("b", "sub"), op("bad", "b"))
    prog = program(parent, child(), robot=ops_spec())
    robot = ops().cue("op", match={"tag": "bad"}, error="boom")
    result, rec = run(parent, robot, prog=prog)
    assert result.status == "failed" and result.completed == ("a", "sub", "b")
    assert robot.tags("undo") == ["b", "c2", "c1", "a"]
    child_start = [e for e in rec.named("run.start") if e["reactor"] == "Child"][0]
    assert child_start["parent"] == result.run_id and child_start["run"] != result.run_id
    child_undos = [e for e in rec.named("undo.start") if e["step"] in ("c1", "c2")]
    assert {e["run"] for e in child_undos} == {child_start["run"]}
    assert {e["reactor"] for e in child_undos} == {"Child"}


def test_a_composed_step_with_its_own_undo_runs_that_instead():
    undo = model.Undo(model.CommandCall("undo", lambda s: {"tag": "whole-child"}))
    parent = reactor(op("a"), compose("sub", "a", undo=undo), op("bad", "sub"))
    robot = ops().cue("op", match={"tag": "bad"}, error="boom")
    result, _ = run(parent, robot, prog=program(parent, child(), robot=ops_spec()))
    assert robot.tags("undo") == ["whole-child", "a"]


def test_a_failing_child_rolls_itself_back_and_fails_the_parent():
    parent = reactor(op("a"), compose("sub", "a"), op("b", "sub"))
    robot = ops()
    result, rec = run(parent, robot, prog=program(parent, child(fail=True), robot=ops_spec()))
    assert (result.status, result.error.code, result.error.message) == ("failed", "fail", "child failed")
    assert robot.tags("undo") == ["c2", "c1", "a"]
    assert [e["reactor"] for e in rec.named("run.failed")] == ["Child", "R"]


def test_a_child_undo_error_is_reported_by_the_parent():
    parent = reactor(op("a"), compose("sub", "a"), op("bad", "sub"))
    robot = ops().cue("undo", match={"tag": "c1"}, error="stuck").cue("op", match={"tag": "bad"}, error="boom")
    result, _ = run(parent, robot, prog=program(parent, child(), robot=ops_spec()))
    assert [(u.step, u.reactor) for u in result.undo_errors] == [("c1", "Child")]
    assert robot.tags("undo")[-1] == "a"  # the parent's rollback went on


def test_a_parent_failure_cancels_a_running_child_which_rolls_itself_back():
    parent = reactor(op("a"), compose("sub", "a"), op("bad", "a"))
    robot = ops().cue("op", match={"tag": "c2"}, delay=5.0).cue("op", match={"tag": "bad"}, delay=0.02,
                                                                 error="boom")
    result, rec = run(parent, robot, prog=program(parent, child(), robot=ops_spec()))
    assert result.status == "failed" and result.error.message == "op: boom"
    child_failed = [e for e in rec.named("run.failed") if e["reactor"] == "Child"][0]
    assert child_failed["error"]["code"] == "cancelled"
    assert robot.tags("undo") == ["c2", "c1", "a"]  # c2 cut off in flight, undone by its own run
    assert "sub" not in result.completed


def test_a_composed_step_that_times_out_cuts_its_child_short_with_code_timeout():
    """The child of a composed step whose timeout expired said ``cancelled`` (its cut-short step and its
    run.failed) while the parent's step said ``timeout``."""
    parent = reactor(op("a"), compose("sub", "a", timeout=1.5))
    robot = ops().cue("op", match={"tag": "c2"}, delay=10.0)
    result, rec = run(parent, robot, prog=program(parent, child(), robot=ops_spec()))
    assert (result.error.code, result.error.message) == ("timeout", "sub timed out after 1.5s")
    errors = [(e["event"], e["reactor"], e["step"], e["error"]["code"], e["error"]["message"])
              for e in rec.events if e["event"] in ("step.error", "run.failed")]
    assert errors == [("step.error", "Child", "c2", "timeout", "c2 was cancelled: sub timed out after 1.5s"),
                      ("run.failed", "Child", None, "timeout", "Child was cancelled: sub timed out after 1.5s"),
                      ("step.error", "R", "sub", "timeout", "sub timed out after 1.5s"),
                      ("run.failed", "R", None, "timeout", "sub timed out after 1.5s")]
    assert robot.tags("undo") == ["c2", "c1", "a"]


def test_a_grandchild_cut_short_by_a_composed_steps_timeout_says_timeout_too():
    inner = reactor(op("c1"), op("c2", "c1"), name="Inner")
    middle = reactor(model.Step("in", model.ReactorCall("t.Inner", lambda s: {})), name="Child")
    parent = reactor(compose("sub", timeout=1.5))
    robot = ops().cue("op", match={"tag": "c2"}, delay=10.0)
    result, rec = run(parent, robot, prog=program(parent, middle, inner, robot=ops_spec()))
    assert [(e["reactor"], e["error"]["code"]) for e in rec.named("run.failed")] == [
        ("Inner", "timeout"), ("Child", "timeout"), ("R", "timeout")]
    assert rec.named("run.failed")[0]["error"]["message"] == "Inner was cancelled: sub timed out after 1.5s"


def test_a_composed_undo_that_times_out_says_timeout_in_its_child_run():
    undo = model.Undo(model.ReactorCall("t.Child", lambda s: {}))
    parent = reactor(op("a", undo=False), model.Step("b", model.CommandCall("op", lambda s: {"tag": "b"}), ("a",),
                                                      undo=undo), op("bad", "b", undo=False))
    robot = ops().cue("op", match={"tag": "bad"}, error="boom").cue("op", match={"tag": "c1"}, delay=100.0)
    result, rec = run(parent, robot, prog=program(parent, child(), robot=ops_spec()))
    (undo_error,) = result.undo_errors
    assert (undo_error.code, undo_error.message) == ("timeout", "undo of b timed out after 30s")
    child_codes = {(e["error"]["code"], e["error"]["message"]) for e in rec.named("run.failed")
                   if e["reactor"] == "Child"}
    assert child_codes == {("timeout", "Child was cancelled: undo of b timed out after 30s")}


def test_a_composed_step_is_retried_as_a_new_child_run():
    parent = reactor(compose("sub", retry=model.Retry(1)))
    robot = ops().cue("op", match={"tag": "c2"}, call=2, error="slip")  # op call 2: the first c2
    result, rec = run(parent, robot, prog=program(parent, child(), robot=ops_spec()))
    assert result.status == "ok"
    child_runs = [e["run"] for e in rec.named("run.start") if e["reactor"] == "Child"]
    assert len(set(child_runs)) == 2
    assert robot.tags("undo") == ["c1"]  # the first child run rolled itself back


def test_a_bad_child_input_fails_the_step():
    child_r = reactor(op("c1"), name="Child", params=(model.Param("n", INT),))
    parent = reactor(model.Step("sub", model.ReactorCall("t.Child", lambda s: {"n": "seven"})))
    result, _ = run(parent, ops(), prog=program(parent, child_r, robot=ops_spec()))
    assert (result.status, result.error.code) == ("failed", "input")


# --- halt ---------------------------------------------------------------------------------


def test_halt_mid_step_cancels_everything_in_flight_and_undoes_nothing():
    robot = ops().cue("op", match={"tag": "x"}, delay=1.0).cue("op", match={"tag": "y"}, delay=0.5, disarm=True)
    r = reactor(op("a"), op("x", "a"), op("y", "a"), op("z", "x", "y"))
    result, rec = run(r, robot)
    assert result.status == "halted" and result.completed == ("a",)
    assert robot.commands("cancelled") == ["op", "op"]
    assert not rec.named("undo.start") and "z" not in steps_of(rec, "step.start")
    assert {e["error"]["code"] for e in rec.named("step.error")} == {"halted"}
    assert rec.events[-1]["event"] == "run.halted"


def test_halt_during_a_backoff_sleep():
    robot = ops().cue("op", match={"tag": "b"}, error="slip")
    r = reactor(op("a"), op("b", "a", retry=model.Retry(3, 10.0)))

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(5.0, robot.set_safety, "fault")
        return await execute(r, robot)

    result, rec = run_virtual(main())
    assert result.status == "halted" and "fault" in result.error.message
    assert rec.named("run.halted")[0]["time"] == 5.0
    assert robot.tags("undo") == []


def test_halt_during_rollback_stops_the_rollback():
    robot = ops().cue("undo", match={"tag": "b"}, disarm=True).cue("op", match={"tag": "c"}, error="boom")
    result, rec = run(reactor(op("a"), op("b", "a"), op("c", "b")), robot)
    assert result.status == "halted"
    assert robot.tags("undo") == ["b"]  # a is not undone: motion is disabled
    assert rec.events[-1]["event"] == "run.halted"


def test_halt_inside_a_composed_reactor_halts_the_parent():
    parent = reactor(op("a"), compose("sub", "a"), op("b", "sub"))
    robot = ops().cue("op", match={"tag": "c2"}, disarm=True)
    result, rec = run(parent, robot, prog=program(parent, child(), robot=ops_spec()))
    assert result.status == "halted" and result.completed == ("a",)
    assert [e["reactor"] for e in rec.named("run.halted")] == ["Child", "R"]
    assert not rec.named("undo.start")


def test_rearming_is_not_a_halt():
    robot = ops()

    async def main():
        asyncio.get_running_loop().call_later(0.005, robot.set_safety, "armed")
        return await execute(reactor(op("a"), op("b", "a")), robot)

    result, _ = run_virtual(main())
    assert result.status == "ok"


# --- cancel -------------------------------------------------------------------------------


def cancel_at(r, robot, when, prog=None):
    """Start a run, cancel its task at ``when``; returns the recorder after CancelledError came out."""
    recorder = Recorder()

    async def main():
        task = asyncio.create_task(run_reactor(prog or program(r, robot=robot.spec), r, {}, robot=robot,
                                               observer=recorder))
        asyncio.get_running_loop().call_later(when, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert robot.subscribers() == 0

    run_virtual(main())
    return recorder


def test_cancel_mid_run_rolls_back_then_reraises():
    robot = ops().cue("op", match={"tag": "b"}, delay=10.0)
    rec = cancel_at(reactor(op("a"), op("b", "a"), op("c", "b")), robot, 1.0)
    assert robot.tags("undo") == ["b", "a"]  # b was cut off in flight: it may have moved
    assert [c.outcome for c in robot.calls if c.command == "op"] == ["ok", "cancelled"]
    failed = rec.named("run.failed")
    assert len(failed) == 1 and failed[0]["error"]["code"] == "cancelled"
    assert rec.events[-1]["event"] == "run.failed"


def test_cancel_mid_rollback_lets_the_rollback_finish():
    robot = ops().cue("op", match={"tag": "c"}, error="boom").cue("undo", match={"tag": "b"}, delay=1.0)
    rec = cancel_at(reactor(op("a"), op("b", "a"), op("c", "b")), robot, 0.5)
    assert robot.tags("undo", "ok") == ["b", "a"]
    failed = rec.named("run.failed")
    assert failed[0]["error"]["message"] == "op: boom"  # the original error stays the reason


def test_cancel_of_a_parent_cancels_and_rolls_back_a_running_child():
    parent = reactor(op("a"), compose("sub", "a"))
    robot = ops().cue("op", match={"tag": "c2"}, delay=10.0)
    rec = cancel_at(parent, robot, 1.0, prog=program(parent, child(), robot=ops_spec()))
    assert robot.tags("undo") == ["c2", "c1", "a"]
    assert [(e["reactor"], e["error"]["code"]) for e in rec.named("run.failed")] == [("Child", "cancelled"),
                                                                                    ("R", "cancelled")]



async def cancelled_after(seconds: float, proxy: Any, reactor_: model.Reactor, inputs: dict[str, Any]) -> Recorder:
    """Arm ``proxy``'s robot, run ``reactor_`` on it, cancel the run ``seconds`` later; the run's events."""
    async with proxy:
        await proxy.call("arm", {})
        rec = Recorder()
        task = asyncio.create_task(run_reactor(program(reactor_), reactor_, inputs, robot=proxy, observer=rec))
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return rec

def test_a_command_the_driver_finishes_while_the_run_is_cancelled_is_undone():
    """A gripper cannot stop half-way: told to stop, it finishes the grip. That grip is undone."""
    from arm_spec import ARM

    from bbflow.runtime.driver import Driver
    from bbflow.runtime.proxy import RobotProxy

    class Gripper(Driver):
        def __init__(self, handle, options):
            super().__init__(handle, options)
            self.log = []

        async def close_gripper(self, force):
            try:
                await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                await asyncio.sleep(0.1)  # the jaws close all the way, within the stop grace
            self.log.append("closed")
            return "closed"

        async def open_gripper(self):
            self.log.append("opened")
            return "open"

        async def move_to(self, target, speed):
            return target

        async def home(self):
            return {"x": 0.0, "y": 0.0, "z": 0.5}

        async def read_force(self):
            return 0.0

    grip = model.Reactor("G", "cell.G", (), None, "cell.Arm", model.Body((
        model.Step("grip", model.CommandCall("close_gripper", lambda s: {"force": 10.0})),), None))
    drivers = []

    def factory(handle, options):
        drivers.append(Gripper(handle, options))
        return drivers[0]

    rec = run_virtual(cancelled_after(0.5, RobotProxy(ARM, "arm", factory), grip, {}))
    assert drivers[0].log == ["closed", "opened"]
    assert [e["event"] for e in rec.events] == ["run.start", "step.start", "step.ok", "undo.start", "undo.ok",
                                                "run.failed"]
    assert rec.named("run.failed")[0]["error"]["code"] == "cancelled"


def test_a_cancel_in_the_moment_a_move_completes_still_undoes_that_move():
    """On the sim, ``lift`` completes at the driver at 70 ms: a cancel at that very moment used to lose it."""
    from arm_spec import ARM

    from bbflow.runtime.proxy import RobotProxy
    from bbflow.runtime.sim import SimDriver
    from runtime_fakes import PICK, PLACE, pick_and_place

    completed = []

    class Logged(SimDriver):
        async def run_command(self, name, kwargs):
            value = await super().run_command(name, kwargs)
            completed.append(name)
            return value

    options = {"sim": {"duration": "20ms",
                       "events": [{"after": "close_gripper", "event": "force", "data": {"newtons": 12.0}}]}}
    reactor_ = pick_and_place()

    rec = run_virtual(cancelled_after(0.07, RobotProxy(ARM, "arm", Logged, options=options), reactor_,
                                      {"pick": PICK, "place": PLACE}))
    assert completed[:3] == ["move_to", "close_gripper", "move_to"]  # approach, grip, lift
    assert steps_of(rec, "undo.ok") == ["lift", "grip", "approach"]


def test_an_undo_the_driver_finishes_as_its_deadline_strikes_is_done_not_an_undo_error():
    """Told to stop at the undo's deadline, the driver finishes homing instead: the undo is done, once."""
    from arm_spec import ARM

    from bbflow.runtime.proxy import RobotProxy
    from bbflow.runtime.sim import SimDriver
    from runtime_fakes import move_to

    homed = []

    class SlowHome(SimDriver):
        async def run_command(self, name, kwargs):
            if name != "home":
                return await super().run_command(name, kwargs)
            try:
                await asyncio.sleep(40.0)
            except asyncio.CancelledError:
                await asyncio.sleep(0.1)  # it cannot stop half-way: it finishes
            homed.append(asyncio.get_running_loop().time())
            return {"x": 0.0, "y": 0.0, "z": 0.5}

    reactor_ = model.Reactor("R", "cell.R", (), None, "cell.Arm", model.Body((
        model.Step("m", move_to(lambda s: {"x": 1.0, "y": 0.0, "z": 0.0}),
                   undo=model.Undo(model.CommandCall("home", lambda s: {}))),
        model.Step("bad", model.CommandCall("close_gripper", lambda s: {"force": 1.0}), deps=("m",), timeout=0.001),
    ), None))

    async def main():
        async with RobotProxy(ARM, "arm", SlowHome, options={"sim": {"duration": "20ms"}}) as proxy:
            await proxy.call("arm", {})
            rec = Recorder()
            return await run_reactor(program(reactor_), reactor_, {}, robot=proxy, observer=rec), rec

    result, rec = run_virtual(main())
    assert result.status == "failed" and result.error.code == "timeout"
    assert result.undo_errors == () and result.undone == ("m",)
    assert len(homed) == 1 and steps_of(rec, "undo.ok") == ["m"]
