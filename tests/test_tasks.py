"""One task per robot (bbflow.runtime.tasks): the hold, the FIFO queue, busy, cancel and preemption."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from runtime_fakes import FakeRobot, op, ops_spec, program, reactor

from bbflow.runtime import model
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.events import Recorder
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.signal_waits import SignalWaits
from bbflow.runtime.signals import Envelope
from bbflow.runtime.tasks import Tasks
from bbflow.runtime.types import ANY

KEYED = reactor(
    model.Step("a", model.CommandCall("op", lambda s: {"tag": f"{s['k']}.a"}),
               undo=model.Undo(model.CommandCall("undo", lambda s: {"tag": f"{s['k']}.a"}))),
    model.Step("b", model.CommandCall("op", lambda s: {"tag": f"{s['k']}.b"}), deps=("a",),
               undo=model.Undo(model.CommandCall("undo", lambda s: {"tag": f"{s['k']}.b"}))),
    name="Keyed", params=(model.Param("k", ANY),),
)


def submit(tasks: Tasks, robot: FakeRobot, k: str, rec: Recorder, *, preempt: bool = False,
           signals: SignalWaits | None = None, the: model.Reactor = KEYED) -> asyncio.Task[Any]:
    prog = program(the, robot=robot.spec)

    async def go() -> Any:
        try:
            return await tasks.run(
                lambda t: run_reactor(prog, the, {"k": k}, robot=robot, observer=rec, run_id=t.run_id,
                                      cancel_code=t.cancel_code, signals=signals),
                name=the.name, robot=robot.instance, run_id=k, preempt=preempt)
        except RuntimeFailure as failure:
            return failure

    return asyncio.get_running_loop().create_task(go())


def kinds(rec: Recorder, *names: str) -> list[tuple[str, str]]:
    return [(e["event"], e["run"]) for e in rec.events if e["event"] in names]


def test_runs_on_one_robot_queue_and_never_interleave() -> None:
    async def main() -> tuple[FakeRobot, Recorder, list[Any]]:
        robot, rec = FakeRobot(ops_spec(), duration=0.01), Recorder()
        tasks = Tasks(observer=rec)
        runs = [submit(tasks, robot, k, rec) for k in "xyz"]
        return robot, rec, list(await asyncio.gather(*runs))

    robot, rec, results = run_virtual(main())
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert robot.tags("op") == ["x.a", "x.b", "y.a", "y.b", "z.a", "z.b"]
    queued = [(e["run"], e["position"], e["robot"]) for e in rec.events if e["event"] == "run.queued"]
    assert queued == [("y", 1, "arm"), ("z", 2, "arm")]
    assert kinds(rec, "run.start", "run.ok") == [
        ("run.start", "x"), ("run.ok", "x"), ("run.start", "y"), ("run.ok", "y"), ("run.start", "z"), ("run.ok", "z")]


def test_a_full_queue_refuses_with_busy_before_anything_moves() -> None:
    async def main() -> tuple[FakeRobot, Recorder, list[Any]]:
        robot, rec = FakeRobot(ops_spec(), duration=0.01), Recorder()
        tasks = Tasks(capacities={"arm": 1}, observer=rec)
        runs = [submit(tasks, robot, k, rec) for k in "xyz"]
        return robot, rec, list(await asyncio.gather(*runs))

    robot, rec, results = run_virtual(main())
    assert results[2].code == "busy" and "queue = 1" in results[2].message
    assert "z.a" not in robot.tags("op")
    failed = [e for e in rec.events if e["event"] == "run.failed"]
    assert [(e["run"], e["error"]["code"]) for e in failed] == [("z", "busy")]


def test_a_cancelled_queued_run_never_starts() -> None:
    async def main() -> tuple[FakeRobot, Recorder, list[Any]]:
        robot, rec = FakeRobot(ops_spec(), duration=0.01), Recorder()
        tasks = Tasks(observer=rec)
        runs = [submit(tasks, robot, k, rec) for k in "xyz"]
        await asyncio.sleep(0.005)
        assert tasks.queue_depth("arm") == 2
        assert tasks.cancel("y") and not tasks.cancel("nope")
        assert tasks.queue_depth("arm") == 1
        return robot, rec, list(await asyncio.gather(*runs))

    robot, rec, results = run_virtual(main())
    assert results[1].code == "cancelled" and "before it started" in results[1].message
    assert [r.status for r in (results[0], results[2])] == ["ok", "ok"]
    assert robot.tags("op") == ["x.a", "x.b", "z.a", "z.b"]
    assert ("run.start", "y") not in kinds(rec, "run.start")


def test_cancelling_a_running_run_rolls_it_back_with_code_cancelled() -> None:
    async def main() -> tuple[FakeRobot, list[Any]]:
        robot, rec = FakeRobot(ops_spec(), duration=0.01), Recorder()
        tasks = Tasks(observer=rec)
        runs = [submit(tasks, robot, k, rec) for k in "xy"]
        await asyncio.sleep(0.015)  # x.a done, x.b in flight
        assert [t.run_id for t in tasks.runs()] == ["x", "y"]
        tasks.cancel("x")
        tasks.cancel("x", "preempted")  # the first reason stays
        return robot, list(await asyncio.gather(*runs))

    robot, (x, y) = run_virtual(main())
    assert x.status == "failed" and x.error.code == "cancelled"
    assert y.status == "ok"
    assert robot.commands() == ["op", "op", "undo", "undo", "op", "op"]
    assert [c.outcome for c in robot.calls[:2]] == ["ok", "cancelled"]
    # x.b, cut off in flight, is undone too; the rollback is inside x's hold: y starts after it
    assert robot.tags("undo") == ["x.b", "x.a"]


def test_preempting_run_cancels_the_holder_and_goes_ahead_of_the_queue() -> None:
    async def main() -> tuple[FakeRobot, Recorder, list[Any]]:
        robot, rec = FakeRobot(ops_spec(), duration=0.01), Recorder()
        tasks = Tasks(capacities={"arm": 1}, observer=rec)
        runs = [submit(tasks, robot, k, rec) for k in "xy"]
        await asyncio.sleep(0.015)
        runs.append(submit(tasks, robot, "stop", rec, preempt=True))  # never busy, even with the queue full
        return robot, rec, list(await asyncio.gather(*runs))

    robot, rec, (x, y, stop) = run_virtual(main())
    assert x.status == "failed" and x.error.code == "preempted"
    assert stop.status == "ok" and y.status == "ok"
    assert robot.tags("op", "ok") == ["x.a", "stop.a", "stop.b", "y.a", "y.b"]
    assert robot.tags("undo") == ["x.b", "x.a"]  # x.b was cut off in flight
    queued = [(e["run"], e["position"]) for e in rec.events if e["event"] == "run.queued"]
    assert queued == [("y", 1), ("stop", 1)]


def test_the_callers_cancellation_rolls_back_and_goes_on() -> None:
    async def main() -> tuple[FakeRobot, Tasks, bool]:
        robot, rec = FakeRobot(ops_spec(), duration=0.01), Recorder()
        tasks = Tasks(observer=rec)
        prog = program(KEYED, robot=robot.spec)
        work = asyncio.create_task(tasks.run(
            lambda t: run_reactor(prog, KEYED, {"k": "x"}, robot=robot, observer=rec, run_id=t.run_id,
                                  cancel_code=t.cancel_code), name="Keyed", robot="arm"))
        await asyncio.sleep(0.015)
        work.cancel()
        with pytest.raises(asyncio.CancelledError):
            await work
        return robot, tasks, tasks.hold("arm").holder is None

    robot, tasks, free = run_virtual(main())
    assert robot.tags("undo") == ["x.b", "x.a"] and free and list(tasks.runs()) == []  # x.b: cut off in flight


def test_a_command_is_a_task_of_one_step() -> None:
    async def main() -> tuple[FakeRobot, list[Any]]:
        robot, rec = FakeRobot(ops_spec(), duration=0.01), Recorder()
        tasks = Tasks(observer=rec)
        first = submit(tasks, robot, "x", rec)
        await asyncio.sleep(0)
        command = asyncio.create_task(tasks.run(lambda _: robot.call("op", {"tag": "cmd"}), name="op",
                                                robot="arm", kind="command"))
        queued = asyncio.create_task(tasks.run(lambda _: robot.call("op", {"tag": "late"}), name="op",
                                               robot="arm", kind="command", run_id="late"))
        await asyncio.sleep(0.001)
        tasks.cancel("late")
        out: list[Any] = [await first, await command]
        with pytest.raises(RuntimeFailure) as info:
            await queued
        out.append(info.value.code)
        events = [e for e in rec.events if e["event"] == "run.queued"]
        assert events[0]["command"] == "op" and events[0]["reactor"] is None
        return robot, out

    robot, (first, command, late) = run_virtual(main())
    assert robot.tags("op") == ["x.a", "x.b", "cmd"] and command == "cmd" and late == "cancelled"


# --- wait_signal --------------------------------------------------------------------------

GATED = reactor(
    op("before"),
    model.Step("ok", model.WaitSignal("op.approved", lambda s: s["ok"]["data"]["part"] == s["k"]),
               deps=("before",), timeout=5.0),
    op("after", "ok"),
    name="Gated", params=(model.Param("k", ANY),),
)


def test_wait_signal_takes_the_first_matching_signal_after_it_starts() -> None:
    async def main() -> tuple[FakeRobot, Any, Recorder]:
        robot, rec, waits = FakeRobot(ops_spec(), duration=0.01), Recorder(), SignalWaits()
        run = submit(Tasks(), robot, 7, rec, signals=waits, the=GATED)
        waits.offer(Envelope(type="op.approved", source="/x", data={"part": 7}))  # before the step: not seen
        await asyncio.sleep(0.02)
        waits.offer(Envelope(type="op.approved", source="/x", data={"part": 8}))  # where does not hold
        waits.offer(Envelope(type="op.approved", source="/x", data={"part": 7}, subject="other"))  # not this robot
        await asyncio.sleep(1.0)
        assert robot.tags("op") == ["before"] and len(waits) == 1
        waits.offer(Envelope(type="op.approved", source="/op", data={"part": 7}, subject="arm"))
        return robot, await run, rec

    robot, result, rec = run_virtual(main())
    assert result.status == "ok" and robot.tags("op") == ["before", "after"]
    ok = next(e for e in rec.events if e["event"] == "step.ok" and e["step"] == "ok")
    assert ok["result"]["source"] == "/op" and ok["result"]["data"] == {"part": 7}


def test_wait_signal_timeout_fails_the_step_and_rolls_back() -> None:
    async def main() -> tuple[FakeRobot, Any]:
        robot, waits = FakeRobot(ops_spec(), duration=0.01), SignalWaits()
        return robot, await submit(Tasks(), robot, 7, Recorder(), signals=waits, the=GATED)

    robot, result = run_virtual(main())
    assert result.status == "failed" and result.error.code == "timeout"
    assert robot.tags("undo") == ["before"] and robot.tags("op") == ["before"]
