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
from run_helpers import PICK, PLACE, PATIENCE, read_events, wait_while_running, write_project

CE = {"content-type": "application/cloudevents+json"}
JOURNAL = ".bbflow/journal.db"


def arm(duration: str = "20ms") -> str:
    """One simulated arm that records every command it completes in world.jsonl."""
    return f"""
[robot.arm]
interface = "cell.Arm"
driver = "sim"

[robot.arm.sim]
duration = "{duration}"
record = "world.jsonl"

[[robot.arm.sim.events]]
after = "close_gripper"
event = "force"
data = {{newtons = 12.0}}
"""


def project(folder: Path, *, sync: str = "full", recovery: str = "rollback", duration: str = "20ms") -> Path:
    return write_project(folder, arm(duration),
                         tail=f'\n[journal]\npath = "{JOURNAL}"\nsync = "{sync}"\nrecovery = "{recovery}"\n')


@contextlib.contextmanager
def served(root: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``bbflow run ROOT --serve 127.0.0.1:0 ARGS``: the process and its control plane's URL; killed on leaving."""
    log = root / f"stderr-{os.urandom(3).hex()}.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bbflow", "run", str(root), "--serve", "127.0.0.1:0", *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        url: list[str] = []

        def listening() -> bool:
            url.extend(line.removeprefix("control plane: ").rstrip("/") for line in log.read_text().splitlines()
                       if line.startswith("control plane: "))
            return bool(url)

        wait_while_running(proc, listening, "control plane")
        yield proc, url[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(PATIENCE)


def request(i: int) -> dict[str, object]:
    return {"type": "pick.requested", "id": f"order-{i}", "source": "/mes", "data": {"pick": PICK, "place": PLACE}}


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_a_signal_answered_202_survives_a_kill_right_after_and_is_handled_once(tmp_path: Path, sync: str) -> None:
    """A 202 is a promise to the sender, who will not send again. It came before the signal was committed (a
    commit waits up to a few ms), and a ``kill -9`` right after it lost the signal five times in six. Here the
    journal's file is held locked by another connection while the POST is made, so the commit cannot happen
    until it is let go: the 202 must wait for it."""
    root = project(tmp_path / "cell", sync=sync)
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
