"""A robot claimed on the fleet bus is claimed by every process that moves it: a reactor run and
`bbflow runs recover` too, not only a process of agents. Two checkouts of one project stand for two machines
(their owners locks do not see each other); the processes are real and on 127.0.0.1, and each is stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from fleet_helpers import PATIENCE, beside_a_thief, fleet, free_port, of, write_fleet_project

from bbflow.build import compile_project
from bbflow.project import load_project
from bbflow.runtime.app import Session, Status
from bbflow.runtime.events import Recorder
from bbflow.runtime.run_plan import RunOptions, plan_run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

HOLD = """
signal go.on: {}

reactor Hold(to: Pose) -> Pose on Arm {
    step moved = move_to(target: to) undo home()
    step ok = wait_signal(go.on) after moved timeout 60s
    return moved
}
"""
TO = 'to={"x": 0.1, "y": 0.0, "z": 0.2}'


def machine(tmp_path: Path, name: str) -> Path:
    root = write_fleet_project(tmp_path / name)
    with open(root / "flows" / "cell.flow", "a") as flow:
        flow.write(HOLD)
    return root


def bbflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bbflow", *args], capture_output=True, text=True, timeout=PATIENCE,
                          env={**os.environ, "NO_COLOR": "1"}, stdin=subprocess.DEVNULL)


def runs(root: Path) -> list[dict[str, Any]]:
    listed = bbflow("runs", str(root), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))


def test_a_reactor_run_and_a_recovery_are_refused_a_robot_another_process_on_the_bus_runs(tmp_path: Path) -> None:
    # a reactor run and `runs recover` claimed nothing on the bus: on another machine than the process running
    # `left`, either armed and moved the arm under that process's feet
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    here, there = machine(tmp_path, "here"), machine(tmp_path, "there")
    with fleet(here, tmp_path) as start_here, fleet(there, tmp_path) as start_there:
        cut = start_there("cut", "--reactor", "Hold", "--robot", "left", "--input", TO)  # killed mid-run: cut off
        cut.wait_for("the move done", lambda events: bool(of(events, "step.ok", step="moved")))
        cut.stop(signal.SIGKILL)
        [run] = runs(there)
        assert run["status"] == "running"

        first = start_here("first", "--agent", "Picker", "--robot", "left", "--bus-listen", endpoint)
        first.wait_for("left armed", lambda events: any(e.get("to") == "armed" for e in of(events, "robot.safety")))
        taken = "bus: robot left is already run by process "
        reactor = start_there("reactor", "--reactor", "Go", "--robot", "left", "--input", TO, "--bus-connect", endpoint)
        assert reactor.popen.wait(timeout=PATIENCE) == 2, reactor.stderr()
        reactor.stopped = True
        assert "error: bus: robot left is already run by process " in reactor.stderr(), reactor.stderr()
        assert f"-{first.popen.pid}-" in reactor.stderr() and not of(reactor.events(), "robot.safety")

        recover = bbflow("runs", "recover", run["id"], str(there), "--bus-connect", endpoint)
        assert recover.returncode == 2, recover
        assert recover.stderr.startswith(f"Error: {taken}"), recover.stderr
        assert f"-{first.popen.pid}-" in recover.stderr and recover.stderr.rstrip().endswith(
            f"nothing moved, run {run['id']} is left as it was"), recover.stderr
        assert [r["status"] for r in runs(there)] == ["running"]

        assert first.stop() == 130
        recover = bbflow("runs", "recover", run["id"], str(there), "--bus-connect", endpoint)
        assert (recover.returncode, recover.stdout) == (0, f"run {run['id']}: rolled back\n"), recover
        assert "no other process reached" in recover.stderr  # the process that had the robot is gone


def test_a_running_reactor_holds_its_robot_against_a_process_started_for_it_elsewhere(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    here, there = machine(tmp_path, "here"), machine(tmp_path, "there")
    with fleet(here, tmp_path) as start_here, fleet(there, tmp_path) as start_there:
        reactor = start_there("reactor", "--reactor", "Hold", "--robot", "left", "--input", TO,
                              "--bus-listen", endpoint, stdin=True)
        reactor.wait_for("the move done", lambda events: bool(of(events, "step.ok", step="moved")))
        second = start_here("second", "--agent", "Picker", "--robot", "left", "--bus-connect", endpoint)
        assert second.popen.wait(timeout=PATIENCE) == 2, second.stderr()
        second.stopped = True
        assert "error: bus: robot left is already run by process " in second.stderr()
        assert f"-{reactor.popen.pid}-" in second.stderr() and not of(second.events(), "robot.safety")
        reactor.send({"type": "go.on", "data": {}})
        assert reactor.popen.wait(timeout=PATIENCE) == 0, reactor.stderr()
        reactor.stopped = True
        assert of(reactor.events(), "run.ok")


def test_a_reactor_run_on_a_virtual_clock_claims_nothing_and_bus_options_say_why_not(tmp_path: Path) -> None:
    root = machine(tmp_path, "here")
    diagnostics, program = compile_project(root)
    assert program is not None, diagnostics
    project = load_project(root)
    plan = plan_run(program, project, RunOptions(reactor="Go", inputs=(TO,), virtual_time=True, journal=False))
    assert not plan.bus.networked
    assert plan_run(program, project, RunOptions(reactor="Go", inputs=(TO,), journal=False)).bus.networked
    with pytest.raises(Exception, match="--bus-listen and --bus-connect: a reactor run with --virtual-time moves "
                                        "simulated robots only, and joins no bus"):
        plan_run(program, project, RunOptions(reactor="Go", inputs=(TO,), virtual_time=True, journal=False,
                                              bus_connect=("tcp/127.0.0.1:7447",)))


def test_a_robot_taken_while_a_reactor_runs_stops_it_safely(tmp_path: Path) -> None:
    # a process this reactor run reaches only later (through a third), or one that took the robot while this
    # run's session was lost: the run went on driving the arm beside the other process
    root = machine(tmp_path, "fleet")
    toml = root / "bbflow.toml"
    toml.write_text(toml.read_text().replace('duration = "20ms"', 'duration = "60s"'))  # still moving
    diagnostics, program = compile_project(root)
    assert program is not None, diagnostics
    project = load_project(root)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    plan = plan_run(program, project, RunOptions(reactor="Go", inputs=(TO,), journal=False, bus_connect=(endpoint,)))
    recorder, notes = Recorder(), []
    cell = Session(plan, observer=recorder, note=notes.append)

    outcome = asyncio.run(beside_a_thief(project, endpoint, cell.run(), lambda: bool(recorder.named("step.start")),
                                         lambda: cell._link))
    assert outcome.status is Status.HALTED, outcome
    assert outcome.summary.startswith("safe stop, robots disarmed: bus: robot left is already run by process "
                                      "thief-9-a1b2c3 (host thief, pid 9)"), outcome
    assert any(n.startswith("bus: robot left is already run by process thief-9-a1b2c3") for n in notes), notes
    assert [(e["from"], e["to"]) for e in recorder.named("robot.safety")][-1] == ("disarming", "disarmed")


def test_a_robot_taken_while_runs_recover_rolls_it_back_is_disarmed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the recovery's claim went with a lost session, and a process took the robot meanwhile: the rollback went on
    # moving the arm beside that process
    import io

    from bbflow.runtime.journal import operator

    root = machine(tmp_path, "fleet")
    with fleet(root, tmp_path) as start:
        cut = start("cut", "--reactor", "Hold", "--robot", "left", "--input", TO)
        cut.wait_for("the move done", lambda events: bool(of(events, "step.ok", step="moved")))
        cut.stop(signal.SIGKILL)
    [run] = runs(root)
    toml = root / "bbflow.toml"
    toml.write_text(toml.read_text().replace('duration = "20ms"', 'duration = "60s"'))  # the undo still moving
    diagnostics, program = compile_project(root)
    assert program is not None, diagnostics
    project = load_project(root)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    links = []
    join_bus = operator.join_bus

    async def joined(*args: Any, **kwargs: Any) -> Any:
        links.append(await join_bus(*args, **kwargs))
        return links[-1]

    monkeypatch.setattr(operator, "join_bus", joined)
    out, err = io.StringIO(), io.StringIO()

    def recover() -> list[Any]:
        return operator.recover_run(program, project, run["id"], out, err, arm=False, driver=None, events=None,
                                    bus_connect=(endpoint,))

    async def main() -> list[Any]:
        return await beside_a_thief(project, endpoint, asyncio.get_running_loop().run_in_executor(None, recover),
                                    lambda: bool(links), lambda: links[0])

    [recovered] = asyncio.run(main())
    # seen by the new session's check, or by its watch a moment later (it reaches the thief through the hub)
    assert err.getvalue().endswith("bus: robot left is already run by process thief-9-a1b2c3 (host thief, pid 9) on "
                                   "the bus 'test/fleet': two processes would drive one robot: disarming the robot\n")
    assert recovered.undo_errors and out.getvalue() == f"run {run['id']}: rolled back, 1 undo errors\n"


def test_a_reactor_run_beside_the_robot_process_of_its_machine_does_not_take_its_listening_port(
        tmp_path: Path) -> None:
    # [bus] listen with a port (one robot process a machine, the others connecting to it): a reactor run on the
    # machine's other robot, now on the bus to claim it, was refused "Address already in use"
    root = machine(tmp_path, "cell")
    port = free_port()
    toml = root / "bbflow.toml"
    toml.write_text(toml.read_text().replace("[bus]", '[robot.right]\ninterface = "cell.Arm"\n\n[bus]')
                    + f'listen = ["tcp/127.0.0.1:{port}"]\n')
    with fleet(root, tmp_path) as start:
        left = start("left", "--agent", "Picker", "--robot", "left")
        left.wait_for("left armed", lambda events: any(e.get("to") == "armed" for e in of(events, "robot.safety")))
        reactor = bbflow("run", str(root), "--reactor", "Go", "--robot", "right", "--input", TO)
        assert reactor.returncode == 0, reactor.stderr
        assert left.stop() == 130
