"""examples/fleet as three processes on 127.0.0.1 (a dispatcher listening, two arms connecting): the jobs are
all done and split between the arms; SIGTERM stops all three cleanly; an arm's process killed with -9 is seen
down and its job goes to the other arm. Every process is started and stopped by the test."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from fleet_helpers import Process, fleet, free_port, of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

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
