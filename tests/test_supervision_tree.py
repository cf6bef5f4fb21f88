"""The supervision tree of ``bbflow run`` with agents: [supervision] limits, robot connections.

root (no restarts: its give-up is the safe stop, exit 3)
 ├── robots: one child per robot's driver connection (a lost connection is reconnected)
 └── agents: one child per agent
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from run_helpers import write_project

from bbflow.build import compile_project
from bbflow.project import Project, RobotConfig, SupervisionConfig
from bbflow.runtime import model
from bbflow.runtime.app import Session, Status
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.events import Recorder
from bbflow.runtime.run_plan import RunOptions, plan_run


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> model.Program:
    root = write_project(tmp_path_factory.mktemp("cell"))
    diagnostics, program = compile_project(root)
    assert program is not None, diagnostics
    return program


def cell(tmp_path: Path, supervision: SupervisionConfig) -> Project:
    robots = {"arm": RobotConfig("cell.Arm", sim={"duration": "20ms"})}
    return Project("cell", tmp_path, tmp_path, robots, {}, ("cell.Picker",), supervision=supervision)


def lose_connection(session: Session, times: int, every: float) -> Any:
    """Run ``session``; once it serves, make the arm's driver report its connection lost ``times`` times."""
    async def main() -> Any:
        task = asyncio.create_task(session.run())
        while session.root is None:
            await asyncio.sleep(0.01)
        proxy = session.robot("arm")
        for _ in range(times):
            await asyncio.sleep(every)
            proxy.driver.handle.connection_lost("cable unplugged")
        await asyncio.sleep(every)
        safety = proxy.safety
        if not task.done():
            session.interrupt()
        return await task, safety

    return run_virtual(main())


def test_a_lost_robot_connection_is_reconnected_and_the_robot_armed_again(program: model.Program,
                                                                          tmp_path: Path) -> None:
    plan = plan_run(program, cell(tmp_path, SupervisionConfig(max_restarts=3, within=5.0)), RunOptions())
    recorder, notes = Recorder(), []
    outcome, safety = lose_connection(Session(plan, observer=recorder, note=notes.append), times=2, every=1.0)
    restarts = recorder.named("supervisor.restart")
    assert [(e["supervisor"], e["child"]) for e in restarts] == [("robots", "robot arm")] * 2
    assert "connection lost: cable unplugged" in restarts[0]["error"]
    assert notes.count("robot arm: reconnected; arming") == 2
    assert safety == "armed"
    assert outcome.status is Status.INTERRUPTED  # it went on serving until interrupted


def test_past_the_limits_the_cell_stops_safely_with_exit_status_3(program: model.Program, tmp_path: Path) -> None:
    plan = plan_run(program, cell(tmp_path, SupervisionConfig(max_restarts=1, within=10.0)), RunOptions())
    recorder = Recorder()
    outcome, safety = lose_connection(Session(plan, observer=recorder), times=3, every=0.5)
    assert outcome.status is Status.HALTED
    assert outcome.summary.startswith("safe stop, robots disarmed: supervisor 'root' gave up: child 'robots' failed: "
                                      "supervisor 'robots' gave up: child 'robot arm' failed: robot arm: "
                                      "connection lost: cable unplugged")
    assert safety == "disarmed"
    assert [e["supervisor"] for e in recorder.named("supervisor.gave_up")] == ["robots", "root"]


def test_the_strategy_and_limits_come_from_bbflow_toml(program: model.Program, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from bbflow.runtime.agent import AgentServer

    def crash(self: AgentServer, envelope: Any) -> None:
        raise RuntimeError("a bug in the agent server")

    monkeypatch.setattr(AgentServer, "_signal_turn", crash)
    request = '{"type": "pick.rejected", "data": {"reason": "x"}}'

    def restarts_before_giving_up(max_restarts: int) -> int:
        plan = plan_run(program, cell(tmp_path, SupervisionConfig("one_for_all", max_restarts, 60.0)), RunOptions())
        recorder = Recorder()

        class Lines:
            async def __aiter__(self):  # type: ignore[no-untyped-def]
                for _ in range(10):
                    yield request

        session = Session(plan, observer=recorder, lines=Lines())
        outcome = run_virtual(session.run())
        assert outcome.status is Status.HALTED
        return len([e for e in recorder.named("supervisor.restart") if e["supervisor"] == "agents"])

    assert restarts_before_giving_up(0) == 0
    assert restarts_before_giving_up(4) == 4
