"""``bbflow runs`` through the command line (click's CliRunner): the list, one run's timeline, recovering a held
run, text and JSON; and the errors (unknown id, no journal, a corrupt one) with exit status 2."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bbflow.cli import main
from bbflow.runtime.journal import Journal, JournalConfig, process_journal

DATA = Path(__file__).resolve().parent / "data" / "crash_cell"
HOME = {"x": 0.0, "y": 0.0, "z": 0.0}
AWAY = {"x": 1.0, "y": 0.0, "z": 0.0}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The crash cell with a journal in it (``.bbflow/journal.db``): one run that ended well, and one a crash
    cut off after ``approach`` completed and while ``grip`` was in doubt (its intent without a result)."""
    monkeypatch.delenv("BBFLOW_JOURNAL_DIR", raising=False)
    root = tmp_path / "crash_cell"
    shutil.copytree(DATA, root, ignore=shutil.ignore_patterns(".bbflow", "world.jsonl"))
    journal = Journal.open(JournalConfig(root / ".bbflow" / "journal.db", keep=None), "crash_cell")
    conn, now = journal.conn, time.time()
    conn.execute("INSERT INTO runs (id, reactor, robot, status, started, ended, inputs, result, undo_errors) "
                 "VALUES ('0001-done', 'Job', 'arm', 'ok', ?, ?, '{\"job\":1}', '1', '[]')", (now - 60, now - 59))
    conn.execute("INSERT INTO runs (id, reactor, robot, status, started, inputs) "
                 "VALUES ('0002-cut', 'Job', 'arm', 'running', ?, '{\"job\":2}')", (now - 10,))
    calls: list[tuple[Any, ...]] = [
        ("0001-done", "approach", "move_to", {"target": AWAY, "job": 1}, None, "ok", AWAY),
        ("0002-cut", "approach", "move_to", {"target": AWAY, "job": 2},
         {"command": "move_to", "args": {"target": HOME, "job": 2, "back": True}}, "ok", AWAY),
        ("0002-cut", "grip", "close_gripper", {"job": 2},
         {"command": "open_gripper", "args": {"job": 2, "back": True}}, None, None),
    ]
    for seq, (run, step, target, args, undo, outcome, result) in enumerate(calls, 1):
        conn.execute("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, args, undo, sent, outcome, "
                     "result) VALUES (?, ?, 'step', ?, '[]', 1, ?, ?, ?, ?, ?, ?)",
                     (seq, run, step, target, json.dumps(args), json.dumps(undo) if undo else None, now, outcome,
                      json.dumps(result) if result is not None else None))
    journal.close()
    return root


def runs(*argv: str) -> Result:
    return CliRunner().invoke(main, ["runs", *argv])


def test_the_list_shows_each_run_with_its_in_doubt_steps(project: Path) -> None:
    out = runs(str(project))
    assert out.exit_code == 0, out.output
    assert out.stdout.index("0002-cut") < out.stdout.index("0001-done")  # newest first
    assert "running (1 in doubt)" in out.stdout
    for column in ("reactor", "robot", "status", "started", "duration", "steps", "undo errors"):
        assert column in out.stdout


def test_the_list_as_json(project: Path) -> None:
    out = runs(str(project), "--format", "json")
    assert out.exit_code == 0, out.output
    listed = {r["id"]: r for r in json.loads(out.stdout)}
    assert listed.keys() == {"0001-done", "0002-cut"}
    assert (listed["0002-cut"]["status"], listed["0002-cut"]["in_doubt"], listed["0002-cut"]["robot"]) == \
        ("running", 1, "arm")
    assert (listed["0001-done"]["status"], listed["0001-done"]["in_doubt"]) == ("ok", 0)


def test_show_marks_the_in_doubt_step(project: Path) -> None:
    out = runs("show", "0002", str(project))  # the start of an id will do
    assert out.exit_code == 0, out.output
    assert "run 0002-cut: Job on arm, running" in out.stdout
    grip = next(line for line in out.stdout.splitlines() if "grip" in line)
    assert "in doubt" in grip and "may have moved" in grip
    data = json.loads(runs("show", "0002-cut", str(project), "--format", "json").stdout)
    assert [(c["step"], c["outcome"]) for c in data["timeline"]] == [("approach", "ok"), ("grip", "in doubt")]
    assert data["timeline"][0]["result"] == AWAY


def test_recover_rolls_a_run_back_on_the_simulated_robot(project: Path) -> None:
    out = runs("recover", "0002", str(project))
    assert out.exit_code == 0, out.output
    assert "rolled back" in out.stdout
    world = [json.loads(line) for line in (project / "world.jsonl").read_text().splitlines()]
    # newest intent first: the in-doubt grip, then approach; nothing ran forward
    assert [(w["command"], w["args"]["back"]) for w in world] == [("open_gripper", True), ("move_to", True)]
    listed = {r["id"]: r for r in json.loads(runs(str(project), "--format", "json").stdout)}
    assert listed["0002-cut"]["status"] == "failed"
    again = runs("recover", "0002", str(project))
    assert again.exit_code == 2 and "nothing to recover" in again.stderr


def test_recover_resolved_closes_the_run_without_moving(project: Path) -> None:
    out = runs("recover", "0002-cut", str(project), "--resolved")
    assert out.exit_code == 0, out.output
    assert "resolved by an operator" in out.stdout
    assert not (project / "world.jsonl").exists()


def test_an_unknown_id_is_an_error(project: Path) -> None:
    for action in ("show", "recover"):
        out = runs(action, "nope", str(project))
        assert out.exit_code == 2 and "no single run with an id starting with 'nope'" in out.stderr
    ambiguous = runs("show", "000", str(project))  # both ids start so
    assert ambiguous.exit_code == 2 and "no single run" in ambiguous.stderr
    missing = runs("show")
    assert missing.exit_code == 2 and "needs a run ID" in missing.stderr


def test_a_project_without_a_journal(project: Path) -> None:
    shutil.rmtree(project / ".bbflow")
    for argv in ([str(project)], ["show", "0002", str(project)]):
        out = runs(*argv)
        assert out.exit_code == 2 and "no journal here" in out.stderr, out.output
    assert not (project / ".bbflow").exists()  # looking does not create one


def test_a_corrupt_journal_is_refused_with_a_clear_message(project: Path) -> None:
    db = project / ".bbflow" / "journal.db"
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page's b-tree: garbage
    db.write_bytes(bytes(data))
    for argv in ([str(project)], ["show", "0002", str(project)], ["recover", "0002", str(project)]):
        out = runs(*argv)
        assert out.exit_code == 2, out.output
        assert "corrupt" in out.stderr and "move it aside" in out.stderr
        assert "Traceback" not in out.output


def test_another_files_journal_is_refused(project: Path) -> None:
    db = project / ".bbflow" / "journal.db"
    db.unlink()
    db.write_bytes(b"this is not a database at all" * 200)
    out = runs(str(project))
    assert out.exit_code == 2 and "not a journal, or corrupt" in out.stderr


def test_a_run_a_live_process_is_running_is_not_cut_off_and_cannot_be_recovered(project: Path) -> None:
    """``bbflow runs`` marks a running run whose process is gone as cut off; one whose process lives is
    neither marked nor recovered (nor closed as resolved) by an operator."""
    assert "running (1 in doubt), cut off" in runs(str(project)).stdout
    live = Journal.open(JournalConfig(project / ".bbflow" / "journal.db", keep=None), "crash_cell")
    try:
        live.conn.execute("UPDATE runs SET owner = ? WHERE id = '0002-cut'", (live.owner.token,))
        listed = {r["id"]: r for r in json.loads(runs(str(project), "--format", "json").stdout)}
        assert (listed["0002-cut"]["status"], listed["0002-cut"]["cut_off"]) == ("running", False)
        for extra in ((), ("--resolved",)):
            out = runs("recover", "0002", str(project), *extra)
            assert out.exit_code == 2 and f"is running in process {os.getpid()}" in out.stderr, out.output
    finally:
        live.close()
    listed = {r["id"]: r for r in json.loads(runs(str(project), "--format", "json").stdout)}
    assert listed["0002-cut"]["cut_off"] is True


def test_recovering_a_run_on_a_robot_a_bbflow_run_drives_is_refused(project: Path) -> None:
    """Rolling back a held run moves its robot: not while another process drives it (and no process starts
    on it while the operator's recovery runs: both see each other in the project's owners folder)."""
    config = process_journal(JournalConfig(project / ".bbflow" / "journal.db", keep=None), ["arm"])
    driving = Journal.open(config, "crash_cell", robots=["arm"])  # as `bbflow run --robot arm` keeps it
    try:
        out = runs("recover", "0002", str(project))
        assert out.exit_code == 2 and "robot arm already run by another bbflow run of this project" in out.stderr
    finally:
        driving.close()
    assert not (project / "world.jsonl").exists()  # nothing moved


def test_a_bbflow_run_without_a_journal_is_refused_a_robot_another_process_runs(project: Path) -> None:
    """``--no-journal`` keeps no record, but its robots are held all the same: two processes never drive one
    arm, journal or not."""
    driving = Journal.open(JournalConfig(project / ".bbflow" / "journal.db", keep=None), "crash_cell",
                           robots=["arm"])
    try:
        out = CliRunner().invoke(main, ["run", str(project), "--no-journal", "--until-idle"], input="")
        assert out.exit_code == 2 and "robot arm already run by another bbflow run of this project" in out.stderr
    finally:
        driving.close()
    out = CliRunner().invoke(main, ["run", str(project), "--no-journal", "--until-idle"], input="")
    assert out.exit_code == 2 and out.stderr.startswith(  # nor from where a crash left it
        "error: robot arm has a run cut off by a crash in ") and "(Job 0002-cut), which this bbflow run does not " \
        "recover: start `bbflow run` (without `--robot`) once to roll it back first" in out.stderr, out.output
    assert runs("recover", "0002", str(project)).exit_code == 0
    out = CliRunner().invoke(main, ["run", str(project), "--no-journal", "--until-idle"], input="")
    assert out.exit_code == 0, out.output
    assert [p.name for p in (project / ".bbflow" / "journal.db.owners").iterdir() if p.name != ".lock"] == []


def test_a_run_cut_off_in_a_robot_process_journal_stops_a_bbflow_run_of_that_robot(project: Path) -> None:
    """A ``--robot arm`` process keeps a journal of its own, which only it recovers: a ``bbflow run`` of all
    the robots would otherwise drive the arm from where that process's crash left it."""
    assert runs("recover", "0002", str(project), "--resolved").exit_code == 0  # the project's journal is clean
    arm = process_journal(JournalConfig(project / ".bbflow" / "journal.db", keep=None), ["arm"])
    journal = Journal.open(arm, "crash_cell", robots=["arm"])
    journal.conn.execute("INSERT INTO runs (id, reactor, robot, status, started, owner) VALUES "
                         "('0003-cut', 'Job', 'arm', 'running', ?, ?)", (time.time(), journal.owner.token))
    journal.close()  # its process is gone
    out = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")
    assert out.exit_code == 2 and "journal.arm.db (Job 0003-cut)" in out.stderr and \
        "start `bbflow run --robot arm` once to roll it back first" in out.stderr, out.output
    out = CliRunner().invoke(main, ["run", str(project), "--robot", "arm", "--until-idle"], input="")
    assert out.exit_code == 0, out.output  # its own process recovers it
    out = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")
    assert out.exit_code == 0, out.output
