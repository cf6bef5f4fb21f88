"""examples/fleet as three processes on 127.0.0.1 (a dispatcher listening, two arms connecting): the jobs are
all done and split between the arms; SIGTERM stops all three cleanly; an arm's process killed with -9 is seen
down, its job goes to the other arm, and the arm's process started again rolls its run back from its journal
and says so. Every process is started and stopped by the test. And the same .flow files as one process on the
in-process bus (examples/fleet/cell)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fleet_helpers import Process, fleet, free_port, of

from bbflow.cli import main


def needs_the_bus(test: Callable[..., None]) -> Callable[..., None]:
    """Three processes joined by Zenoh: slow, POSIX signals, the bus extra."""
    for mark in (pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
                 pytest.mark.skipif(importlib.util.find_spec("zenoh") is None,
                                    reason="the bus extra (eclipse-zenoh) is not installed")):
        test = mark(test)
    return test


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fleet"
JOBS = [json.loads(line) for line in (EXAMPLE / "jobs.jsonl").read_text().splitlines()]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "fleet", ignore=shutil.ignore_patterns(".bbflow")))


def start_fleet(start: Any, endpoint: str) -> tuple[Process, Process, Process]:
    dispatcher = start("dispatcher", "--agent", "Dispatcher", "--bus-listen", endpoint, stdin=True)
    left = start("left", "--agent", "Picker", "--robot", "left", "--bus-connect", endpoint)
    right = start("right", "--agent", "Picker", "--robot", "right", "--bus-connect", endpoint)
    dispatcher.wait_for("both arms up", lambda events: {r for e in of(events, "signal.in", type="fleet.peer.up")
                                                        for r in e["data"]["robots"]} == {"left", "right"})
    return dispatcher, left, right


def completed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in of(events, "signal.in", type="robot.task.completed")]


@needs_the_bus
def test_twenty_jobs_are_split_between_two_arm_processes_and_sigterm_stops_all(project: Path, tmp_path: Path) -> None:
    with fleet(project, tmp_path) as start:
        dispatcher, left, right = start_fleet(start, f"tcp/127.0.0.1:{free_port()}")
        dispatcher.send(*JOBS)
        events = dispatcher.wait_for("20 jobs done", lambda events: len(completed(events)) == 20)
        done = completed(events)
        assert sorted(d["job"] for d in done) == list(range(1, 21))
        by_arm = {arm: sum(d["robot"] == arm for d in done) for arm in ("left", "right")}
        assert by_arm["left"] > 0 and by_arm["right"] > 0, by_arm
        assert len(of(left.events(), "run.ok")) == by_arm["left"] and len(of(right.events(), "run.ok")) == by_arm["right"]
        assert not of(left.events(), "run.start", robot="right")  # each process drives only its own arm
        codes = {p.name: p.stop(signal.SIGTERM) for p in (left, right, dispatcher)}
        assert codes == {"left": 130, "right": 130, "dispatcher": 130}
        for arm in (left, right):
            assert f"{arm.name}  disarming -> disarmed" in arm.stderr()
        downs = {r for e in of(dispatcher.events(), "signal.in", type="fleet.peer.down") for r in e["data"]["robots"]}
        assert downs == {"left", "right"}


@needs_the_bus
def test_a_killed_arm_is_seen_down_and_its_job_goes_to_the_other_arm(project: Path, tmp_path: Path) -> None:
    with fleet(project, tmp_path) as start:
        dispatcher, left, right = start_fleet(start, f"tcp/127.0.0.1:{free_port()}")
        dispatcher.send(*JOBS[:6])
        left.wait_for("a run in flight", lambda events: len(of(events, "run.start")) > len(of(events, "run.ok")))
        left.stop(signal.SIGKILL)
        events = dispatcher.wait_for("fleet.peer.down of left", lambda events: any(
            e["data"]["robots"] == ["left"] for e in of(events, "signal.in", type="fleet.peer.down")))
        events = dispatcher.wait_for("all six jobs done", lambda events: {d["job"] for d in completed(events)} == set(range(1, 7)))
        given_left = {e["data"]["job"] for e in of(events, "signal.emit", type="robot.task.assigned", subject="left")}
        done_by = {d["job"]: d["robot"] for d in completed(events)}
        cut_short = {job for job in given_left if done_by[job] != "left"}
        assert cut_short, "the job the killed arm was doing did not go to the other arm"
        assert all(done_by[job] == "right" for job in cut_short)
        assert {p.name: p.stop() for p in (right, dispatcher)} == {"right": 130, "dispatcher": 130}


HOME = {"x": 0.0, "y": 0.0, "z": 0.0}


def world(record: Path) -> tuple[dict[str, float], bool]:
    """Where the recorded arm is and whether it holds a part (it begins at home, holding nothing)."""
    pose, holding = HOME, False
    lines = record.read_text().splitlines() if record.exists() else []
    for line in map(json.loads, lines):
        if line["command"] in ("move_to", "home"):
            pose = line["result"]
        else:
            holding = line["command"] == "grip"
    return pose, holding


@needs_the_bus
def test_a_killed_arm_restarted_rolls_its_run_back_from_its_journal_and_the_dispatcher_hears_of_it(
        project: Path, tmp_path: Path) -> None:
    toml = project / "bbflow.toml"  # the left arm slow enough to be killed mid-run, and what its world saw
    text = toml.read_text()
    toml.write_text(text.replace('[robot.left.sim]\nduration = "50ms"',
                                 '[robot.left.sim]\nduration = "300ms"\nrecord = "left.world.jsonl"', 1))
    assert toml.read_text() != text
    record = project / "left.world.jsonl"
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with fleet(project, tmp_path) as start:
        dispatcher, left, right = start_fleet(start, endpoint)
        dispatcher.send(*JOBS[:3])
        left.wait_for("the arm moved in a run", lambda events: record.exists() and bool(record.read_text()),
                      poll=0.01)
        left.stop(signal.SIGKILL)
        assert world(record) != (HOME, False), "the run ended before the kill: nothing to recover"
        killed = [e["data"]["job"] for e in of(dispatcher.events(), "signal.emit", type="robot.task.assigned",
                                               subject="left")]
        assert len(killed) == 1 and len(of(left.events(), "run.start")) == 1 and not of(left.events(), "run.ok")
        dispatcher.wait_for("fleet.peer.down of left", lambda events: any(
            e["data"]["robots"] == ["left"] for e in of(events, "signal.in", type="fleet.peer.down")))
        dispatcher.wait_for("the three jobs done by the other arm",
                            lambda events: {d["job"] for d in completed(events)} == {1, 2, 3})
        assert {d["robot"] for d in completed(dispatcher.events())} == {"right"}

        again = start("left-again", "--agent", "Picker", "--robot", "left", "--bus-connect", endpoint)
        events = again.wait_for("the run recovered", lambda events: bool(of(events, "recover.done")))
        [recovered] = of(events, "recover.run")
        assert recovered["action"] == "rolled back" and recovered["reactor"] == "PickAndPlace"
        assert world(record) == (HOME, False), "the world is not back where it began"
        events = dispatcher.wait_for("the restarted arm's report", lambda events: bool(
            of(events, "signal.in", type="robot.task.failed")))
        [failed] = [e["data"] for e in of(events, "signal.in", type="robot.task.failed")]
        assert (failed["job"], failed["robot"], failed["code"]) == (killed[0], "left", "recovered")

        dispatcher.send(*JOBS[3:5])  # and the restarted arm works again
        events = dispatcher.wait_for("two more jobs done", lambda events: len(completed(events)) == 5)
        assert "left" in {d["robot"] for d in completed(events)}
        codes = {p.name: p.stop(signal.SIGTERM) for p in (again, right, dispatcher)}
        assert codes == {"left-again": 130, "right": 130, "dispatcher": 130}


def test_the_same_flow_files_as_one_process_on_the_local_bus(tmp_path: Path) -> None:
    cell = Path(shutil.copytree(EXAMPLE / "cell", tmp_path / "cell", ignore=shutil.ignore_patterns(".bbflow")))
    events_file = tmp_path / "events.jsonl"
    result = CliRunner().invoke(main, ["run", str(cell), "--until-idle", "--virtual-time", "--events", str(events_file)],
                                input=(EXAMPLE / "jobs.jsonl").read_text())
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    done = [e["data"] for e in of(events, "signal.emit", type="robot.task.completed")]
    assert sorted(d["job"] for d in done) == list(range(1, 21))
    assert {arm: sum(d["robot"] == arm for d in done) for arm in ("left", "right")} == {"left": 10, "right": 10}
