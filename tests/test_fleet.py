"""The fleet bus end to end: a coordinator and robot processes on 127.0.0.1, joined by Zenoh.

Every process is started and stopped by the test (SIGTERM, or kill -9 for the failure case); the
Zenoh configuration turns multicast scouting off and listens on loopback only, the coordinator on a
port the test picked, the robots connecting to it.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from fleet_helpers import fleet, free_port, of, write_fleet_project

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_fleet_project(tmp_path / "fleet")


def job(n: int) -> dict[str, Any]:
    return {"type": "job.requested", "data": {"job": n, "to": {"x": 0.1 * n, "y": 0.0, "z": 0.2}}}


def peer_up(robot: str) -> Any:
    return lambda events: any(robot in e["data"]["robots"] for e in of(events, "signal.in", type="fleet.peer.up"))


def routed(events: list[dict[str, Any]], signal_type: str) -> int:
    return len(of(events, "signal.routed", type=signal_type))


def test_jobs_cross_processes_garbage_changes_nothing_and_sigterm_stops_cleanly(project: Path, tmp_path: Path) -> None:
    import zenoh

    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    with fleet(project, tmp_path) as start:
        boss = start("boss", "--agent", "Boss", "--bus-listen", endpoint, stdin=True)
        left = start("left", "--agent", "Picker", "--robot", "left", "--bus-connect", endpoint)
        boss.wait_for("fleet.peer.up of left", peer_up("left"))
        boss.send(*(job(n) for n in range(1, 21)))
        boss.wait_for("20 jobs done", lambda events: routed(events, "job.done") == 20)
        assert len(of(left.events(), "run.ok")) == 20

        # a stranger under the prefix: garbage, ill-typed data, a robot's and a membership signal, a replay
        config = zenoh.Config.from_json5((project / "zenoh.json5").read_text())
        config.insert_json5("connect/endpoints", json.dumps([endpoint]))
        with zenoh.open(config) as stranger:
            for key, payload in [
                ("test/fleet/job/done", b"not json"),
                ("test/fleet/job/done", json.dumps({"type": "job.done", "id": "x1", "data": {"job": "one"}})),
                ("test/fleet/job/done", json.dumps({"type": "job.assigned", "id": "x2", "data": {"job": 1}})),
                ("test/fleet/robot/error", json.dumps({"type": "robot.error", "id": "x3", "data": {"message": "!"}})),
                ("test/fleet/job/done", json.dumps({"type": "job.done", "id": "x4"})),
            ]:
                stranger.put(key, payload)
            boss.wait_for("the stranger's events dropped",
                          lambda events: len(of(events, "signal.dropped")) >= 4)
        assert routed(boss.events(), "job.done") == 20  # nothing got through

        # a well-formed event is taken once, however often it is published (Zenoh's catch-up may repeat one)
        with zenoh.open(config) as stranger:
            for _ in range(2):
                stranger.put("test/fleet/job/done", json.dumps({"type": "job.done", "id": "dup-1", "data": {"job": 0}}))
            boss.wait_for("the repeat dropped", lambda events: any(
                e.get("reason") == "duplicate id dup-1" for e in of(events, "signal.dropped")))
        assert routed(boss.events(), "job.done") == 21

        codes = {p.name: p.stop(signal.SIGTERM) for p in (left, boss)}
        assert codes == {"left": 130, "boss": 130}, (boss.stderr(), left.stderr())
        assert "left  disarming -> disarmed" in left.stderr()
        assert of(boss.events(), "signal.in", type="fleet.peer.down")


def test_a_killed_robot_process_is_seen_down_and_a_restarted_one_up(project: Path, tmp_path: Path) -> None:
    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    with fleet(project, tmp_path) as start:
        boss = start("boss", "--agent", "Boss", "--bus-listen", endpoint, stdin=True)
        left = start("left", "--agent", "Picker", "--robot", "left", "--bus-connect", endpoint)
        boss.wait_for("fleet.peer.up of left", peer_up("left"))
        boss.send(job(1))
        left.wait_for("a run started", lambda events: bool(of(events, "run.start")))
        left.stop(signal.SIGKILL)
        events = boss.wait_for("fleet.peer.down of left", lambda events: bool(of(events, "signal.in", type="fleet.peer.down")))
        down = of(events, "signal.in", type="fleet.peer.down")[0]["data"]
        assert down["robots"] == ["left"] and down["agents"] == ["Picker"]

        again = start("left-again", "--agent", "Picker", "--robot", "left", "--bus-connect", endpoint)
        boss.wait_for("fleet.peer.up of the restarted left", lambda events: any(
            f"-{again.popen.pid}-" in e["data"]["process"] and e["data"]["robots"] == ["left"]
            for e in of(events, "signal.in", type="fleet.peer.up")))
        boss.send(job(2))
        boss.wait_for("job 2 done", lambda events: any(
            e["data"] == {"job": 2} for e in of(events, "signal.in", type="job.done")))
        assert {p.name: p.stop() for p in (again, boss)} == {"left-again": 130, "boss": 130}


def test_the_control_plane_shows_the_fleet_and_a_killed_process_gone(project: Path, tmp_path: Path) -> None:
    """GET /api/state's `fleet` and the fleet metrics of a coordinator: its own process, an arm's process up,
    then gone once killed (its robot down); without them the dashboard could not tell a dead arm from a live one."""
    pytest.importorskip("starlette", reason="the serve extra is not installed")
    import httpx

    port = free_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    with fleet(project, tmp_path) as start:
        boss = start("boss", "--agent", "Boss", "--bus-listen", endpoint, "--serve", "127.0.0.1:0", stdin=True)
        left = start("left", "--agent", "Picker", "--robot", "left", "--bus-connect", endpoint)
        boss.wait_for("fleet.peer.up of left", peer_up("left"))
        url = next(line.removeprefix("control plane: ").rstrip("/") for line in boss.stderr().splitlines()
                   if line.startswith("control plane: "))
        left_name = f"-{left.popen.pid}-"

        def fleet_state() -> tuple[list[tuple[bool, bool, list[str], bool]], str]:
            peers = httpx.get(url + "/api/state", timeout=10).json()["fleet"]
            metrics = httpx.get(url + "/metrics", timeout=10).text
            return ([(left_name in p["process"], p["self"], p["robots"], p["up"]) for p in peers],
                    "\n".join(line for line in metrics.splitlines() if line.startswith("bbflow_fleet")))

        assert fleet_state() == ([(False, True, [], True), (True, False, ["left"], True)],
                                 'bbflow_fleet_peers 1.0\nbbflow_fleet_robot_up{robot="left"} 1.0')
        left.stop(signal.SIGKILL)
        boss.wait_for("fleet.peer.down of left", lambda events: bool(of(events, "signal.in", type="fleet.peer.down")))
        assert fleet_state() == ([(False, True, [], True), (True, False, ["left"], False)],
                                 'bbflow_fleet_peers 0.0\nbbflow_fleet_robot_up{robot="left"} 0.0')
        assert boss.stop() == 130


def test_a_robot_already_run_on_another_machine_is_refused_before_it_is_armed(tmp_path: Path) -> None:
    # two machines (here: two checkouts, whose owners locks do not see each other) both started `--robot left`
    # on one bus: both armed the arm and both took its tasks
    from fleet_helpers import PATIENCE

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    here, there = (write_fleet_project(tmp_path / name) for name in ("here", "there"))
    with fleet(here, tmp_path) as start_here, fleet(there, tmp_path) as start_there:
        first = start_here("first", "--agent", "Picker", "--robot", "left", "--bus-listen", endpoint)
        first.wait_for("left armed", lambda events: any(e.get("to") == "armed" for e in of(events, "robot.safety")))
        second = start_there("second", "--agent", "Picker", "--robot", "left", "--bus-connect", endpoint)
        assert second.popen.wait(timeout=PATIENCE) == 2, second.stderr()
        second.stopped = True
        assert "error: bus: robot left is already run by process " in second.stderr()
        assert f"-{first.popen.pid}-" in second.stderr()  # the other process: its host and pid
        assert not of(second.events(), "robot.safety"), second.events()  # never opened, never armed
        assert first.popen.poll() is None
        assert first.stop(signal.SIGTERM) == 130, first.stderr()
