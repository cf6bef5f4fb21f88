"""The crash drill: ``bbflow run`` on the simulated robot, killed with SIGKILL at random moments, restarted.

Each trial starts ``bbflow run`` (agents) on a copy of ``tests/data/crash_cell``,
whose simulated arm records every completed command (sim ``record``), feeds it
job requests, and kills it at a random moment: while it recovers the previous
trial's runs, while jobs move, between them. Every few trials a recovery run
(``--until-idle``, no new input) restarts it and the world is checked; so is it
at the end. What must hold (``check``):

- the recorded world is back where it began: the arm home, the gripper open;
- no step ran twice: each job's forward command (``back: false``) at most once;
- no accepted signal was lost or handled twice: every job the journal accepted
  has exactly one run, none is left pending, and no job has two outcomes;
- the journal opens cleanly (``PRAGMA quick_check``) after every kill.

Run it as a soak: ``python tests/crash_drill.py --trials 300 [--seed N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "crash_cell"
HOME = {"x": 0.0, "y": 0.0, "z": 0.0}


def bbflow() -> list[str]:
    return [sys.executable, "-m", "bbflow"]


def make_project(folder: Path, sync: str | None = None) -> Path:
    """A copy of the crash cell; ``sync``: its journal's ``[journal] sync`` (default: full)."""
    root = folder / "crash_cell"
    shutil.copytree(DATA, root, ignore=shutil.ignore_patterns(".bbflow", "world.jsonl"))
    if sync is not None:
        with open(root / "bbflow.toml", "a", encoding="utf-8") as toml:
            toml.write(f'\n[journal]\nsync = "{sync}"\n')
    return root


def world(root: Path) -> list[dict[str, Any]]:
    file = root / "world.jsonl"
    return [json.loads(line) for line in file.read_text().splitlines()] if file.exists() else []


def journal_file(root: Path) -> Path:
    return root / ".bbflow" / "journal.db"


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.pop("BBFLOW_JOURNAL_DIR", None)  # the journal in the project: the drill reads it
    return out


def interrupt(proc: subprocess.Popen[str], patience: float = 60.0) -> None:
    """Stop ``proc`` as Ctrl-C does (its runs roll back, its robots disarm), killed if it will not."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=patience)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def trial(root: Path, number: int, jobs: list[int], rng: random.Random, window: float) -> None:
    """One run of the agents, fed ``jobs``, killed at a random moment."""
    events = root / f"events-{number}.jsonl"
    proc = subprocess.Popen([*bbflow(), "run", str(root), "--events", str(events)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env())
    try:
        assert proc.stdin is not None
        for job in jobs:
            proc.stdin.write(json.dumps({"type": "job.requested", "data": {"job": job}}) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:  # until it has started (its first event)
            if events.exists() and events.stat().st_size > 0:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, window))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    check_journal(root)


def restart(root: Path, number: int) -> list[dict[str, Any]]:
    """A restart without new input: recovery, pending signals handled, then exit when idle."""
    events = root / f"events-restart-{number}.jsonl"
    done = subprocess.run([*bbflow(), "run", str(root), "--until-idle", "--events", str(events)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in events.read_text().splitlines()]


def check_journal(root: Path) -> None:
    if journal_file(root).exists():
        with sqlite3.connect(journal_file(root)) as conn:
            assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def check_world(root: Path) -> None:
    pose, grip = HOME, "open"
    for line in world(root):
        if line["command"] == "move_to":
            pose = line["result"]
        else:
            grip = line["result"]
    assert (pose, grip) == (HOME, "open"), f"the world is not back where it began: {pose} {grip}"


def check(root: Path, sent: list[int]) -> dict[str, int]:
    """Every promise of the drill (see the module docstring); returns a few counts for the report."""
    check_world(root)
    forward: dict[tuple[Any, ...], int] = {}
    for line in world(root):
        if not line["args"]["back"]:
            key = (line["args"]["job"], line["command"], json.dumps(line["args"].get("target")))
            forward[key] = forward.get(key, 0) + 1
    twice = {k: n for k, n in forward.items() if n > 1}
    assert not twice, f"steps ran twice: {twice}"
    with sqlite3.connect(journal_file(root)) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        accepted = sorted(json.loads(env)["data"]["job"] for (env,) in conn.execute(
            "SELECT envelope FROM signals WHERE envelope LIKE '%job.requested%'"))
        pending = conn.execute("SELECT count(*) FROM pending").fetchone()[0]
        runs = [(json.loads(inputs)["job"], status) for inputs, status in
                conn.execute("SELECT inputs, status FROM runs WHERE parent IS NULL")]
        unfinished = conn.execute("SELECT count(*) FROM runs WHERE status IN ('running', 'held')").fetchone()[0]
    assert pending == 0, f"{pending} accepted signals were never handled"
    assert unfinished == 0
    assert len(set(accepted)) == len(accepted), "a signal was accepted twice"
    run_jobs = sorted(job for job, _ in runs)
    assert run_jobs == accepted, f"accepted jobs {accepted} but runs for {run_jobs}"
    assert set(accepted) <= set(sent)
    return {"accepted": len(accepted), "ok": sum(s == "ok" for _, s in runs),
            "rolled back": sum(s == "failed" for _, s in runs), "commands": len(world(root))}


def drill(folder: Path, trials: int, seed: int, *, every: int = 10, window: float = 0.8,
          sync: str | None = None) -> dict[str, int]:
    """Run the drill in ``folder``; raises AssertionError on a broken promise."""
    root = make_project(folder, sync)
    rng = random.Random(seed)
    sent: list[int] = []
    for number in range(1, trials + 1):
        jobs = [len(sent) + k for k in (1, 2)]
        sent += jobs
        trial(root, number, jobs, rng, window)
        if number % every == 0:
            restart(root, number)
            check(root, sent)
    restart(root, trials + 1)
    return check(root, sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--sync", choices=("full", "normal"), default=None, help="[journal] sync of the cell")
    args = parser.parse_args()
    folder = args.folder or Path(os.environ.get("TMPDIR", "/tmp")) / f"bbflow-crash-drill-{args.seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"seed {args.seed}, {args.trials} trials in {folder}")
    print(drill(folder, args.trials, args.seed, sync=args.sync))


if __name__ == "__main__":
    main()
