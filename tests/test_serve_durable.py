"""The control plane and the journal together, in real ``bbflow run --serve`` processes: what an HTTP client
was told (a 202, a 503) holds across a ``kill -9`` and a restart.

Each test starts its processes itself and stops every one of them (``served``), on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from run_helpers import PATIENCE, read_events, wait_while_running
from serve_helpers import CE, JOURNAL, cut_off, journaled_project, request, served

@pytest.mark.parametrize("sync", ["full", "normal"])
def test_a_signal_answered_202_survives_a_kill_right_after_and_is_handled_once(tmp_path: Path, sync: str) -> None:
    """A 202 is a promise to the sender, who will not send again. It came before the signal was committed (a
    commit waits up to a few ms), and a ``kill -9`` right after it lost the signal five times in six. Here the
    journal's file is held locked by another connection while the POST is made, so the commit cannot happen
    until it is let go: the 202 must wait for it."""
    root = journaled_project(tmp_path / "cell", sync=sync)
    with served(root) as (proc, url):
        blocker = sqlite3.connect(root / JOURNAL, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")  # the journal's writer waits for this lock (up to 5 s)
        release = threading.Timer(1.0, blocker.execute, ("COMMIT",))
        release.start()
        try:
            answer = httpx.post(url + "/signals", content=json.dumps(request(1)), headers=CE, timeout=30)
            assert answer.status_code == 202, answer.text
            proc.send_signal(signal.SIGKILL)
            proc.wait(PATIENCE)
        finally:
            release.join()
            blocker.close()
    with sqlite3.connect(root / JOURNAL) as db:
        assert db.execute("SELECT count(*) FROM signals WHERE id = 'order-1'").fetchone() == (1,)
    # the next start handles it once: the run its turn started (rolled back if the kill cut it off), or a run now
    events = tmp_path / "events.jsonl"
    done = subprocess.run([sys.executable, "-m", "bbflow", "run", str(root), "--until-idle", "--events", str(events)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(root / JOURNAL) as db:
        assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)
        assert db.execute("SELECT status FROM runs").fetchall() in ([("ok",)], [("failed",)])
    ends = [e for e in read_events(events) if e["event"] in ("run.ok", "recover.run")]
    assert len(ends) == 1 and ends[0].get("action", "rolled back") == "rolled back", ends
    assert_home(root)


def assert_home(root: Path) -> None:
    """What the simulated arm completed leaves it home (or where it started) with the gripper open."""
    world = [json.loads(line) for line in (root / "world.jsonl").read_text().splitlines()] \
        if (root / "world.jsonl").exists() else []
    grips = [w["command"] for w in world if w["command"] in ("close_gripper", "open_gripper")]
    moves = [w["command"] for w in world if w["command"] in ("move_to", "home")]
    assert not grips or grips[-1] == "open_gripper", world
    assert not moves or moves[-1] == "home" or grips[-1:] == ["open_gripper"], world


def runs_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bbflow", "runs", *args], capture_output=True, text=True,
                          timeout=PATIENCE, cwd=root)


def metric(url: str, name: str) -> list[str]:
    return [line for line in httpx.get(url + "/metrics", timeout=10).text.splitlines() if line.startswith(name)]


def test_a_held_run_is_shown_to_the_operator_and_goes_once_closed_from_the_cli(tmp_path: Path) -> None:
    """With recovery = "hold" a restarted cell went on with a run held for an operator that /api/state, the
    dashboard and /metrics did not show at all: only `bbflow runs` knew of it."""
    root = journaled_project(tmp_path / "cell", recovery="hold", duration="200ms")
    run = cut_off(root)
    with served(root) as (proc, url):
        held = httpx.get(url + "/api/state", timeout=10).json()["held"]
        assert [(h["id"], h["reactor"], h["robot"], h["recovering"]) for h in held] == \
            [(run, "PickAndPlace", "arm", False)]
        assert held[0]["steps"] >= 2 and 'recovery = "hold"' in held[0]["note"]
        assert metric(url, "bbflow_runs_held") == ["bbflow_runs_held 1.0"]
        listed = json.loads(runs_cli(root, "--format", "json").stdout)
        assert [(r["id"], r["status"]) for r in listed] == [(run, "held")]  # the CLI agrees
        # rolling it back needs its robot, which this cell drives: refused, and nothing changes
        refused = runs_cli(root, "recover", run)
        assert refused.returncode == 2 and "already run by another bbflow run" in refused.stderr
        assert [h["id"] for h in httpx.get(url + "/api/state", timeout=10).json()["held"]] == [run]
        # closed by hand: gone from the state and the metrics at once
        assert runs_cli(root, "recover", run, "--resolved").returncode == 0
        assert httpx.get(url + "/api/state", timeout=10).json()["held"] == []
        assert metric(url, "bbflow_runs_held") == ["bbflow_runs_held 0.0"]
    assert json.loads(runs_cli(root, "--format", "json").stdout)[0]["status"] == "failed"


def test_without_a_journal_nothing_is_held_and_there_is_no_held_series(tmp_path: Path) -> None:
    root = journaled_project(tmp_path / "cell")
    with served(root, "--no-journal") as (_, url):
        assert httpx.get(url + "/api/state", timeout=10).json()["held"] == []
        assert metric(url, "bbflow_runs_held") == []


def test_while_recovery_waits_for_the_operator_the_cell_says_it_is_starting_and_is_armed_from_the_plane(
        tmp_path: Path) -> None:
    """Recovery runs before the agents take any signal, and waits for the robot to be armed. Meanwhile
    /healthz said "not serving" and a POST was told "no agents are running in this process", as if the cell
    had none; it is starting, and the operator arms the robot from the control plane for it to go on."""
    root = journaled_project(tmp_path / "cell", duration="100ms")
    cut_off(root)
    with served(root, "--no-arm", ready=False) as (proc, url):  # the simulated arm is not armed: recovery waits for it
        assert httpx.get(url + "/healthz", timeout=10).json() == {"status": "starting"}
        assert httpx.get(url + "/api/state", timeout=10).json()["health"] == "starting"
        refused = httpx.post(url + "/signals", content=json.dumps(request(2)), headers=CE, timeout=30)
        assert refused.status_code == 503 and "starting" in refused.json()["error"]
        assert refused.headers["retry-after"] == "1"
        assert httpx.post(url + "/api/robots/arm/arm", timeout=10).json()["safety"] == "armed"
        wait_while_running(proc, lambda: httpx.get(url + "/healthz", timeout=10).status_code == 200, "recovery")
        assert httpx.post(url + "/signals", content=json.dumps(request(2)), headers=CE, timeout=30).status_code == 202
    assert_home(root)


def test_a_signal_a_client_sends_again_after_a_kill_is_not_handled_twice(tmp_path: Path) -> None:
    """The client of a cell killed before it saw its 202 sends the signal again to the restarted cell, as it
    should (the 202 was not given, as far as it knows): the journal has it, and the arm picked twice."""
    root = journaled_project(tmp_path / "cell")
    with served(root) as (proc, url):
        assert httpx.post(url + "/signals", content=json.dumps(request(1)), headers=CE, timeout=30).json() == \
            {"id": "order-1"}
        wait_while_running(proc, lambda: httpx.get(url + "/api/state", timeout=10).json()["runs"]["recent"], "run")
        proc.send_signal(signal.SIGKILL)
        proc.wait(PATIENCE)
    with served(root) as (proc, url):
        again = httpx.post(url + "/signals", content=json.dumps(request(1)), headers=CE, timeout=30)
        assert (again.status_code, again.json()) == (202, {"id": "order-1", "duplicate": True})
        assert httpx.post(url + "/signals", content=json.dumps(request(2)), headers=CE, timeout=30).json() == \
            {"id": "order-2"}
        wait_while_running(proc, lambda: httpx.get(url + "/api/state", timeout=10).json()["runs"]["recent"], "run")
    world = [json.loads(line)["command"] for line in (root / "world.jsonl").read_text().splitlines()]
    assert world.count("close_gripper") == 2, world  # order-1 once, order-2 once
    assert_home(root)


def test_more_held_runs_than_the_state_lists_are_all_counted_in_the_metric(tmp_path: Path) -> None:
    """/api/state lists the newest 50 held runs; bbflow_runs_held, the number to alert on, said 50 of 51."""
    root = journaled_project(tmp_path / "cell")
    with served(root) as (_, url):
        with sqlite3.connect(root / JOURNAL) as db:  # what recoveries of other runs' crashes left
            db.executemany("INSERT INTO runs (id, reactor, robot, status, started, inputs) "
                           "VALUES (?, 'PickAndPlace', 'arm', 'held', ?, '{}')", [(f"held-{i:02d}", i) for i in range(51)])
        held = httpx.get(url + "/api/state", timeout=10).json()["held"]
        assert len(held) == 50 and held[0]["id"] == "held-50"
        assert metric(url, "bbflow_runs_held") == ["bbflow_runs_held 51.0"]


def test_a_signal_with_the_id_of_another_sources_signal_in_the_journal_is_refused(tmp_path: Path) -> None:
    """The journal keeps one signal per id: a second sender's signal with the first's id was taken (202) while
    the journal kept only the first, so a crash before its turn replayed the first sender's signal for it."""
    root = journaled_project(tmp_path / "cell")
    with served(root) as (_, url):
        assert httpx.post(url + "/signals", content=json.dumps(request(1)), headers=CE, timeout=30).status_code == 202
        other = httpx.post(url + "/signals", content=json.dumps({**request(1), "source": "/line-2"}), headers=CE,
                           timeout=30)
        assert other.status_code == 409 and "/mes" in other.json()["error"], other.text
