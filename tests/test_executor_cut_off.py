"""A step cut off in flight (cancelled while its command or action was at the driver) is undone by the live
rollback as recovery undoes a step in doubt; one whose undo needs its result is an undo error, never silent."""

import asyncio

import pytest

from arm_spec import ARM
from bbflow.runtime import model
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.driver import Driver
from bbflow.runtime.events import Recorder
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.types import ANY
from runtime_fakes import op, ops, ops_spec, program, reactor, run, steps_of

GRIP = model.Step("grip", model.CommandCall("close_gripper", lambda s: {"force": 10.0}))


class Gripper(Driver):
    """Jaws that close over a second and stop where they are when told to: cut off half-way, half closed."""

    def __init__(self, handle, options):
        super().__init__(handle, options)
        self.jaws = "open"
        self.log = []

    async def close_gripper(self, force):
        self.jaws = "closing"
        await asyncio.sleep(1.0)
        self.jaws = "closed"
        return "closed"

    async def open_gripper(self):
        self.log.append(f"open_gripper from {self.jaws}")
        self.jaws = "open"
        return "open"

    async def move_to(self, target, speed):
        await asyncio.sleep(1.0)
        return target

    async def home(self):
        return {"x": 0.0, "y": 0.0, "z": 0.5}

    async def read_force(self):
        return 0.0


def on_gripper(reactor_, *, cancel_at: float, inputs=None, robot_spec=ARM):
    """Run ``reactor_`` on a ``Gripper`` behind the real proxy, cancel it at ``cancel_at``: (driver, events)."""
    drivers = []

    def factory(handle, options):
        drivers.append(Gripper(handle, options))
        return drivers[-1]

    async def main():
        async with RobotProxy(robot_spec, "arm", factory) as proxy:
            await proxy.call("arm", {})
            rec = Recorder()
            task = asyncio.create_task(run_reactor(program(reactor_, robot=robot_spec), reactor_, inputs or {},
                                                   robot=proxy, observer=rec))
            asyncio.get_running_loop().call_later(cancel_at, task.cancel)
            with pytest.raises(asyncio.CancelledError):
                await task
            return rec

    rec = run_virtual(main())
    return drivers[0], rec


def test_a_grip_cut_off_half_way_by_a_cancel_is_reopened():
    """The gripper told to close and cancelled half-way was left half closed after a live failure (recovery
    after a crash reopened it). Its default undo (needs no result) now runs, marked in doubt."""
    reactor_ = model.Reactor("G", "cell.G", (), None, "cell.Arm", model.Body((GRIP,), None))
    driver, rec = on_gripper(reactor_, cancel_at=0.5)
    assert driver.log == ["open_gripper from closing"] and driver.jaws == "open"
    assert [e["event"] for e in rec.events] == ["run.start", "step.start", "step.error", "undo.start", "undo.ok",
                                                "run.failed"]
    assert rec.named("step.error")[0]["error"]["code"] == "cancelled"
    assert rec.named("step.error")[0]["in_doubt"] is True and rec.named("undo.start")[0]["in_doubt"] is True
    assert rec.named("run.failed")[0]["undo_errors"] == []


def test_a_command_cancelled_while_it_waits_for_its_slot_never_reached_the_driver_and_is_not_undone():
    """Two grips in one category of limit 1: the second waits for the slot, so it never moved."""
    spec = model.Robot("Arm", "cell.Arm", ARM.states, (("grip", 1),), {
        **ARM.commands,
        "close_gripper": model.Command("close_gripper", ARM.commands["close_gripper"].params,
                                       ARM.commands["close_gripper"].result, category="grip",
                                       undo=ARM.commands["close_gripper"].undo),
    }, ARM.events)
    second = model.Step("grip2", model.CommandCall("close_gripper", lambda s: {"force": 5.0}))
    reactor_ = model.Reactor("G", "cell.G", (), None, "cell.Arm", model.Body((GRIP, second), None), concurrency=2)
    driver, rec = on_gripper(reactor_, cancel_at=0.5, robot_spec=spec)
    errors = {e["step"]: e["error"]["code"] for e in rec.named("step.error")}
    assert errors == {"grip": "cancelled", "grip2": "cancelled"}
    assert {e["step"]: e.get("in_doubt", False) for e in rec.named("step.error")} == {"grip": True, "grip2": False}
    assert steps_of(rec, "undo.start") == ["grip"]  # the one at the driver, not the one waiting for it
    assert driver.log == ["open_gripper from closing"]


def test_a_cut_off_step_whose_undo_needs_its_result_is_an_undo_error_not_run_blindly():
    """``lift``'s undo moves back to where ``lift`` ended: without that result it cannot run. It is reported
    (code ``in_doubt``, 0 attempts), and the rollback goes on with the steps before."""
    approach = model.Step("approach", model.CommandCall("move_to", lambda s: {"target": {"x": 0.0, "y": 0.0,
                                                                                        "z": 0.1}}),
                          undo=model.Undo(model.CommandCall("home", lambda s: {})))
    lift = model.Step("lift", model.CommandCall("move_to", lambda s: {"target": {"x": 0.0, "y": 0.0, "z": 0.3}}),
                      deps=("approach",),
                      undo=model.Undo(model.CommandCall("move_to", lambda s: {"target": s["lift"]})))
    reactor_ = model.Reactor("L", "cell.L", (), None, "cell.Arm", model.Body((approach, lift), None))
    _, rec = on_gripper(reactor_, cancel_at=1.5)
    failed = rec.named("run.failed")[0]
    assert failed["error"]["code"] == "cancelled"
    [error] = failed["undo_errors"]
    assert (error["step"], error["code"], error["attempts"]) == ("lift", "in_doubt", 0)
    assert "lift was cut off in flight" in error["message"] and "needs its result" in error["message"]
    assert [(e["event"], e["step"]) for e in rec.events if e["event"].startswith("undo.")] == [
        ("undo.error", "lift"), ("undo.start", "approach"), ("undo.ok", "approach")]
    assert rec.named("undo.error")[0]["attempt"] == 0


def test_an_inherited_undo_that_reads_result_is_an_undo_error_for_a_cut_off_step():
    spec = ops_spec()
    spec.commands["needy"] = model.Command("needy", (model.Param("tag", ANY),), ANY,
                                           undo=model.CommandCall("undo", lambda s: {"tag": s["result"]}))
    robot = ops(spec=spec).cue("needy", delay=5.0).cue("op", match={"tag": "bad"}, error="boom")
    r = reactor(op("a"), op("n", "a", command="needy", undo=False), op("bad", "a"))
    result, rec = run(r, robot, prog=program(r, robot=spec))
    assert [(u.step, u.code, u.attempts) for u in result.undo_errors] == [("n", "in_doubt", 0)]
    assert robot.tags("undo") == ["a"] and result.completed == ("a",)


def test_an_undo_error_of_another_kind_on_a_cut_off_step_runs_its_attempts():
    """Only a missing result stops an undo from running: any other error of its arguments is the usual one."""
    robot = ops().cue("op", match={"tag": "b"}, delay=5.0).cue("op", match={"tag": "bad"}, error="boom")
    broken = model.Step("b", model.CommandCall("op", lambda s: {"tag": "b"}),
                        undo=model.Undo(model.CommandCall("undo", lambda s: {"tag": 1 / 0})))
    result, _ = run(reactor(broken, op("bad")), robot)
    assert [(u.step, u.code, u.attempts) for u in result.undo_errors] == [("b", "expression", 3)]


def test_a_halt_undoes_nothing_not_even_a_cut_off_step():
    robot = ops().cue("op", match={"tag": "b"}, delay=5.0)

    async def main():
        from runtime_fakes import execute
        asyncio.get_running_loop().call_later(1.0, robot.set_safety, "disarmed")
        return await execute(reactor(op("a"), op("b", "a")), robot)

    result, rec = run_virtual(main())
    assert result.status == "halted" and robot.tags("undo") == []
    assert not rec.named("undo.start")


def test_an_irreversible_or_undo_less_step_cut_off_is_not_undone():
    robot = ops().cue("op", match={"tag": "bad"}, error="boom").cue("op", delay=5.0)
    r = reactor(op("x", irreversible="it is done"), op("y", undo=False), op("bad"), concurrency=3)
    result, rec = run(r, robot)
    assert result.status == "failed" and robot.tags("undo") == [] and result.undo_errors == ()


def test_a_cut_off_action_step_is_undone():
    """An action is an effect like a command: cut off in flight, its undo runs."""
    calls = []

    async def slow(tag):
        calls.append(("do", tag))
        await asyncio.sleep(5.0)

    async def back(tag):
        calls.append(("undo", tag))

    actions = {"t.slow": slow, "t.back": back}
    act = model.Step("act", model.ActionCall("t.slow", lambda s: {"tag": "x"}),
                     undo=model.Undo(model.ActionCall("t.back", lambda s: {"tag": "x"})))
    r = reactor(act, op("bad"))
    prog = program(r, robot=ops_spec())
    prog.actions.update({
        "t.slow": model.Action("slow", "t.slow", (model.Param("tag", ANY),), None, "t.slow"),
        "t.back": model.Action("back", "t.back", (model.Param("tag", ANY),), None, "t.back"),
    })
    robot = ops().cue("op", match={"tag": "bad"}, delay=1.0, error="boom")
    result, rec = run(r, robot, prog=prog, actions=lambda target: actions[target])
    assert calls == [("do", "x"), ("undo", "x")]
    assert rec.named("undo.start")[0]["in_doubt"] is True and result.undo_errors == ()


def test_a_cancelled_childs_undo_errors_are_the_parents_too():
    """A composed run cut short by its parent's failure rolls itself back; an undo error of that rollback
    was only in the child's events, not in the parent's result."""
    child = reactor(op("c1"), op("c2", "c1"), name="Child")
    parent = reactor(op("a"), model.Step("sub", model.ReactorCall("t.Child", lambda s: {}), deps=("a",)),
                     op("bad", "a"))
    robot = ops().cue("op", match={"tag": "c2"}, delay=5.0).cue("op", match={"tag": "bad"}, delay=0.5,
                                                                 error="boom")
    robot.cue("undo", match={"tag": "c1"}, error="stuck")
    result, rec = run(parent, robot, prog=program(parent, child, robot=ops_spec()))
    assert result.error.message == "op: boom"
    assert [(u.step, u.reactor) for u in result.undo_errors] == [("c1", "Child")]
    assert [u["step"] for u in rec.named("run.failed")[-1]["undo_errors"]] == ["c1"]
