"""``bbflow runs`` through the command line (click's CliRunner): the list, one run's timeline, recovering a held
run, text and JSON; and the errors (unknown id, no journal, a corrupt one) with exit status 2."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from crash_drill import bbflow, check_world, env, interrupt, make_project, world

from bbflow.cli import main
from bbflow.project import load_project
from bbflow.runtime.journal import Journal, JournalConfig, journal_config, owners, process_journal
from bbflow.runtime.journal.operator import print_runs
from bbflow.runtime.journal.store import MARK_CALLS_FROM, MIGRATIONS

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
    journal = Journal.open(cell_journal(root), "crash_cell")
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
    conn.execute(MARK_CALLS_FROM)  # where each run's calls begin, as bbflow run records it
    journal.close()
    return root


def cell_journal(root: Path) -> JournalConfig:
    """The crash cell's journal in the project, as ``bbflow run`` keeps it (and sees the others in the project's
    owners folder), kept whatever its age."""
    return JournalConfig(root / ".bbflow" / "journal.db", keep=None, root=root)


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
    # the step that was in doubt: undone, not still to be undone ("recovery undoes it", long after it did)
    shown = runs("show", "0002", str(project)).stdout.splitlines()
    assert "may have moved: undone by recovery (seq 4)" in next(line for line in shown if "close_gripper" in line)
    again = runs("recover", "0002", str(project))
    assert again.exit_code == 2 and "nothing to recover" in again.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_recover_interrupted_says_so_and_the_next_one_goes_on_from_there(project: Path, sig: signal.Signals) -> None:
    """Ctrl-C (or SIGTERM or SIGHUP, which used to kill the process at once, its robot armed) while an undo moves: exit 130
    and a word of what is left, not click's bare "Aborted!"; meanwhile `bbflow runs` shows the held run being
    recovered, and a second recover or a `bbflow run` is told what holds the robot."""
    toml = project / "bbflow.toml"
    quick = toml.read_text()
    toml.write_text(quick.replace('duration = "30ms"', 'duration = "20s"'))
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.execute("UPDATE runs SET status = 'held' WHERE id = '0002-cut'")
        conn.commit()
    events = project / "recover.jsonl"
    proc = subprocess.Popen([*bbflow(), "runs", "recover", "0002", str(project), "--events", str(events)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        deadline = time.monotonic() + 30
        while "undo.start" not in (events.read_text() if events.exists() else ""):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        listed = {r["id"]: r for r in json.loads(runs(str(project), "--format", "json").stdout)}
        assert (listed["0002-cut"]["status"], listed["0002-cut"]["recovering"]) == ("held", True)
        assert "held (1 in doubt), being recovered" in runs(str(project)).stdout
        again = runs("recover", "0002", str(project))
        assert again.exit_code == 2 and "is being recovered by process" in again.stderr, again.output
        start = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")
        assert start.exit_code == 2 and "robot arm already run by another bbflow runs recover of this project" \
            in start.stderr and "wait for it to end" in start.stderr, start.output
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "interrupted: run 0002 is left unfinished" in err, (out, err)
    toml.write_text(quick)
    done = runs("recover", "0002", str(project))
    assert done.exit_code == 0 and "rolled back" in done.stdout, done.output
    check_world(project)


def test_a_recover_whose_events_or_robot_cannot_be_opened_says_so_and_leaves_the_run(project: Path) -> None:
    """``--events`` to a file that cannot be made, a driver that does not exist: a usage error naming it (they
    were tracebacks), before anything moved or was claimed; the next recover rolls the run back."""
    events = project / "no" / "such" / "x.jsonl"
    for argv, expected in ((["--events", str(events)], f"--events {events}: cannot write: No such file"),
                           (["--driver", "nosuch"], "robot arm: cannot open it: no driver named 'nosuch'")):
        out = runs("recover", "0002", str(project), *argv)
        assert out.exit_code == 2 and expected in out.stderr and "Traceback" not in out.output, out.output
    assert "nothing moved, run 0002-cut is left as it was" in out.stderr
    assert not (project / "world.jsonl").exists()
    listed = {r["id"]: r for r in json.loads(runs(str(project), "--format", "json").stdout)}
    assert (listed["0002-cut"]["status"], listed["0002-cut"]["cut_off"]) == ("running", True)
    assert runs("recover", "0002", str(project)).exit_code == 0


def test_a_recover_whose_event_log_fails_says_so_once_and_goes_on(project: Path) -> None:
    """``--events /dev/full``: every write fails. The event log's end was not said at all (``bbflow run`` says
    it); the recovery went on silently without it. It is said once, and the run is still rolled back."""
    out = runs("recover", "0002", str(project), "--events", "/dev/full")
    assert out.exit_code == 0, out.output
    assert out.stderr == "warning: --events /dev/full: cannot write (No space left on device): the event log stops " \
                         "here, the recovery goes on\n"
    assert [w["command"] for w in world(project)] == ["open_gripper", "move_to"]


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


def test_an_empty_or_odd_id_names_no_run(project: Path) -> None:
    """An empty ID (``bbflow runs recover "$ID" --resolved`` with ``$ID`` unset) is a usage error, not the start
    of every id: with one unfinished run it closed that run. An id past 50,000 characters is no run (it was a
    traceback: SQLite refuses so long a LIKE pattern), nor are ``%`` and ``_`` (no pattern at all)."""
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.execute("DELETE FROM runs WHERE id = '0001-done'")  # the cut-off run alone: "" started its id only
        conn.commit()
    for argv in (["recover", "", str(project), "--resolved"], ["show", " ", str(project)]):
        out = runs(*argv)
        assert out.exit_code == 2 and "needs a run ID (got an empty one)" in out.stderr, out.output
    for odd in ("0" * 60_000, "%", "_", "0002-cut%", "0002_cut"):
        out = runs("show", odd, str(project))
        assert out.exit_code == 2 and "no single run with an id starting with" in out.stderr, out.output
        assert "Traceback" not in out.output
    (left,) = json.loads(runs(str(project), "--format", "json").stdout)
    assert (left["id"], left["status"]) == ("0002-cut", "running")


def test_show_says_an_undo_in_doubt_is_run_again(project: Path) -> None:
    """An undo cut off by a crash (its intent without a result) is not undone by recovery: it is run again."""
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.execute("INSERT INTO calls (run, kind, step, idx, attempt, target, args, sent) VALUES "
                     "('0002-cut', 'undo', 'grip', '[]', 1, 'open_gripper', '{\"job\":2,\"back\":true}', 0)")
        conn.commit()
    lines = runs("show", "0002", str(project)).stdout.splitlines()
    assert "may have moved: recovery undoes it" in next(line for line in lines if "close_gripper" in line)
    assert "may have moved: recovery runs it again" in next(line for line in lines if "open_gripper" in line)


def test_show_says_a_step_in_doubt_of_a_run_closed_by_hand_was_not_undone(project: Path) -> None:
    assert runs("recover", "0002", str(project), "--resolved").exit_code == 0
    shown = runs("show", "0002", str(project)).stdout.splitlines()
    assert "may have moved: the run ended failed without undoing it" in next(line for line in shown if "grip" in line)


def test_a_project_without_a_journal(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No journal where this shell looks: the message says where else a process of the cell may keep it (an
    operator whose shell lacks the ``$BBFLOW_JOURNAL_DIR`` the cell runs with, or has one it does not)."""
    shutil.rmtree(project / ".bbflow")
    for argv in ([str(project)], ["show", "0002", str(project)]):
        out = runs(*argv)
        assert out.exit_code == 2 and "no journal here (nothing has run with a journal in this project; a bbflow " \
            "run started with $BBFLOW_JOURNAL_DIR keeps it in that folder: set it here too)" in out.stderr, out.output
    assert not (project / ".bbflow").exists()  # looking does not create one
    monkeypatch.setenv("BBFLOW_JOURNAL_DIR", str(tmp_path / "journals"))
    out = runs(str(project))
    assert out.exit_code == 2 and "it is looked for in $BBFLOW_JOURNAL_DIR (set here): a bbflow run started " \
        "without it keeps it in the project's .bbflow folder)" in out.stderr, out.output


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


def test_reading_writes_nothing_and_an_empty_journal_has_no_runs(project: Path) -> None:
    """An empty file where a journal is expected (a ``--robot`` process's, the project's own): the list, show
    and a JSON list read it as a journal without runs, and leave it as it was (they used to make a journal of
    it: a read-only look wrote the schema into the file)."""
    folder = project / ".bbflow"
    (folder / "journal.x.db").write_bytes(b"")
    before = (folder / "journal.db").read_bytes()
    for argv in ([str(project)], [str(project), "--format", "json"], ["show", "0002", str(project)]):
        out = runs(*argv)
        assert out.exit_code == 0, out.output
    assert {r["id"] for r in json.loads(runs(str(project), "--format", "json").stdout)} == {"0001-done", "0002-cut"}
    assert (folder / "journal.x.db").read_bytes() == b"" and (folder / "journal.db").read_bytes() == before
    (folder / "journal.db").write_bytes(b"")
    out = runs(str(project), "--format", "json")
    assert out.exit_code == 0 and json.loads(out.stdout) == [], out.output
    out = runs("show", "0002", str(project))
    assert out.exit_code == 2 and "no single run with an id starting with '0002'" in out.stderr, out.output
    assert (folder / "journal.db").read_bytes() == b"" and (folder / "journal.x.db").read_bytes() == b""


def test_reading_leaves_no_wal_or_shm_file_beside_a_journal(project: Path) -> None:
    """SQLite makes a journal's ``-wal`` and ``-shm`` files for any reader; a read-only connection never
    removes them, so every ``bbflow runs`` of a stopped cell left two files beside each journal it read."""
    folder = project / ".bbflow"
    (folder / "journal.x.db").write_bytes(b"")
    assert sorted(p.name for p in folder.glob("journal*")) == ["journal.db", "journal.x.db"]
    for argv in ([str(project)], [str(project), "--format", "json"], ["show", "0002", str(project)]):
        out = runs(*argv)
        assert out.exit_code == 0, out.output
    assert sorted(p.name for p in folder.glob("journal*")) == ["journal.db", "journal.x.db"]


def older(project: Path, schema: int) -> Path:
    """The project's journal as a bbflow of ``schema`` 2 or 3 wrote it (its runs and calls kept)."""
    db = project / ".bbflow" / "journal.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP INDEX runs_roots")
        conn.execute("CREATE INDEX runs_parent ON runs (parent)")
        conn.execute("ALTER TABLE runs DROP COLUMN calls_from")
        conn.execute("ALTER TABLE runs DROP COLUMN calls_to")
        conn.execute("ALTER TABLE pending DROP COLUMN envelope")
        if schema < 3:
            conn.execute("ALTER TABLE runs DROP COLUMN owner")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(schema),))
        conn.commit()
    return db


def test_bringing_an_older_journal_up_to_date_is_said_before_it_starts(project: Path) -> None:
    """On a large journal the first ``bbflow run`` after an upgrade migrates it for seconds (9 s for 236 MB), before
    anything is shown: it says what it does, and why, first; once."""
    db = older(project, 3)
    first = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")
    assert first.exit_code == 0, first.output
    (said,) = [line for line in first.stderr.splitlines() if "bringing it up to date" in line]
    assert re.fullmatch(f"journal {re.escape(str(db))}: bringing it up to date for this bbflow \\(schema 3 to 6\\), "
                        "once, before any robot is armed; for a journal of [0-9]+ kB this may take a while "
                        "\\(Ctrl-C leaves it as it was\\)", said), said
    assert first.stderr.index(said) == 0  # before anything else
    again = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")
    assert again.exit_code == 0 and "up to date" not in again.stderr, again.output


class _CtrlC:
    """A migration's statements, with Ctrl-C pressed after the first of them (where Python raises it: between two)."""

    def __init__(self, statements: tuple[str, ...]) -> None:
        self.statements = statements

    def __iter__(self) -> Iterator[str]:
        yield self.statements[0]
        raise KeyboardInterrupt


def test_ctrl_c_while_an_older_journal_is_brought_up_to_date_leaves_it_as_it_was(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = older(project, 3)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        kept = conn.execute("SELECT * FROM calls ORDER BY seq").fetchall()
    monkeypatch.setitem(MIGRATIONS, 4, _CtrlC(MIGRATIONS[4]))
    out = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")
    assert out.exit_code == 130, out.output
    assert out.stderr.splitlines()[-1] == "interrupted before anything moved: the journal is as it was"
    assert not world(project)  # nothing moved
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
        assert conn.execute("SELECT * FROM calls ORDER BY seq").fetchall() == kept
        assert "runs_roots" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    monkeypatch.undo()
    out = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")  # migrated, this time
    assert out.exit_code == 0, out.output


def test_an_older_schema_is_read_as_it_is_and_migrated_only_by_a_recover(project: Path) -> None:
    """A journal written by an older bbflow (schema 2: no process recorded with each run) is listed and shown
    without being migrated (the file is left byte for byte); ``recover`` writes, so it migrates it first."""
    db = older(project, 2)
    before = db.read_bytes()
    listed = {r["id"]: r for r in json.loads(runs(str(project), "--format", "json").stdout)}
    assert listed["0002-cut"]["status"] == "running" and listed["0002-cut"]["cut_off"]
    out = runs("show", "0002", str(project))
    assert out.exit_code == 0 and "in doubt" in out.stdout, out.output
    assert db.read_bytes() == before
    out = runs("recover", "0002", str(project))
    assert out.exit_code == 0 and "run 0002-cut: rolled back" in out.stdout, out.output
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("6",)
        assert conn.execute("SELECT calls_from FROM runs WHERE id = '0002-cut'").fetchone() == (2,)
        # rolled back, the run ended: its calls (its steps' and its undos') end there
        assert conn.execute("SELECT calls_to = (SELECT max(seq) FROM calls) FROM runs WHERE id = '0002-cut'"
                            ).fetchone() == (1,)


def test_a_journal_this_user_cannot_read_for_its_folder_is_not_called_corrupt(project: Path) -> None:
    """An operator looking as another user than the cell's, the cell stopped: SQLite cannot make the journal's
    ``-shm`` file in a folder this user cannot write. The journal is sound: the message says why it cannot be
    read and what to do, not "corrupt, move it aside" (as it did), which would lose its unfinished runs."""
    folder = project / ".bbflow"
    assert not (folder / "journal.db-shm").exists()
    argv = as_another_user([*bbflow(), "runs", str(project)])
    folder.chmod(0o555)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env())
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2 and f"{folder / 'journal.db'}: cannot read the journal: " in done.stderr and \
        "run this as the user the cell runs as, or while it runs" in done.stderr, done.stderr
    assert "move it aside" not in done.stderr and "Traceback" not in done.stderr


def as_another_user(argv: list[str]) -> list[str]:
    """``argv`` run so that the permissions of files and folders hold for it: as root, without root's capability
    to write and read any of them (as another user has none)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to take root's capability to write any folder away")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search",
            *argv]


@pytest.mark.parametrize("journal", ["kept", "none yet"])
def test_a_journal_in_a_folder_this_user_cannot_write_says_so(project: Path, journal: str) -> None:
    """``bbflow run`` with the journal's folder read-only for its user said only "unable to open database file"
    (or, with a journal in it, "attempt to write a readonly database"): SQLite gives no reason. It says which
    folder, the system's reason, and what to do; exit status 2, nothing moved."""
    folder = project / ".bbflow"
    if journal == "none yet":
        for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
            (folder / name).unlink(missing_ok=True)
    argv = as_another_user([*bbflow(), "run", "--until-idle", str(project)])
    folder.chmod(0o555)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env(), stdin=subprocess.DEVNULL)
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert f"error: {folder / 'journal.db'}: cannot open the journal: its folder {folder} cannot be written " \
           "(Permission denied): SQLite makes the journal's journal.db-wal and journal.db-shm files beside it" \
        in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and world(project) == []


@pytest.mark.parametrize("under", ["afile", "afile/sub"])
def test_a_journal_path_under_a_file_says_which_file(project: Path, under: str) -> None:
    """``[journal] path = "afile/journal.db"`` where ``afile`` is a file said "cannot create the journal's folder:
    File exists", naming neither."""
    (project / "afile").write_text("not a folder")
    with open(project / "bbflow.toml", "a", encoding="utf-8") as toml:
        toml.write(f'\n[journal]\npath = "{under}/journal.db"\n')
    done = subprocess.run([*bbflow(), "run", "--until-idle", str(project)], capture_output=True, text=True,
                          timeout=120, env=env(), stdin=subprocess.DEVNULL)
    why = "a file, not a folder, is there" if under == "afile" else "Not a directory"
    assert done.returncode == 2 and f"error: {project / under / 'journal.db'}: cannot create the journal's folder " \
        f"{project / under}: {why}" in done.stderr, done.stderr


def test_a_journal_path_naming_a_folder_says_so(project: Path) -> None:
    (project / "journals").mkdir()
    with open(project / "bbflow.toml", "a", encoding="utf-8") as toml:
        toml.write('\n[journal]\npath = "journals"\n')
    done = subprocess.run([*bbflow(), "run", "--until-idle", str(project)], capture_output=True, text=True,
                          timeout=120, env=env(), stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and f"error: {project / 'journals'}: cannot open the journal: " \
        f"{project / 'journals'} cannot be written (Is a directory)" in done.stderr, done.stderr


def bytes_read() -> int:
    """What this process has read from files so far (``rchar``: through the page cache or not)."""
    io_stats = Path("/proc/self/io").read_text().splitlines()
    return int(next(line for line in io_stats if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts the bytes read (Linux's /proc/self/io)")
def test_the_list_reads_what_it_shows_however_long_the_journal(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``bbflow runs`` took 10 s on a journal of 200,000 runs: it read all of it (every page checked for damage,
    every run sorted, every call scanned to count the steps of those listed). The newest runs cost the same
    to list in a journal ten times as long; so does the timeline of one of them (an older one's reads the calls
    journaled since it began)."""
    monkeypatch.delenv("BBFLOW_JOURNAL_DIR", raising=False)
    read: dict[int, tuple[int, int]] = {}
    for runs_in in (1_000, 10_000):
        root = make_project(tmp_path / str(runs_in))
        journal = Journal.open(cell_journal(root), "crash_cell")
        journal.conn.execute("BEGIN")
        journal.conn.executemany("INSERT INTO runs (id, reactor, robot, status, started, ended, undo_errors) VALUES "
                                 "(?, 'Job', 'arm', 'ok', ?, ?, '[]')", [(f"{k:06d}", k, k + 1) for k in range(runs_in)])
        journal.conn.executemany("INSERT INTO calls (run, kind, step, idx, attempt, target, args, sent, outcome) "
                                 "VALUES (?, 'step', ?, '[]', 1, 'move_to', '{\"job\": 1}', ?, 'ok')",
                                 [(f"{k:06d}", f"s{i}", k) for k in range(runs_in) for i in range(5)])
        journal.conn.execute(MARK_CALLS_FROM)
        journal.conn.execute("COMMIT")
        journal.close()
        project = load_project(root)
        out = io.StringIO()
        print_runs(project, out, fmt="json", color=False, limit=20)  # (what the first call imports, aside)
        listing = bytes_read()
        print_runs(project, out, fmt="json", color=False, limit=20)
        listing = bytes_read() - listing
        timeline = bytes_read()
        runs("show", f"{runs_in - 10:06d}", str(root))
        read[runs_in] = (listing, bytes_read() - timeline)
    listed = json.loads(out.getvalue().split("\n]\n")[-2] + "\n]")
    assert [(run["id"], run["steps"]) for run in listed][:2] == [("009999", 5), ("009998", 5)]
    assert read[10_000][0] < 2 * read[1_000][0], read
    assert read[10_000][1] < 2 * read[1_000][1], read


def test_a_journal_damaged_where_the_list_reads_is_called_corrupt(project: Path) -> None:
    """The list no longer checks every page of the journal: damage in what it reads says so all the same (exit
    status 2, the file named), never a traceback."""
    db = project / ".bbflow" / "journal.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        root_page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs_roots'").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    data[(root_page - 1) * page_size:root_page * page_size] = b"\xff" * page_size
    db.write_bytes(bytes(data))
    out = runs(str(project))
    assert out.exit_code == 2 and f"{db}: the journal is corrupt: " in out.stderr and "move it aside" in out.stderr, \
        out.output
    assert "Traceback" not in out.output


def test_the_list_is_bounded_and_says_when_there_are_more(project: Path) -> None:
    out = runs(str(project), "--limit", "1")
    assert out.exit_code == 0 and "0002-cut" in out.stdout and "0001-done" not in out.stdout, out.output
    assert "1 runs are listed, and there are more: --before 0002-cut lists the next 1, --limit N lists N (0: all)" \
        in out.stderr
    for limit in ("2", "0", str(1 << 63), "1" + "0" * 30):  # (more than SQLite can count: all)
        out = runs(str(project), "--limit", limit, "--format", "json")
        assert [run["id"] for run in json.loads(out.stdout)] == ["0002-cut", "0001-done"] and not out.stderr


def test_the_list_pages_with_before_every_run_once_in_order(project: Path) -> None:
    """``--before ID``: the next page after run ID, for a script walking the history while the cell adds runs
    (which an offset would shift); runs that started at the same moment are told apart by id."""
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.executemany("INSERT INTO runs (id, reactor, robot, status, started, ended) VALUES (?, 'Job', 'arm', "
                         "'ok', 5.0, 6.0)", [("0003-same",), ("0004-same",), ("0005-same",)])
        conn.commit()
    arm_journal(project, "0006-arm")  # a run in another journal of the project: merged
    pages: list[list[str]] = []
    before: list[str] = []
    while len(pages) < 10:
        out = runs(str(project), "--limit", "2", "--format", "json", *before)
        assert out.exit_code == 0, out.output
        pages.append([run["id"] for run in json.loads(out.stdout)])
        if not out.stderr:
            break
        before = ["--before", pages[-1][-1]]
        assert f"--before {pages[-1][-1]} lists the next 2" in out.stderr
    assert pages == [["0006-arm", "0002-cut"], ["0001-done", "0005-same"], ["0004-same", "0003-same"]]
    assert runs(str(project), "--before", "0003").stdout.count("-same") == 0


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
    live = Journal.open(cell_journal(project), "crash_cell")
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


def test_a_held_run_a_live_process_is_recovering_is_neither_recovered_again_nor_closed_as_resolved(
        project: Path) -> None:
    """A held run is no process's (recovery clears its owner when it holds it): one with a live owner is being
    rolled back by a ``bbflow runs recover`` right now, and closing it as resolved meanwhile would say nothing
    moved while its arm moves."""
    live = Journal.open(cell_journal(project), "crash_cell")
    try:
        live.conn.execute("UPDATE runs SET status = 'held', owner = ? WHERE id = '0002-cut'", (live.owner.token,))
        for extra in ((), ("--resolved",)):
            out = runs("recover", "0002", str(project), *extra)
            assert out.exit_code == 2 and f"is being recovered by process {os.getpid()}" in out.stderr, out.output
    finally:
        live.close()
    assert runs("recover", "0002", str(project), "--resolved").exit_code == 0  # its process gone: the operator's


def test_a_run_cut_off_on_a_robot_since_renamed_is_held_by_the_next_bbflow_run(project: Path) -> None:
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.execute("UPDATE runs SET robot = 'old_arm' WHERE id = '0002-cut'")
        conn.commit()
    out = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")
    assert out.exit_code == 0 and "1 unfinished run(s) held for an operator" in out.stderr, out.output
    assert not (project / "world.jsonl").exists()  # nothing moved
    shown = runs("show", "0002", str(project))
    assert "held" in shown.stdout and "old_arm is no longer in bbflow.toml" in shown.stdout, shown.output
    assert runs("recover", "0002", str(project), "--resolved").exit_code == 0


def test_a_composed_run_is_recovered_through_the_run_that_composed_it(project: Path) -> None:
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.execute("INSERT INTO runs (id, parent, reactor, robot, status, started) VALUES "
                     "('0003-child', '0002-cut', 'Grip', 'arm', 'running', 0), "
                     "('0004-grandchild', '0003-child', 'Close', 'arm', 'running', 0)")
        conn.commit()
    for extra in ((), ("--resolved",)):
        out = runs("recover", "0003", str(project), *extra)
        assert out.exit_code == 2 and "run 0003-child is composed by run 0002-cut: recover that one" in out.stderr
    out = runs("recover", "0004", str(project))  # the run that composed it all
    assert out.exit_code == 2 and "run 0004-grandchild is composed by run 0002-cut" in out.stderr, out.output
    assert runs("recover", "0002", str(project)).exit_code == 0


@pytest.mark.parametrize("extra", [(), ("--resolved",)])
def test_recovering_a_run_ends_every_run_it_composed(project: Path, extra: tuple[str, ...]) -> None:
    """Rolled back or closed as resolved, a run ends with the runs it composed, however deep (``--resolved``
    left a grandchild running, shown so by ``show``)."""
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.execute("INSERT INTO runs (id, parent, reactor, robot, status, started) VALUES "
                     "('0003-child', '0002-cut', 'Grip', 'arm', 'running', 0), "
                     "('0004-grandchild', '0003-child', 'Close', 'arm', 'running', 0)")
        conn.commit()
    assert runs("recover", "0002", str(project), *extra).exit_code == 0
    for run in ("0002-cut", "0003-child", "0004-grandchild"):
        assert json.loads(runs("show", run, str(project), "--format", "json").stdout)["status"] == "failed", run


def test_a_run_taken_over_between_the_look_and_the_claim_is_said_so(project: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``--resolved`` (or another recover) may close the run after ``recover`` looked at it and before it
    claims it: then nothing moves, and the operator is told, not left with an exit 0 and no word."""
    claim = Journal.claim

    async def closed_first(self: Journal, todo: Any) -> set[str]:
        with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
            conn.execute("UPDATE runs SET status = 'failed', note = 'resolved by an operator' WHERE id = '0002-cut'")
            conn.commit()
        return await claim(self, todo)

    monkeypatch.setattr(Journal, "claim", closed_first)
    out = runs("recover", "0002", str(project))
    assert out.exit_code == 2 and "run 0002-cut was taken over meanwhile" in out.stderr, out.output
    assert not (project / "world.jsonl").exists()


def test_recovering_a_run_on_a_robot_a_bbflow_run_drives_is_refused(project: Path) -> None:
    """Rolling back a held run moves its robot: not while another process drives it (and no process starts
    on it while the operator's recovery runs: both see each other in the project's owners folder)."""
    config = process_journal(cell_journal(project), ["arm"])
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
    driving = Journal.open(cell_journal(project), "crash_cell", robots=["arm"])
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
    assert not owners.folder_of(project).exists()  # the last process of the project removed it


@pytest.mark.slow
def test_processes_of_a_project_see_each_other_wherever_their_journals_are(tmp_path: Path) -> None:
    """A real ``bbflow run`` keeping its journal in ``$BBFLOW_JOURNAL_DIR`` drives the arm; a second one of the
    same project, keeping its journal in the project, none (``--no-journal``), or in another folder, is refused
    the arm before anything moves. (Each used to hold its robots in an owners folder beside its own journal:
    neither saw the other, and both drove the arm.)"""
    root = make_project(tmp_path)
    events = tmp_path / "first.jsonl"
    first = subprocess.Popen([*bbflow(), "run", str(root), "--events", str(events)], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                             env=env() | {"BBFLOW_JOURNAL_DIR": str(tmp_path / "journals")})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None and not (events.exists() and events.stat().st_size):
            time.sleep(0.01)  # until it has started (its first event): its robots are held before that
        assert first.poll() is None
        for extra, where in (((), {}), (("--no-journal",), {}), ((), {"BBFLOW_JOURNAL_DIR": str(tmp_path / "x")})):
            second = subprocess.run([*bbflow(), "run", str(root), "--until-idle", *extra], stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True, timeout=120, env=env() | where)
            assert second.returncode == 2 and "robot arm already run by another bbflow run of this project " \
                f"(process {first.pid}, " in second.stderr, (extra, where, second.stderr)
    finally:
        interrupt(first)
    after = subprocess.run([*bbflow(), "run", str(root), "--until-idle"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120, env=env())
    assert after.returncode == 0, after.stderr  # the first is gone: the arm is free
    assert not owners.folder_of(root).exists()  # the last process of the project removed its owners folder


def test_two_checkouts_sharing_a_journal_see_each_others_processes(tmp_path: Path) -> None:
    """Two checkouts of the project whose bbflow.toml sets one ``[journal] path`` (a shared absolute file) are
    one project to the journal, and so to its owners: a run that a process of one checkout is running is not
    cut off to the other, which neither recovers it (rolling back a live run under its process), nor drives
    its arm meanwhile. (The owners folder was named for the checkout alone.)"""
    roots = []
    for name in ("a", "b"):
        root = make_project(tmp_path / name)
        with open(root / "bbflow.toml", "a", encoding="utf-8") as toml:
            toml.write(f'\n[journal]\npath = "{tmp_path / "shared.db"}"\n')
        roots.append(root)
    config = journal_config(roots[0], {"path": str(tmp_path / "shared.db"), "keep": "30d"})
    live = Journal.open(config, "crash_cell", robots=["arm"])  # a `bbflow run` of checkout a, running a job
    try:
        live.conn.execute("INSERT INTO runs (id, reactor, robot, status, started, owner) VALUES "
                          "('0005-live', 'Job', 'arm', 'running', ?, ?)", (time.time(), live.owner.token))
        (listed,) = json.loads(runs(str(roots[1]), "--format", "json").stdout)
        assert (listed["id"], listed["cut_off"]) == ("0005-live", False)
        for argv, expected in ((["run", str(roots[1]), "--until-idle"], "robot arm already run by another bbflow "
                                "run of this project"), (["runs", "recover", "0005", str(roots[1])],
                                                         f"run 0005-live is running in process {os.getpid()}")):
            out = CliRunner().invoke(main, argv, input="")
            assert out.exit_code == 2 and expected in out.stderr, out.output
    finally:
        live.close()
    assert not (roots[1] / "world.jsonl").exists()  # nothing moved


@pytest.mark.parametrize("bad", ["corrupt", "damaged where the look does not read", "foreign"])
def test_a_robot_process_journal_that_cannot_be_read_stops_a_bbflow_run_of_that_robot(project: Path,
                                                                                       bad: str) -> None:
    """``journal.arm.db`` may hold a run cut off on the arm: unreadable (or another project's), a ``bbflow run``
    that would drive the arm stops before anything moves, as ``bbflow runs`` does, naming the file (it was
    left out, and the arm driven from wherever that process's crash left it). A journal of a process of other
    robots only is none of its business."""
    assert runs("recover", "0002", str(project), "--resolved").exit_code == 0  # the project's journal is clean
    arm = project / ".bbflow" / "journal.arm.db"
    if bad == "corrupt":
        arm.write_bytes(b"this is not a database at all" * 200)
    elif bad == "damaged where the look does not read":  # (the calls: the look reads the runs)
        shutil.copyfile(project / ".bbflow" / "journal.db", arm)
        with contextlib.closing(sqlite3.connect(arm)) as conn:
            conn.executemany("INSERT INTO calls (run, kind, step, idx, attempt, target, sent) VALUES "
                             "('0001-done', 'step', 's', '[]', 1, 'move_to', 0)", [()] * 200)
            conn.commit()
            page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'calls'").fetchone()[0]
            size = conn.execute("PRAGMA page_size").fetchone()[0]
        data = bytearray(arm.read_bytes())
        data[(page - 1) * size:page * size] = b"\xff" * size
        arm.write_bytes(bytes(data))
    else:
        Journal.open(JournalConfig(arm), "another_cell").close()
    for extra in ((), ("--no-journal",)):
        out = CliRunner().invoke(main, ["run", str(project), "--until-idle", *extra], input="")
        assert out.exit_code == 2 and f"error: {arm}: " in out.stderr and "it may hold a run cut off on robot arm, " \
            "which this bbflow run would drive" in out.stderr, out.output
    assert not (project / "world.jsonl").exists()  # nothing moved
    arm.rename(project / ".bbflow" / "journal.conveyor.db")  # another robot's process's: not read
    out = CliRunner().invoke(main, ["run", str(project), "--until-idle"], input="")
    assert out.exit_code == 0, out.output


def test_a_run_cut_off_in_a_robot_process_journal_stops_a_bbflow_run_of_that_robot(project: Path) -> None:
    """A ``--robot arm`` process keeps a journal of its own, which only it recovers: a ``bbflow run`` of all
    the robots would otherwise drive the arm from where that process's crash left it."""
    assert runs("recover", "0002", str(project), "--resolved").exit_code == 0  # the project's journal is clean
    arm = process_journal(cell_journal(project), ["arm"])
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


def arm_journal(project: Path, *runs: str) -> None:
    """``journal.arm.db`` beside the project's, as ``bbflow run --robot arm`` keeps it, with ``runs`` (ids) cut
    off after ``approach`` completed (their process gone)."""
    journal = Journal.open(process_journal(cell_journal(project), ["arm"]),
                           "crash_cell", robots=["arm"])
    for run in runs:
        journal.conn.execute("INSERT INTO runs (id, reactor, robot, status, started, inputs) "
                             "VALUES (?, 'Job', 'arm', 'running', ?, '{\"job\":3}')", (run, time.time()))
        journal.conn.execute(
            "INSERT INTO calls (run, kind, step, idx, attempt, target, args, undo, sent, outcome, result) "
            "VALUES (?, 'step', 'approach', '[]', 1, 'move_to', ?, ?, ?, 'ok', ?)",
            (run, json.dumps({"target": AWAY, "job": 3}),
             json.dumps({"command": "move_to", "args": {"target": HOME, "job": 3, "back": True}}), time.time(),
             json.dumps(AWAY)))
    journal.conn.execute(MARK_CALLS_FROM)
    journal.close()


def test_the_list_has_the_runs_of_every_journal_of_the_project_newest_first(project: Path) -> None:
    out = runs(str(project))
    assert out.exit_code == 0 and "journal" not in out.stdout.splitlines()[1]  # the project's only: no column
    arm_journal(project, "0003-arm")
    out = runs(str(project))
    assert out.exit_code == 0, out.output
    assert out.stdout.index("0003-arm") < out.stdout.index("0002-cut") < out.stdout.index("0001-done")
    assert "journal.arm.db" in next(line for line in out.stdout.splitlines() if "0003-arm" in line)
    assert "journal.db" in next(line for line in out.stdout.splitlines() if "0002-cut" in line)
    listed = json.loads(runs(str(project), "--format", "json").stdout)
    assert [(r["id"], Path(r["journal"]).name, r["cut_off"]) for r in listed] == [
        ("0003-arm", "journal.arm.db", True), ("0002-cut", "journal.db", True), ("0001-done", "journal.db", False)]
    for limit, ids in ((1, ["0003-arm"]), (2, ["0003-arm", "0002-cut"])):
        text = io.StringIO()
        print_runs(load_project(project), text, fmt="json", color=False, limit=limit)  # newest of all journals
        assert [r["id"] for r in json.loads(text.getvalue())] == ids
    shutil.move(project / ".bbflow" / "journal.db", project / "elsewhere.db")  # only a --robot process's journal
    listed = json.loads(runs(str(project), "--format", "json").stdout)
    assert [r["id"] for r in listed] == ["0003-arm"]


def test_only_the_journals_of_the_project_are_read(project: Path) -> None:
    """Beside the journals: SQLite's files, the owners folder, a backup, notes. None of them is a journal of a
    ``--robot`` process (named ``journal.ROBOT[+ROBOT...].db``, the robots sorted), none is read."""
    arm_journal(project, "0003-arm")
    folder = project / ".bbflow"
    for name in ("journal.arm.db-wal", "journal.arm.db-shm", "journal.db.bak", "journal..db", "journal.b+a.db",
                 "journal.a+a.db", "notes.txt", "journal.arm.db.old"):
        (folder / name).write_bytes(b"not a journal" * 100)
    (folder / "journal.db.owners" / "x").mkdir(parents=True)
    (folder / "journal.left.db").mkdir()  # a folder, not a file
    out = runs(str(project), "--format", "json")
    assert out.exit_code == 0, out.output
    assert {r["id"] for r in json.loads(out.stdout)} == {"0001-done", "0002-cut", "0003-arm"}


def test_show_and_recover_find_the_run_in_the_journal_that_holds_it(project: Path) -> None:
    arm_journal(project, "0003-arm")
    out = runs("show", "0003", str(project))
    assert out.exit_code == 0, out.output
    assert "run 0003-arm: Job on arm, running" in out.stdout and "journal.arm.db" in out.stdout
    assert Path(json.loads(runs("show", "0003", str(project), "--format", "json").stdout)["journal"]).name == \
        "journal.arm.db"
    out = runs("recover", "0003", str(project))
    assert out.exit_code == 0, out.output
    assert "run 0003-arm: rolled back" in out.stdout
    assert [(w["command"], w["args"]) for w in world(project)] == [("move_to", {"target": HOME, "job": 3, "back": True})]
    listed = {r["id"]: r for r in json.loads(runs(str(project), "--format", "json").stdout)}
    assert listed["0003-arm"]["status"] == "failed" and listed["0002-cut"]["status"] == "running"  # that one only


def test_a_prefix_that_starts_runs_in_two_journals_is_ambiguous(project: Path) -> None:
    arm_journal(project, "0002-arm")
    for action in ("show", "recover"):
        out = runs(action, "0002", str(project))
        assert out.exit_code == 2, out.output
        assert "no single run with an id starting with '0002' (it starts 0002-cut in journal.db, 0002-arm in " \
            "journal.arm.db): give more of the id" in out.stderr
    assert not (project / "world.jsonl").exists()  # nothing moved
    assert runs("show", "0002-a", str(project)).exit_code == 0


@pytest.mark.parametrize("bad", ["corrupt", "foreign"])
def test_a_bad_process_journal_is_refused_naming_it(project: Path, bad: str) -> None:
    """A ``--robot`` process's journal that is corrupt or another project's is refused as the project's own is
    (exit 2, the file named): a run it may hold is neither listed nor taken for another's with a like id."""
    arm = project / ".bbflow" / "journal.arm.db"
    if bad == "corrupt":
        arm.write_bytes(b"this is not a database at all" * 200)
        expected = f"{arm}: not a journal, or corrupt"
    else:
        Journal.open(JournalConfig(arm), "another_cell").close()
        expected = f"{arm}: the journal belongs to project 'another_cell', not 'crash_cell'"
    for argv in ([str(project)], ["show", "0002", str(project)], ["recover", "0002", str(project)]):
        out = runs(*argv)
        assert out.exit_code == 2, out.output
        assert expected in out.stderr and "Traceback" not in out.output
    assert not (project / "world.jsonl").exists()



@pytest.mark.slow
def test_a_robot_process_killed_mid_run_its_run_held_then_listed_shown_and_recovered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fleet's way: ``bbflow run --robot arm`` (a real process, journal.arm.db), killed with SIGKILL while a
    job moves the arm; restarted with ``recovery = "hold"``, it leaves the run held. ``bbflow runs`` lists it
    from the process's journal, shows it, and rolls it back on the arm; after that a ``bbflow run`` of all
    the robots finds nothing cut off."""
    monkeypatch.delenv("BBFLOW_JOURNAL_DIR", raising=False)  # the journal in the project, as the process keeps it
    root = make_project(tmp_path)
    toml = root / "bbflow.toml"  # commands slow enough that the kill comes mid-job, however loaded the machine
    toml.write_text(toml.read_text().replace('duration = "30ms"', 'duration = "300ms"')
                    + '\n[journal]\nrecovery = "hold"\n')
    proc = subprocess.Popen([*bbflow(), "run", str(root), "--robot", "arm"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env())
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"type": "job.requested", "data": {"job": 7}}) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not world(root):  # approach is done
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert [w["command"] for w in world(root)] in (["move_to"], ["move_to", "close_gripper"])
    (cut,) = json.loads(runs(str(root), "--format", "json").stdout)
    assert (Path(cut["journal"]).name, cut["status"], cut["cut_off"]) == ("journal.arm.db", "running", True)

    restarted = subprocess.run([*bbflow(), "run", str(root), "--robot", "arm", "--until-idle"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env=env())
    assert restarted.returncode == 0 and "1 unfinished run(s) held for an operator" in restarted.stderr, \
        restarted.stderr
    out = runs(str(root))
    assert out.exit_code == 0, out.output
    line = next(line for line in out.stdout.splitlines() if cut["id"] in line)
    assert "held" in line and "journal.arm.db" in line
    out = runs("show", cut["id"][:-4], str(root))
    assert out.exit_code == 0 and f"run {cut['id']}: Job on arm, held" in out.stdout, out.output
    moved = len(world(root))
    out = runs("recover", cut["id"], str(root))
    assert out.exit_code == 0 and f"run {cut['id']}: rolled back" in out.stdout, out.output
    assert all(w["args"]["back"] for w in world(root)[moved:]) and len(world(root)) > moved
    check_world(root)  # home, the gripper open
    (done,) = json.loads(runs(str(root), "--format", "json").stdout)
    assert done["status"] == "failed"
    out = CliRunner().invoke(main, ["run", str(root), "--until-idle"], input="")  # nothing cut off anywhere
    assert out.exit_code == 0, out.output


def test_a_robot_process_journal_run_is_not_recovered_while_that_process_runs(project: Path) -> None:
    """The checks of ``recover`` hold in a ``--robot`` process's journal as in the project's: not a run its live
    process is running (nor ``--resolved``), nor any run on a robot a live process drives."""
    arm_journal(project, "0003-arm")
    config = process_journal(cell_journal(project), ["arm"])
    live = Journal.open(config, "crash_cell", robots=["arm"])  # `bbflow run --robot arm`, running
    try:
        out = runs("recover", "0003", str(project))
        assert out.exit_code == 2 and "robot arm already run by another bbflow run of this project" in out.stderr
        live.conn.execute("UPDATE runs SET owner = ? WHERE id = '0003-arm'", (live.owner.token,))
        assert json.loads(runs(str(project), "--format", "json").stdout)[0]["cut_off"] is False
        for extra in ((), ("--resolved",)):
            out = runs("recover", "0003", str(project), *extra)
            assert out.exit_code == 2 and f"is running in process {os.getpid()}" in out.stderr, out.output
    finally:
        live.close()
    assert not (project / "world.jsonl").exists()  # nothing moved
    out = runs("recover", "0003", str(project), "--resolved")  # its process gone: the operator closes it
    assert out.exit_code == 0 and "run 0003-arm: closed, resolved by an operator" in out.stdout, out.output


def test_show_prints_brackets_in_a_drivers_error_and_arguments_as_they_are(project: Path) -> None:
    """A driver's error message or an argument may hold square brackets (``[/gripper]``, ``[bold]``): the timeline
    shows them as they are, never as the table's markup (a closing tag without its opening one crashed ``show``)."""
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.execute("INSERT INTO calls (run, kind, step, idx, attempt, target, args, sent, outcome, error) VALUES "
                     "('0001-done', 'step', 'grip', '[]', 1, 'close_gripper', '{\"tag\":\"[bold]x\"}', 0, "
                     "'failed', '{\"message\":\"jammed at [/gripper]\",\"code\":\"command\"}')")
        conn.commit()
    out = runs("show", "0001", str(project))
    assert out.exit_code == 0, out.output
    grip = next(line for line in out.stdout.splitlines() if "close_gripper" in line)
    assert '"jammed at [/gripper]"' in grip and '{"tag": "[bold]x"}' in grip


@pytest.mark.parametrize("color", [True, False])
def test_on_a_narrow_terminal_the_list_keeps_every_run_id_whole(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                                color: bool) -> None:
    """80 columns: the table is printed whole (the terminal wraps its lines), never shrunk to fit: ids cut to
    ``0123-4567-…`` all looked alike and named no run for `show` or `recover`. With or without colour."""
    monkeypatch.setenv("COLUMNS", "80")
    ids = [f"01a2505f-e354-7312-9cd6-0e87fec10b{n:02}" for n in range(2)]
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.executemany("INSERT INTO runs (id, reactor, robot, status, started, ended, inputs, result, undo_errors) "
                         "VALUES (?, 'PickAndPlace', 'arm', 'ok', ?, ?, '{}', '1', '[]')",
                         [(run, time.time() - 5, time.time() - 4) for run in ids])
        conn.commit()
    out = io.StringIO()
    print_runs(load_project(project), out, fmt="text", color=color)
    shown = out.getvalue()
    for run in ids:
        assert run in shown
    assert "PickAndPlace" in shown and "running (1 in doubt)" in shown


def test_a_run_cut_off_in_its_first_step_has_completed_no_steps_not_none(project: Path) -> None:
    """Its only call in doubt: the list says 0 steps completed (it said `None`, and `null` in JSON)."""
    with contextlib.closing(sqlite3.connect(project / ".bbflow" / "journal.db")) as conn:
        conn.execute("DELETE FROM calls WHERE run = '0002-cut' AND step = 'approach'")
        conn.commit()
    listed = {r["id"]: r for r in json.loads(runs(str(project), "--format", "json").stdout)}
    assert (listed["0002-cut"]["steps"], listed["0002-cut"]["in_doubt"]) == (0, 1)
    row = next(line for line in runs(str(project)).stdout.splitlines() if "0002-cut" in line)
    assert "None" not in row


def test_json_carries_a_folder_the_locale_cannot_name_by_its_real_name(project: Path, tmp_path: Path) -> None:
    """Under ``LC_ALL=C`` without UTF-8 mode Python holds ``cellé`` as ``cell\\udcc3\\udca9``: the JSON of
    ``runs`` and ``runs show`` carried those escapes ("\\udcc3"), not the name; they read the path's bytes as
    UTF-8, as the name is written."""
    moved = project.rename(tmp_path / "cellé")
    locale_c = {**env(), "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    expected = str(moved / ".bbflow" / "journal.db")
    for argv in (["runs", str(moved), "--format", "json"], ["runs", "show", "0002", str(moved), "--format", "json"]):
        done = subprocess.run([*bbflow(), *argv], env=locale_c, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert b"\\udc" not in done.stdout
        out = json.loads(done.stdout)
        journals = [run["journal"] for run in out] if isinstance(out, list) else [out["journal"]]
        assert set(journals) == {expected}
    # and on a terminal, as the locale writes it (the same bytes): "é" could not be written in ASCII, and was
    # an error ("'ascii' codec can't encode character")
    for argv in (["runs", str(moved)], ["runs", "show", "0002", str(moved)]):
        done = subprocess.run([*bbflow(), *argv], env=locale_c, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert os.fsencode(expected) in done.stdout
