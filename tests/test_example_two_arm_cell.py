"""examples/two_arm_cell: the commands of its README run, and do what the README says.

The README's commands run as a user runs them (real time); what they show is
checked in-process on a virtual clock, where the order of everything is fixed.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bbflow.build import compile_project
from bbflow.cli import main
from bbflow.project import load_project
from bbflow.runtime.app import Session, Status
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.events import Recorder
from bbflow.runtime.run_plan import RunOptions, plan_run
from run_helpers import read_events

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "two_arm_cell"


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("cell") / "two_arm_cell"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".bbflow"))
    return project


class Lines:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    async def __aiter__(self) -> AsyncIterator[str]:
        for line in self.lines:
            yield line


def run(cell: Path, signals: str, tmp_path: Path) -> list[dict[str, Any]]:
    """``bbflow run CELL --until-idle < SIGNALS`` in-process, on a virtual clock."""
    diagnostics, program = compile_project(cell)
    assert program is not None, diagnostics.items
    plan = plan_run(program, load_project(cell), RunOptions(until_idle=True))
    recorder = Recorder()
    session = Session(plan, observer=recorder, lines=Lines((cell / signals).read_text()))

    async def main() -> Any:
        return await session.run()

    outcome = run_virtual(main())
    assert outcome.status is Status.OK, outcome.summary
    return recorder.events


def emitted(events: list[dict[str, Any]], signal: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "signal.emit" and e["type"] == signal]


def test_the_readme_commands_run(cell: Path, tmp_path: Path) -> None:
    """Both commands as written, then the first again: the drill leaves nothing behind that refuses jobs."""
    readme = (EXAMPLE / "README.md").read_text()
    commands = [line.strip() for line in readme.splitlines() if line.startswith("    bbflow ")]
    assert commands[:2] == [
        "bbflow run examples/two_arm_cell --until-idle < examples/two_arm_cell/jobs.jsonl",
        "bbflow run examples/two_arm_cell --until-idle --no-journal < examples/two_arm_cell/stop.jsonl",
    ]
    jobs, drill = commands[:2]
    for command, done in ((jobs, 3), (drill, None), (jobs, 3)):
        options, signals = command.removeprefix("bbflow run examples/two_arm_cell ").split(" < ")
        events = tmp_path / "events.jsonl"
        result = CliRunner().invoke(main, ["run", str(cell), *options.split(), "--events", str(events)],
                                    input=(cell / Path(signals).name).read_text())
        assert result.exit_code == 0, result.stderr
        log = read_events(events)
        ended = emitted(log, "job.done") + emitted(log, "job.failed")
        assert sorted(e["data"]["id"] for e in ended) == [1, 2, 3]  # every job ends, one way or the other
        if done is not None:
            assert len(emitted(log, "job.done")) == done, [e["data"] for e in emitted(log, "job.failed")]


def test_jobs_go_to_the_free_arm_and_the_risky_one_waits_for_the_operator(cell: Path, tmp_path: Path) -> None:
    events = run(cell, "jobs.jsonl", tmp_path)
    assigned = emitted(events, "robot.task.assigned")
    assert [(e["data"]["job"]["id"], e["subject"]) for e in assigned] == [(1, "left"), (2, "right"), (3, "left")]
    routed = sorted((e["agent"], e.get("robot")) for e in events
                    if e["event"] == "signal.routed" and e["type"] == "robot.task.assigned")
    assert routed == [("Picker", "left"), ("Picker", "left"), ("Picker", "right")]  # each only by its own arm
    # the coordinator's queue keeps job 3 until an arm is free (the left one, done with job 1 first): no
    # robot's own queue is used, and the left arm is given job 3 only once job 1 is done
    assert not [e for e in events if e["event"] == "run.queued"]
    order = [(e["type"], (e["data"].get("job") or e["data"])["id"]) for e in events if e["event"] == "signal.emit"
             and e["type"] in ("robot.task.assigned", "job.done")]
    assert order.index(("job.done", 1)) < order.index(("robot.task.assigned", 3))
    routed = [e["type"] for e in events if e["event"] == "signal.routed" and e["agent"] == "Coordinator"]
    assert routed.count("arm.free") == 3 and not [e for e in events if e["event"] == "signal.dropped"]
    done = sorted((e["data"]["id"], e["data"]["robot"]) for e in emitted(events, "job.done"))
    assert done == [(1, "left"), (2, "right"), (3, "left")]
    # the gate of the risky job took the operator's approval
    gate = next(e for e in events if e["event"] == "step.ok" and e["step"] == "approved")
    assert gate["result"]["source"] == "/agent/Operator" and gate["result"]["data"] == {"id": 2}
    requested = emitted(events, "handover.requested")[0]
    approval = emitted(events, "handover.approved")[0]
    assert requested["source"] == "/agent/Picker/right" and requested["robot"] == "right"
    assert approval["traceparent"][:36] == requested["traceparent"][:36]  # one trace, request to approval


def test_the_stop_preempts_rolls_back_and_parks_both_arms(cell: Path, tmp_path: Path) -> None:
    events = run(cell, "stop.jsonl", tmp_path)
    failed = emitted(events, "job.failed")
    assert sorted((e["data"]["id"], e["data"]["reason"]) for e in failed) == [(2, "cancelled"), (3, "cancelled")]
    assert [e["data"]["id"] for e in emitted(events, "job.done")] == [1]
    parks = [e for e in events if e["event"] == "run.ok" and e["reactor"] == "Park"]
    assert len(parks) == 2
    # each cancelled transfer rolled back what it had done, newest first; the one at the gate had lifted
    job_of = {e["run"]: e["inputs"]["job"]["id"] for e in events if e["event"] == "run.start"
              and e["reactor"] == "Transfer"}
    for run_id, job in job_of.items():
        if job == 1:
            continue
        mine = [e for e in events if e["run"] == run_id]
        # completed, or cut off in flight (it may have moved part-way): both undone
        done = [e["step"] for e in mine if e["step"] in ("approach", "gripped", "lifted") and (
            e["event"] == "step.ok" or e["event"] == "step.error" and e["error"]["code"] in ("cancelled", "preempted"))]
        assert [e["step"] for e in mine if e["event"] == "undo.ok"] == done[::-1]
        assert mine[-1]["event"] == "run.failed" and mine[-1]["error"]["code"] == "cancelled"
        if job == 2:
            assert done == ["approach", "gripped", "lifted"]


def test_after_the_stop_the_jobs_still_queued_end_without_moving_an_arm(cell: Path, tmp_path: Path) -> None:
    """A fourth job waits in the coordinator's queue when the stop comes: it ends as failed (`stopped`) once
    an arm reports back, and no arm is given a job after the stop."""
    jobs = (cell / "stop.jsonl").read_text().splitlines()
    fourth = jobs[0].replace('"id": 1', '"id": 4')
    (cell / "four.jsonl").write_text("\n".join([*jobs[:3], fourth, jobs[3]]) + "\n")
    events = run(cell, "four.jsonl", tmp_path)
    failed = sorted((e["data"]["id"], e["data"]["reason"]) for e in emitted(events, "job.failed"))
    assert failed == [(2, "cancelled"), (3, "cancelled"), (4, "stopped")]
    stop = next(i for i, e in enumerate(events) if e["event"] == "signal.routed" and e["type"] == "cell.stop")
    assert not [e for e in events[stop:] if e["event"] == "signal.emit" and e["type"] == "robot.task.assigned"]
