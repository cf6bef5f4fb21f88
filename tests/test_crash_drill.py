"""The crash drill (``tests/crash_drill.py``) in the suite: 30 kills at random moments, then the promises checked."""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from crash_drill import bbflow, check_journal, check_world, drill, env, journal_file, make_project, restart, world


@pytest.mark.slow
def test_killed_at_random_moments_the_world_comes_back_and_nothing_runs_twice(tmp_path: Path) -> None:
    counts = drill(tmp_path, trials=30, seed=15)
    assert counts["accepted"] > 0 and counts["rolled back"] > 0  # the kills did cut runs off


@pytest.mark.slow
def test_the_same_with_sync_normal(tmp_path: Path) -> None:
    """With ``sync = "normal"`` commits are made on the loop's thread: a kill at any moment still leaves a
    journal that keeps every promise (a process's death loses nothing SQLite has committed, synced or not)."""
    counts = drill(tmp_path, trials=12, seed=16, every=6, sync="normal")
    assert counts["accepted"] > 0 and counts["rolled back"] > 0


@pytest.mark.slow
def test_journal_writes_failing_mid_run_stop_all_motion_and_a_restart_recovers(tmp_path: Path) -> None:
    """The journal's file stops taking writes mid-run (as on a full disk or a file system gone read-only).

    A read-only folder would not do it: SQLite writes through the files it holds open, and the suite runs
    as root, which no permission stops. So the child is given a file-size limit (``RLIMIT_FSIZE``, set with
    ``prlimit`` while it runs): its next append to the journal's WAL fails at the OS level (EFBIG; Python
    ignores SIGXFSZ), as root or not. Then: no new motion, the robot disarmed, a clear error, exit 1; and a
    restart without the limit finds the journal intact and rolls the cut-off run back.
    """
    root = make_project(tmp_path)
    proc = subprocess.Popen([*bbflow(), "run", str(root), "--events", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        assert proc.stdin is not None
        for job in range(1, 7):
            proc.stdin.write(json.dumps({"type": "job.requested", "data": {"job": job}}) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(world(root)) < 2:  # the arm is moving
            time.sleep(0.01)
        assert len(world(root)) >= 2
        wal = journal_file(root).with_name("journal.db-wal")
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (wal.stat().st_size, resource.RLIM_INFINITY))
        moved = len(world(root))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert "stopped: journal" in err and "write failed" in err
    # at most the one command already sent when the limit came (the arm moves one command at a time)
    assert len(world(root)) <= moved + 1
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "robot.safety" and events[-1]["to"] == "disarmed"
    assert any(e["event"] == "run.failed" for e in events)
    check_journal(root)  # the file is intact
    with sqlite3.connect(journal_file(root)) as conn:  # the cut-off run is left for recovery
        assert conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0] >= 1

    recovered = restart(root, 1)
    assert any(e["event"] == "recover.run" and e["action"] == "rolled back" for e in recovered)
    check_world(root)  # home, the gripper open
    check_journal(root)


def test_a_second_bbflow_run_of_the_same_robots_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """Two processes on one journal with the same robot would both drive the arm (and the second would take
    the first's runs for a crash's): the second stops before anything moves, exit 2, saying which process."""
    root = make_project(tmp_path)
    events = root / "events-first.jsonl"
    first = subprocess.Popen([*bbflow(), "run", str(root), "--events", str(events)], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None and not (
                events.exists() and events.stat().st_size > 0):  # started: its journal is open
            time.sleep(0.01)
        assert first.poll() is None
        second = subprocess.run([*bbflow(), "run", str(root), "--until-idle"], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60, env=env())
        assert second.returncode == 2, second.stderr
        assert f"robot arm already run by another bbflow run of this project (process {first.pid}" in second.stderr
        assert first.poll() is None  # the first goes on
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 130, err  # stopped as asked
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    restart(root, 1)  # and once it is gone, the project runs again
