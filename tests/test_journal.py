"""The journal: its file and checks, the writer (group commit, failure), what a run records, recovery, retention."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable, Collection
from types import SimpleNamespace
from typing import Any

import pytest

from bbflow.build import compile_project
from bbflow.project import load_project
from bbflow.runtime import model
from bbflow.runtime.drivers import open_robot
from bbflow.runtime.events import Recorder, fanout
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.journal import (
    SCHEMA_VERSION,
    Journal,
    JournalConfig,
    JournalError,
    JournalFailed,
    journal_config,
)
from bbflow.runtime.journal import journal as journal_module
from bbflow.runtime.journal import owners
from bbflow.runtime.journal import store as store_module
from bbflow.runtime.journal import writer as writer_module
from bbflow.runtime.journal.agents import AgentJournal, envelope_json
from bbflow.runtime.journal.journal import RETAIN_SIGNALS_EVERY, journal_files, parse_keep, process_robots
from bbflow.runtime.journal.query import CALLS_OF, list_runs, show_run
from bbflow.runtime.journal.recovery import Recovery, effects
from bbflow.runtime.journal.store import APPLICATION_ID, MARK_CALLS_FROM, MIGRATIONS, PAGE_SIZE
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.signals import Envelope

DATA = Path(__file__).resolve().parent / "data" / "crash_cell"


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, model.Program]:
    root = tmp_path_factory.mktemp("cell") / "crash_cell"
    shutil.copytree(DATA, root, ignore=shutil.ignore_patterns(".bbflow", "world.jsonl"))
    diagnostics, program = compile_project(root)
    assert program is not None, diagnostics
    return root, program


def journal_at(path: Path, project: str = "crash_cell", *, robots: list[str] | None = None,
               agents: list[str] | None = None, **kw: Any) -> Journal:
    return Journal.open(JournalConfig(path, **kw), project, robots=robots or (), agents=agents or ())


def world(root: Path) -> list[dict[str, Any]]:
    file = root / "world.jsonl"
    return [json.loads(line) for line in file.read_text().splitlines()] if file.exists() else []


def arm(root: Path, program: model.Program) -> RobotProxy:
    project = load_project(root)
    config = project.robots["arm"]
    table = {"interface": config.interface, "sim": {**config.sim, "duration": "1ms"},
             "project_root": str(root)}
    return open_robot("arm", program.robots[config.interface], table)


# --- the file -------------------------------------------------------------------------------


def test_a_new_journal_is_created_with_its_schema(tmp_path: Path) -> None:
    journal = journal_at(tmp_path / "sub" / "journal.db")
    try:
        meta = dict(journal.read.execute("SELECT key, value FROM meta"))
        assert meta["schema"] == str(SCHEMA_VERSION) and meta["project"] == "crash_cell"
        assert journal.read.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert journal.read.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 1024
    finally:
        journal.close()


def test_another_projects_journal_is_refused(tmp_path: Path) -> None:
    journal_at(tmp_path / "j.db", "one").close()
    with pytest.raises(JournalError, match="belongs to project 'one', not 'two'"):
        journal_at(tmp_path / "j.db", "two")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    journal_at(tmp_path / "j.db").close()
    with sqlite3.connect(tmp_path / "j.db") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(JournalError, match=f"schema {SCHEMA_VERSION + 1}, written by a newer bbflow"):
        journal_at(tmp_path / "j.db")


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "j.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(JournalError, match="not a bbflow journal"):
        journal_at(tmp_path / "j.db")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "j.db").write_bytes(b"not sqlite at all " * 500)
    with pytest.raises(JournalError, match="not a database|corrupt"):
        journal_at(tmp_path / "j.db")


def test_a_corrupt_journal_is_refused(tmp_path: Path) -> None:
    journal = journal_at(tmp_path / "j.db")
    journal.close()
    with sqlite3.connect(tmp_path / "j.db") as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        for i in range(300):
            conn.execute("INSERT INTO signals VALUES (?, ?, 0)", (f"s{i}", "x" * 200))
    data = bytearray((tmp_path / "j.db").read_bytes())
    page = 4096
    data[3 * page: 3 * page + 200] = b"\xff" * 200  # scribble over a b-tree page
    (tmp_path / "j.db").write_bytes(bytes(data))
    with pytest.raises(JournalError):
        journal_at(tmp_path / "j.db")


def test_journal_settings_are_read_and_checked(tmp_path: Path) -> None:
    config = journal_config(tmp_path, {"path": "j/x.db", "sync": "normal", "recovery": "hold", "keep": "2d"})
    assert config.path == (tmp_path / "j/x.db").resolve() and config.sync == "normal"
    assert config.recovery == "hold" and config.keep == 2 * 86400
    assert parse_keep("12h") == 12 * 3600
    for table, message in (({"sync": "off"}, "journal.sync"), ({"recovery": "later"}, "journal.recovery"),
                           ({"keep": "soon"}, "journal.keep"), ({"path": ""}, "journal.path")):
        with pytest.raises(ValueError, match=message):
            journal_config(tmp_path, table)


# --- the writer --------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_concurrent_intents_share_commits(tmp_path: Path, sync: str) -> None:
    async def main() -> tuple[int, int]:
        journal = journal_at(tmp_path / "j.db", sync=sync)
        journal.start(asyncio.get_running_loop())
        await journal.writer.flush()
        before = journal.writer.commits
        await asyncio.gather(*(journal.intent("r", "step", f"s{i}", (), 1, "move_to", {}) for i in range(100)))
        commits = journal.writer.commits - before
        count = journal.read.execute("SELECT count(*) FROM calls").fetchone()[0]
        journal.close()
        return commits, count

    commits, count = asyncio.run(main())
    assert count == 100
    # group commit: with full, the hundred intents of one turn of the loop are one commit (one fsync); with
    # normal, the first is committed at once and the other 99 together
    assert commits == (1 if sync == "full" else 2)


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_flushes_asked_together_do_not_fail_the_journal(tmp_path: Path, sync: str) -> None:
    """Each POST /signals waits for a flush before its 202. Flushes asked in one turn of the loop (concurrent
    POSTs) went in one batch as the same statement, which the writer ran as one executemany: SQLite refuses
    that for a SELECT, the journal failed ("executemany() can only execute DML statements") and the cell
    stopped, answering every POST 503."""
    async def main() -> None:
        journal = journal_at(tmp_path / "j.db", sync=sync)
        journal.start(asyncio.get_running_loop())
        await asyncio.gather(*(journal.flush() for _ in range(3)))
        await asyncio.gather(journal.intent("r", "step", "s", (), 1, "move_to", {}), journal.flush(), journal.flush())
        assert journal.writer.failure is None
        journal.close()

    asyncio.run(main())


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_results_ride_with_the_next_intent(tmp_path: Path, sync: str) -> None:
    """A chain: each step's result is committed with the next step's intent, not in a commit of its own."""
    async def main() -> int:
        journal = journal_at(tmp_path / "j.db", sync=sync)
        journal.start(asyncio.get_running_loop())
        await journal.writer.flush()
        before = journal.writer.commits
        for i in range(20):
            seq = await journal.intent("r", "step", f"s{i}", (), 1, "move_to", {"x": i})
            journal.returned(seq, True, i, None)
        await journal.writer.flush()
        commits = journal.writer.commits - before
        rows = journal.read.execute("SELECT count(*) FROM calls WHERE outcome = 'ok'").fetchone()[0]
        journal.close()
        assert rows == 20
        return commits

    assert asyncio.run(main()) == 21  # twenty intents, and the flush that took the last result


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_processes_sharing_a_journal_never_take_each_others_sequence_numbers(tmp_path: Path, sync: str) -> None:
    """The processes of a fleet share the project's journal: each one's intents get numbers of their own, and
    each result lands on its own call (two counters started from the same file once collided and failed the
    second process's journal: nothing more moved there)."""
    async def main() -> list[tuple[Any, ...]]:
        left, right = journal_at(tmp_path / "j.db", sync=sync), journal_at(tmp_path / "j.db", sync=sync)
        for journal in (left, right):
            journal.start(asyncio.get_running_loop())
        for i in range(5):
            for name, journal in (("left", left), ("right", right)):
                seq = await journal.intent(name, "step", f"s{i}", (), 1, "move_to", {"x": i})
                journal.returned(seq, True, f"{name}{i}", None)
        for journal in (left, right):
            await journal.writer.flush()
        assert left.failure is None and right.failure is None
        rows = left.read.execute("SELECT seq, run, step, result FROM calls ORDER BY seq").fetchall()
        left.close()
        right.close()
        return rows

    rows = asyncio.run(main())
    assert len({seq for seq, *_ in rows}) == len(rows) == 10
    assert [(run, step, json.loads(result)) for _, run, step, result in rows] == [
        (name, f"s{i}", f"{name}{i}") for i in range(5) for name in ("left", "right")]


def test_a_result_alone_is_committed_at_the_latest_after_a_while(tmp_path: Path) -> None:
    """A step's result waits for the next intent (one commit per step), but not for ever: ``LAZY_AFTER``
    seconds at the latest; any other write (a run's end, an agent's turn) goes within ``FLUSH_AFTER``."""
    from bbflow.runtime.clock import run_virtual
    from bbflow.runtime.journal.writer import FLUSH_AFTER, LAZY_AFTER

    async def main() -> None:
        journal = journal_at(tmp_path / "j.db", sync="normal")
        journal.start(asyncio.get_running_loop())
        seq = await journal.intent("r", "step", "a", (), 1, "move_to", {})
        journal.returned(seq, True, 1, None)
        await asyncio.sleep(LAZY_AFTER * 0.9)
        assert journal.lag().pending == 1  # still waiting for a commit to ride with
        await asyncio.sleep(LAZY_AFTER * 0.2)
        assert journal.lag().pending == 0
        journal.outcome_handled("r")  # not lazy
        await asyncio.sleep(FLUSH_AFTER * 1.5)
        assert journal.lag().pending == 0
        assert journal.read.execute("SELECT outcome FROM calls").fetchall() == [("ok",)]
        journal.close()

    run_virtual(main())


def test_a_locked_file_never_stalls_the_loop(tmp_path: Path) -> None:
    """With sync = normal commits are made on the loop, but one that would wait for a lock (another process
    writing) goes to the writer thread: the loop keeps running, the intent waits, the lag shows it."""
    async def main() -> None:
        journal = journal_at(tmp_path / "j.db", sync="normal")
        journal.start(asyncio.get_running_loop())
        await journal.writer.flush()
        assert journal.lag().pending == 0
        other = sqlite3.connect(tmp_path / "j.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        intent = asyncio.ensure_future(journal.intent("r", "step", "a", (), 1, "move_to", {}))
        ticks = 0
        while ticks < 50:
            ticks += 1
            await asyncio.sleep(0.001)
        assert not intent.done()  # the command would still wait: its intent is not committed
        lag = journal.lag()
        assert lag.pending == 1 and lag.oldest > 0
        other.execute("COMMIT")
        other.close()
        await intent
        assert journal.lag().pending == 0
        assert journal.read.execute("SELECT count(*) FROM calls").fetchone()[0] == 1
        journal.close()

    asyncio.run(main())


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_a_failed_write_fails_every_later_intent(tmp_path: Path, sync: str) -> None:
    failures: list[Exception] = []

    async def main() -> None:
        journal = journal_at(tmp_path / "j.db", sync=sync)
        journal.start(asyncio.get_running_loop(), on_failure=failures.append)
        await journal.intent("r", "step", "a", (), 1, "move_to", {})
        journal.conn.set_authorizer(lambda action, *rest: sqlite3.SQLITE_DENY
                                    if action == sqlite3.SQLITE_INSERT else sqlite3.SQLITE_OK)
        with pytest.raises(JournalFailed, match="write failed"):
            await journal.intent("r", "step", "b", (), 1, "move_to", {})
        with pytest.raises(JournalFailed):
            await journal.intent("r", "step", "c", (), 1, "move_to", {})
        await asyncio.sleep(0)
        journal.close()

    asyncio.run(main())
    assert len(failures) == 1 and failures[0].code == "journal"  # type: ignore[attr-defined]


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_half_a_surrogate_pair_is_journaled_as_it_is(tmp_path: Path, sync: str) -> None:
    """A result holding half of a UTF-16 surrogate pair (a driver's string decoded with surrogateescape) is no
    UTF-8, which SQLite needs: it is journaled as its JSON escape and reads back the same (it killed the writer
    thread with ``full``, and the run waited for its commit for ever)."""
    async def main() -> tuple[Any, Any]:
        journal = journal_at(tmp_path / "j.db", sync=sync)
        journal.start(asyncio.get_running_loop())
        seq = await journal.intent("r", "step", "a", (), 1, "read_tag", {"tag": "x\udcff"})
        journal.returned(seq, True, {"\ud800": "y\udfff"}, None)
        await journal.intent("r", "step", "b", (), 1, "move_to", {})
        await journal.writer.flush()
        args, result = journal.read.execute("SELECT args, result FROM calls WHERE seq = ?", (seq,)).fetchone()
        journal.close()
        return json.loads(args), json.loads(result)

    assert asyncio.run(asyncio.wait_for(main(), 30)) == ({"tag": "x\udcff"}, {"\ud800": "y\udfff"})  # not for ever


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_a_value_sqlite_cannot_take_fails_the_journal_and_never_its_thread(tmp_path: Path, sync: str) -> None:
    """Whatever a write raises, the journal fails for good with the reason, and every waiting commit hears it:
    the writer thread never dies under a waiting commit (which then waited for ever), and the loop's
    connection is never left inside a transaction."""
    failures: list[Exception] = []

    async def main() -> None:
        journal = journal_at(tmp_path / "j.db", sync=sync)
        journal.start(asyncio.get_running_loop(), on_failure=failures.append)
        journal.writer.write("INSERT INTO meta VALUES (?, ?)", ("odd", "\ud800"))  # bypasses dumps
        with pytest.raises(JournalFailed, match="UnicodeEncodeError"):
            await asyncio.wait_for(journal.intent("r", "step", "a", (), 1, "move_to", {}), 30)  # not for ever
        with pytest.raises(JournalFailed):
            await journal.intent("r", "step", "b", (), 1, "move_to", {})
        assert not journal.conn.in_transaction
        await asyncio.sleep(0)
        journal.close()

    asyncio.run(main())
    assert len(failures) == 1 and failures[0].code == "journal"  # type: ignore[attr-defined]


def _held_writer(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Hold the writer thread inside a commit (a disk slower than anything); returns what lets it go on.

    With ``sync = "full"`` a write that waits on an event; with ``"normal"`` (commits on the loop) another
    connection holding the file's lock: the commit goes to the thread, which waits for the lock."""
    if not journal.writer.inline:
        release = threading.Event()

        def hold(cursor: sqlite3.Cursor) -> None:
            assert release.wait(30), "the test never released the writer"

        journal.writer.write(hold)
        return release.set
    monkeypatch.setattr(writer_module, "BUSY_TIMEOUT_MS", 30_000)
    other = sqlite3.connect(journal.config.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    journal.writer.write("UPDATE runs SET note = 'held' WHERE id = ''")

    def release_lock() -> None:
        other.execute("COMMIT")
        other.close()

    return release_lock


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_input_waits_while_the_journal_is_behind(tmp_path: Path, sync: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk slower than the input: the records pending never pile up past the bound (plus what the signals
    already in the mailbox write when handled), intake waits for room instead of taking the next signal, and
    once the writer goes on every signal is taken, handled and committed."""
    from bbflow.runtime.agent import AgentServer
    from bbflow.runtime.bus import Bus
    from bbflow.runtime.signals import Envelope, SignalCatalog
    from bbflow.runtime.types import INT

    bound, total = 60, 2_000
    counter = model.Agent(name="Counter", qualname="cell.Counter", robot=None,
                          state=(model.StateField("count", INT, lambda _s: 0),),
                          routes=(model.Route("tick", (model.Set("count", lambda s: s["count"] + 1),), None, None, 0, 0),))

    async def main() -> None:
        journal = journal_at(tmp_path / "j.db", sync=sync)
        journal.writer.max_pending = bound
        journal.start(asyncio.get_running_loop())
        bus = Bus(SignalCatalog.of(model.Signal("tick")))
        server = AgentServer(counter, bus, journal=journal, mailbox_size=8)
        serving = asyncio.ensure_future(server.serve())
        taken = 0
        peak = 0

        async def intake() -> None:  # what `bbflow run` does with each line of standard input
            nonlocal taken, peak
            for _ in range(total):
                await bus.room()
                bus.receive(Envelope(type="tick", source="/stdin"))
                taken += 1
                peak = max(peak, journal.lag().pending)

        await journal.writer.flush()
        release = _held_writer(journal, monkeypatch)
        feeding = asyncio.ensure_future(intake())
        for _ in range(2_000):  # bounded: the loop runs freely while the writer is held
            await asyncio.sleep(0)
        held_at = taken
        assert held_at < bound  # intake stopped: each signal is at least two records (accepted, pending)
        assert journal.lag().pending <= bound + server.mailbox.feed_limit * 3
        assert not feeding.done()
        release()
        await asyncio.wait_for(feeding, 30)
        await bus.wait_idle()
        await journal.writer.flush()
        assert taken == total and server.state["count"] == total
        assert peak <= bound + server.mailbox.feed_limit * 3
        assert journal.lag().pending == 0
        assert journal.read.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        journal.close()

    asyncio.run(main())


def test_a_failed_journal_never_keeps_input_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Intake waiting for room goes on when the journal fails (nothing is written any more; the failure
    stops the run), and ``close`` lets any waiter go."""
    failures: list[Exception] = []

    async def main() -> None:
        journal = journal_at(tmp_path / "j.db")
        journal.writer.max_pending = 3
        journal.start(asyncio.get_running_loop(), on_failure=failures.append)
        release = _held_writer(journal, monkeypatch)
        for i in range(3):
            journal.outcome_handled(f"r{i}")
        room = asyncio.ensure_future(journal.room())
        for _ in range(50):
            await asyncio.sleep(0)
        assert not room.done()
        journal.conn.set_authorizer(lambda action, *rest: sqlite3.SQLITE_DENY
                                    if action == sqlite3.SQLITE_UPDATE else sqlite3.SQLITE_OK)
        release()
        await asyncio.wait_for(room, 30)
        assert isinstance(journal.failure, JournalFailed) and failures
        journal.close()

    asyncio.run(main())


# --- what a run records ------------------------------------------------------------------------


async def journaled_run(root: Path, program: model.Program, journal: Journal, job: int,
                        *, observer: Any = None) -> Any:
    journal.start(asyncio.get_running_loop())
    async with arm(root, program) as robot:
        await robot.call("arm", {})
        return await run_reactor(program, "Job", {"job": job}, robot=robot, journal=journal,
                                 observer=fanout(journal.observe, observer))


def test_a_run_records_every_intent_result_and_undo(cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    root, program = cell
    journal = journal_at(tmp_path / "j.db")
    result = asyncio.run(journaled_run(root, program, journal, 7))
    journal.close()
    assert result.ok
    journal = journal_at(tmp_path / "j.db")
    try:
        (run,) = list_runs(journal.read)
        assert run["status"] == "ok" and run["reactor"] == "Job" and run["robot"] == "arm" and run["steps"] == 5
        # where its calls begin (``bbflow runs`` counts its steps from there, not from the journal's first call)
        assert journal.read.execute("SELECT calls_from = (SELECT min(seq) FROM calls) FROM runs").fetchone() == (1,)
        timeline = show_run(journal.read, run["id"])["timeline"]
        assert [c["step"] for c in timeline] == ["approach", "grip", "carry", "release", "back"]
        assert all(c["outcome"] == "ok" and c["kind"] == "step" for c in timeline)
        assert timeline[2]["undo"] == {"command": "move_to",
                                       "args": {"target": {"x": 1.0, "y": 0.0, "z": 0.0}, "job": 7, "back": True}}
        assert timeline[1]["args"] == {"job": 7, "back": False}
    finally:
        journal.close()


def test_show_of_an_old_run_reads_its_calls_not_every_one_journaled_since(cell: tuple[Path, model.Program],
                                                                          tmp_path: Path) -> None:
    """``runs show`` of a run read every call from where its calls begin to the end of the journal (seconds, for a
    run of last week on a big one), and so did ``runs`` counting the steps of a page of old runs (``--before``): a
    run that ends records where its calls end (``calls_to``), and its calls are read between the two, by the calls'
    primary key; so the work does not grow with the calls made since."""
    root, program = cell
    journal = journal_at(tmp_path / "j.db")
    assert asyncio.run(journaled_run(root, program, journal, 7)).ok
    journal.close()
    journal = journal_at(tmp_path / "j.db")
    read, conn = journal.read, journal.conn
    try:
        (run,) = list_runs(read)
        assert read.execute("SELECT calls_from, calls_to FROM runs").fetchone() == (1, 5)
        plan = " ".join(r[-1] for r in read.execute(
            f"EXPLAIN QUERY PLAN {CALLS_OF} WHERE seq BETWEEN ? AND ? AND run IN (?) ORDER BY seq", (1, 5, "r")))
        assert "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plan
        steps = []
        for later in (100, 5000):  # calls of later runs
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO calls (run, kind, step, idx, attempt, target, sent) "
                             "VALUES ('later', 'step', 's', '[]', 1, 'move_to', 0)", [()] * later)
            conn.execute("COMMIT")
            counted = [0]

            def count() -> int:
                counted[0] += 1
                return 0

            read.set_progress_handler(count, 1)  # every instruction SQLite's machine runs
            assert [c["step"] for c in show_run(read, run["id"])["timeline"]] == \
                ["approach", "grip", "carry", "release", "back"]
            assert list_runs(read)[0]["steps"] == 5  # (so too the count of its steps, in the list)
            read.set_progress_handler(None, 1)
            steps.append(counted[0])
        assert steps[0] == steps[1], steps  # (all the calls since: fifty times the instructions)
    finally:
        journal.close()


def test_a_failed_journal_write_stops_motion(cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    journal = journal_at(tmp_path / "j.db")
    seen = Recorder()

    def deny_after_two(event: dict[str, Any]) -> None:
        if event["event"] == "step.ok" and event["step"] == "grip":
            journal.conn.set_authorizer(lambda action, *rest: sqlite3.SQLITE_DENY
                                        if action == sqlite3.SQLITE_INSERT else sqlite3.SQLITE_OK)

    result = asyncio.run(journaled_run(root, program, journal, 1, observer=fanout(seen, deny_after_two)))
    journal.close()
    assert result.status == "failed" and result.error is not None and result.error.code == "journal"
    # nothing moved on an unrecorded intent: not the next step, and not the undos either
    assert [w["command"] for w in world(root)] == ["move_to", "close_gripper"]
    assert {u.step for u in result.undo_errors} == {"approach", "grip"}


# --- recovery -----------------------------------------------------------------------------------


def crashed(tmp_path: Path, calls: list[tuple[str, str, str, Any, Any, str | None]]) -> Journal:
    """A journal as a crash leaves it: run r1 of Job started, then ``calls`` (step, kind, outcome, undo, hold)."""
    journal = journal_at(tmp_path / "j.db")
    conn = journal.conn
    conn.execute("INSERT INTO runs (id, reactor, robot, agent, status, started) VALUES "
                 "('r1', 'Job', 'arm', NULL, 'running', ?)", (time.time(),))
    for seq, (step, kind, outcome, target, undo, hold) in enumerate(calls, 1):
        conn.execute("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, args, undo, hold, sent, outcome)"
                     " VALUES (?, 'r1', ?, ?, '[]', 1, ?, '{}', ?, ?, ?, ?)",
                     (seq, kind, step, target, json.dumps(undo) if undo else None, hold, time.time(), outcome))
    conn.execute(MARK_CALLS_FROM)  # where each run's calls begin, as bbflow run records it
    journal.close()
    return journal_at(tmp_path / "j.db")


def home(job: int, x: float = 0.0) -> dict[str, Any]:
    return {"command": "move_to", "args": {"target": {"x": x, "y": 0.0, "z": 0.0}, "job": job, "back": True}}


async def recover(root: Path, program: model.Program, journal: Journal, *, hold: bool = False,
                  armed: bool = True) -> tuple[list[Any], Recorder]:
    journal.start(asyncio.get_running_loop())
    seen = Recorder()
    async with arm(root, program) as robot:
        if armed:
            await robot.call("arm", {})
        else:
            asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(robot.call("arm", {})))
        done = await Recovery(journal, program, {"arm": robot}, observer=seen).run(hold=hold)
    return done, seen


def test_recovery_undoes_completed_and_in_doubt_steps_newest_intent_first(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    journal = crashed(tmp_path, [
        ("approach", "step", "ok", "move_to", home(1), None),
        ("grip", "step", "ok", "close_gripper", {"command": "open_gripper", "args": {"job": 1, "back": True}}, None),
        ("grip", "undo", "ok", "open_gripper", None, None),  # undone before the crash: not again
        ("carry", "step", None, "move_to", home(1, 1.0), None),  # in doubt
    ])
    done, seen = asyncio.run(recover(root, program, journal, armed=False))
    assert [(d.action, d.in_doubt) for d in done] == [("rolled back", ("carry",))]
    assert [(w["command"], w["args"]["target"]["x"] if "target" in w["args"] else None) for w in world(root)] == [
        ("move_to", 1.0), ("move_to", 0.0)]
    assert [e["event"] for e in seen.events][:2] == ["recover.start", "undo.start"]
    assert seen.named("recover.run")[0]["in_doubt"] == ["carry"]
    (run,) = list_runs(journal.read)
    assert run["status"] == "failed"
    assert show_run(journal.read, "r1")["error"]["code"] == "recovered"
    assert effects(journal, "r1") == []  # a second recovery would have nothing left to undo
    journal.close()


def test_an_in_doubt_step_whose_undo_needs_its_result_is_held(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    journal = crashed(tmp_path, [
        ("approach", "step", "ok", "move_to", home(1), None),
        ("carry", "step", None, "move_to", None, "the undo of carry needs its result"),
    ])
    done, seen = asyncio.run(recover(root, program, journal))
    assert [(d.action, d.reason) for d in done] == [("held", "the undo of carry needs its result")]
    assert world(root) == []  # nothing moved
    assert list_runs(journal.read)[0]["status"] == "held"
    journal.close()


def test_a_step_cut_off_in_flight_is_journaled_as_such_not_as_failed(tmp_path: Path) -> None:
    """A grip cancelled half-way is undone by its run's rollback. It was journaled as failed ('cancelled'),
    which recovery skips: had the process died during that rollback, the gripper stayed half closed. It is
    journaled as cut off in flight, and shown so; an attempt cut off by its own timeout stays a failure."""
    from arm_spec import ARM
    from runtime_fakes import program as fake_program
    from test_executor_cut_off import GRIP, Gripper

    grip_in_time = model.Step("grip", GRIP.call, timeout=0.05)

    async def main(step: model.Step, cancel: bool) -> list[Any]:
        reactor_ = model.Reactor("G", "cell.G", (), None, "cell.Arm", model.Body((step,), None))
        journal = journal_at(tmp_path / f"{cancel}.db", project="cut")
        journal.start(asyncio.get_running_loop())
        async with RobotProxy(ARM, "arm", Gripper) as proxy:
            await proxy.call("arm", {})
            task = asyncio.create_task(run_reactor(fake_program(reactor_), reactor_, {}, robot=proxy,
                                                   journal=journal, observer=journal.observe))
            if cancel:
                asyncio.get_running_loop().call_later(0.05, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await journal.writer.flush()
        rows = journal.read.execute("SELECT kind, target, outcome FROM calls ORDER BY seq").fetchall()
        (run,) = list_runs(journal.read)
        timeline = show_run(journal.read, run["id"])["timeline"]
        journal.close()
        return [rows, timeline[0]["outcome"]]

    rows, shown = asyncio.run(main(GRIP, cancel=True))
    assert rows == [("step", "close_gripper", "cut"), ("undo", "open_gripper", "ok")]
    assert shown == "cut off in flight"
    rows, shown = asyncio.run(main(grip_in_time, cancel=False))
    assert rows == [("step", "close_gripper", "error")] and shown == "error"


def test_an_agents_command_cut_off_in_flight_is_journaled_as_such(tmp_path: Path) -> None:
    """The same for a command an agent runs (a run of one step): undone at once, journaled as cut off."""
    from arm_spec import ARM
    from bbflow.runtime.agent import CallRunner
    from bbflow.runtime.ports import RuntimeFailure
    from bbflow.runtime.tasks import Tasks
    from runtime_fakes import program as fake_program
    from test_executor_cut_off import Gripper

    journal = journal_at(tmp_path / "j.db", project="cut")

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        async with RobotProxy(ARM, "arm", Gripper) as robot:
            await robot.call("arm", {})
            tasks = Tasks()
            runner = CallRunner(fake_program(robot=ARM), robot=robot, tasks=tasks, journal=journal)
            call = model.CommandCall("close_gripper", lambda s: {"force": 10.0})
            running = asyncio.create_task(runner(call, {}, run_id="r1"))
            await asyncio.sleep(0.05)  # the grip is closing
            assert tasks.cancel("r1", "interrupted")
            with pytest.raises(RuntimeFailure):
                await running
        await journal.writer.flush()

    asyncio.run(main())
    calls = journal.read.execute("SELECT kind, target, outcome FROM calls ORDER BY seq").fetchall()
    journal.close()
    assert calls == [("step", "close_gripper", "cut"), ("undo", "open_gripper", "ok")]


def test_recovery_undoes_a_step_cut_off_in_flight_whose_rollback_the_crash_cut_short(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    journal = crashed(tmp_path, [
        ("approach", "step", "ok", "move_to", home(1), None),
        ("grip", "step", "cut", "close_gripper", {"command": "open_gripper", "args": {"job": 1, "back": True}},
         None),
        ("grip", "undo", None, "open_gripper", None, None),  # the rollback's undo, cut off by the crash
    ])
    done, _ = asyncio.run(recover(root, program, journal))
    assert [(d.action, d.in_doubt) for d in done] == [("rolled back", ("grip",))]
    assert [w["command"] for w in world(root)] == ["open_gripper", "move_to"]
    assert effects(journal, "r1") == []
    journal.close()


def test_a_run_whose_process_lives_is_left_to_it_and_recovered_once_that_process_is_gone(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    """The processes of a project share its journal: one starting (the same robot by mistake, or an operator's
    ``bbflow runs recover``) never rolls back a run another live process is running."""
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    path = tmp_path / "j.db"
    other = journal_at(path)  # another process, in the middle of a run on the arm
    other.conn.execute("INSERT INTO runs (id, reactor, robot, status, started, owner) VALUES "
                       "('r1', 'Job', 'arm', 'running', ?, ?)", (time.time(), other.owner.token))
    other.conn.execute("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, args, undo, sent, outcome) "
                       "VALUES (1, 'r1', 'step', 'approach', '[]', 1, 'move_to', '{}', ?, ?, 'ok')",
                       (json.dumps(home(1)), time.time()))
    other.conn.execute(MARK_CALLS_FROM)
    journal = journal_at(path)
    done, seen = asyncio.run(recover(root, program, journal))
    assert done == [] and world(root) == [] and not seen.named("recover.start")
    assert list_runs(journal.read)[0]["status"] == "running"
    journal.close()

    other.close()  # that process is gone (a kill -9 drops its lock the same way)
    journal = journal_at(path)
    done, _ = asyncio.run(recover(root, program, journal))
    assert [d.action for d in done] == ["rolled back"] and [w["command"] for w in world(root)] == ["move_to"]
    assert [p.name for p in owners.folder_of(path).iterdir() if p.name != ".lock"] == [journal.owner.token]
    journal.close()
    assert not owners.folder_of(path).exists()  # the last process of the project removes it


def test_a_second_process_on_the_same_robots_or_agents_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = journal_at(path, robots=["arm"], agents=["Picker/arm"])
    try:
        with pytest.raises(JournalError, match=rf"robot arm already run by another bbflow run of this project "
                                               rf"\(process {os.getpid()}, "):
            journal_at(path, robots=["arm", "conveyor"])
        with pytest.raises(JournalError, match="agent Picker/arm already run by another bbflow run of this project"):
            journal_at(path, agents=["Picker/arm"])
        journal_at(path, robots=["conveyor"], agents=["Monitor"]).close()  # nothing in common: welcome
    finally:
        first.close()
    journal_at(path, robots=["arm"], agents=["Picker/arm"]).close()  # the first is gone


def test_a_process_that_died_leaves_no_lock_even_with_a_forked_child_alive(tmp_path: Path) -> None:
    """A child forked by the process (an action using multiprocessing, say) must not keep its owner's lock:
    the process dies, the child lives on, and its robot and runs are free at once; its file is swept."""
    path = tmp_path / "j.db"
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from bbflow.runtime.journal import Journal, JournalConfig\n"
        f"journal = Journal.open(JournalConfig(Path({str(path)!r})), 'crash_cell', robots=['arm'])\n"
        "child = os.fork()\n"
        "if child == 0:  # lives on, its output closed (the test reads the parent's to the end)\n"
        "    devnull = os.open(os.devnull, os.O_WRONLY)\n"
        "    os.dup2(devnull, 1)\n"
        "    os.dup2(devnull, 2)\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print(child, flush=True)\n"
        "os._exit(0)  # dies without closing anything, as a kill would leave it\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    child = int(done.stdout)
    try:
        journal = journal_at(path, robots=["arm"])  # not refused: the process that held arm is gone
        assert [p.name for p in owners.folder_of(path).iterdir() if p.name != ".lock"] == [journal.owner.token]
        journal.close()
    finally:
        os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds an open file's path in /proc")
def test_a_new_owner_waits_for_another_process_probing_its_file(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process asking whether an owner lives (``alive``, ``others_on``) holds a shared lock on its file
    for a moment, without the folder's lock: a new owner's file probed just as it is made must not make the
    new process fail to start (its exclusive lock waits for the probe's end)."""
    import fcntl

    flock, probes = fcntl.flock, []

    def probed(fd: int, operation: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if operation & fcntl.LOCK_EX and not path.endswith(".lock") and not probes:  # the new owner's file
            probe = os.open(path, os.O_RDONLY)
            flock(probe, fcntl.LOCK_SH)  # the probe, between the file's making and its lock
            probes.append(probe)
            threading.Timer(0.2, os.close, (probe,)).start()  # the probe ends: its lock goes
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", probed)
    owner = owners.Owner.claim(tmp_path / "j.db.owners", None, ["arm"])
    monkeypatch.undo()
    try:
        assert len(probes) == 1 and owners.alive(tmp_path / "j.db.owners", owner.token)
    finally:
        owner.release()



def test_a_live_owner_holds_its_folder_locked_so_tmp_aging_leaves_it(tmp_path: Path) -> None:
    """systemd-tmpfiles ages /tmp, and skips a folder it cannot lock exclusively: while a process of the project
    lives, its owners folder (and the files that say it lives) cannot be aged away."""
    import fcntl

    def lockable(folder: Path) -> bool:  # as systemd-tmpfiles tries it
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    folder = tmp_path / "cell.owners"
    first = owners.Owner.claim(folder, None, ["arm"])
    second = owners.Owner.claim(folder, None, ["conveyor"])
    try:
        assert not lockable(folder)
        first.release()
        assert not lockable(folder)  # the second still runs
    finally:
        first.release()
        second.release()
    assert not folder.exists()  # the last one removed it

def test_the_last_owner_to_leave_removes_the_folders_that_killed_processes_left(tmp_path: Path) -> None:
    """A process killed (``kill -9``, a crash) cannot remove its project's owners folder: each such project left
    a folder in /tmp/bbflow-owners for ever. A process that leaves removes every folder no live process uses;
    one in use, or locked by a process that is claiming it, stays."""
    import fcntl

    killed = owners.Owner.claim(tmp_path / "killed.owners", None, ["arm"])
    os.close(killed._fd)  # what a kill leaves: its file, without its lock
    os.close(killed._folder_fd)
    live = owners.Owner.claim(tmp_path / "live.owners", None, ["arm"])
    (tmp_path / "claiming.owners").mkdir()
    claiming = os.open(tmp_path / "claiming.owners" / ".lock", os.O_RDONLY | os.O_CREAT)
    fcntl.flock(claiming, fcntl.LOCK_EX)
    (tmp_path / "other").mkdir()  # not an owners folder
    try:
        owners.Owner.claim(tmp_path / "mine.owners", None, ["arm"]).release()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["claiming.owners", "live.owners", "other"]
    finally:
        os.close(claiming)
        live.release()


def test_the_folder_lock_waited_for_while_the_last_owner_removes_the_folder_is_taken_anew(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last process of a project removes its owners folder, lock file and all, under the folder's lock
    (``Owner.release``). A process that opened that lock file and waits for it then holds a lock on a file no
    longer there, which keeps no third process out: it must make the folder again and lock that."""
    import fcntl

    folder = tmp_path / "cell.owners"
    flock, waiting, seen = fcntl.flock, threading.Event(), []

    def noted(fd: int, operation: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            waiting.set()  # the second has the old lock file open, and waits for its lock
        flock(fd, operation)

    def second() -> None:
        with owners._locked(folder):
            seen.append((folder / ".lock").exists())

    monkeypatch.setattr(fcntl, "flock", noted)
    with owners._locked(folder):
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(timeout=60)
        (folder / ".lock").unlink()  # as the last owner's release does
        folder.rmdir()
    thread.join(timeout=60)
    assert seen == [True]

def test_of_two_processes_recovering_together_one_takes_the_run(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    gone = journal_at(path)
    gone.conn.execute("INSERT INTO runs (id, reactor, robot, status, started, owner) VALUES "
                      "('r1', 'Job', 'arm', 'running', ?, ?)", (time.time(), gone.owner.token))
    token = gone.owner.token
    gone.close()

    async def main() -> list[bool]:
        first, second = journal_at(path), journal_at(path)
        for journal in (first, second):
            journal.start(asyncio.get_running_loop())
        taken = ["r1" in await first.claim([("r1", token)]), "r1" in await second.claim([("r1", token)])]
        assert first.read.execute("SELECT owner FROM runs").fetchone()[0] == first.owner.token
        first.close()
        second.close()
        return taken

    assert asyncio.run(main()) == [True, False]


def test_a_run_cut_off_on_a_robot_the_project_no_longer_has_is_held_not_left_running(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    """A robot renamed (or removed) in bbflow.toml after a crash: no process opens the old name, so its run
    would stay "running, cut off" for ever while the new name drives the same arm. Recovery holds it for an
    operator, saying why; a process that does not know the project's robots leaves it alone."""
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    journal = crashed(tmp_path, [("approach", "step", "ok", "move_to", home(1), None)])
    journal.conn.execute("UPDATE runs SET robot = 'old_arm' WHERE id = 'r1'")

    async def start(known: Collection[str] | None) -> list[Any]:
        journal.start(asyncio.get_running_loop())
        async with arm(root, program) as robot:
            await robot.call("arm", {})
            return await Recovery(journal, program, {"arm": robot}, known=known).run()

    assert asyncio.run(start(None)) == []
    journal.close()
    journal = journal_at(tmp_path / "j.db")
    [done] = asyncio.run(start({"arm"}))
    assert done.action == "held" and "its robot old_arm is no longer in bbflow.toml" in (done.reason or "")
    assert world(root) == []  # nothing moved: the old name may or may not be this arm
    assert journal.read.execute("SELECT status, owner FROM runs WHERE id = 'r1'").fetchone() == ("held", None)
    journal.close()


def test_recovery_reads_the_calls_of_the_runs_it_recovers_not_the_whole_history(tmp_path: Path) -> None:
    """Recovery (on the event loop, the robot armed) read every call of the journal to find those of the runs cut
    off: a second on a journal of a million calls; and every run, to find the unfinished ones. Now it reads from
    where the unfinished runs' calls begin: the same work under a history ten times as long."""
    from bbflow.runtime.journal.recovery import calls_of_unfinished, unfinished

    def work(history: int) -> int:
        journal = journal_at(tmp_path / f"{history}.db")
        conn = journal.conn
        conn.execute("BEGIN")  # (one commit, not one each)
        conn.executemany("INSERT INTO runs (id, reactor, status, started, ended) VALUES (?, 'Job', 'ok', ?, ?)",
                         [(f"done-{k:05d}", k, k) for k in range(history)])
        conn.executemany("INSERT INTO calls (run, kind, step, idx, attempt, target, sent, outcome) "
                         "VALUES (?, 'step', 's', '[]', 1, 'move_to', 0, 'ok')",
                         [(f"done-{k:05d}",) for k in range(history) for _ in range(5)])
        conn.execute("INSERT INTO runs (id, reactor, robot, status, started) VALUES ('cut', 'Job', 'arm', "
                     "'running', ?)", (history,))
        conn.executemany("INSERT INTO calls (run, kind, step, idx, attempt, target, sent, outcome) "
                         "VALUES ('cut', 'step', ?, '[]', 1, 'move_to', 0, ?)", [("a", "ok"), ("b", None)])
        conn.execute(MARK_CALLS_FROM)
        conn.execute("COMMIT")
        count = [0]

        def tick() -> int:
            count[0] += 1
            return 0

        journal.read.set_progress_handler(tick, 1)
        assert [row["id"] for row in unfinished(journal)] == ["cut"]
        assert [row[3] for row in calls_of_unfinished(journal)["cut"]] == ["a", "b"]
        journal.read.set_progress_handler(None, 1)
        journal.close()
        return count[0]

    assert work(10_000) < 2 * work(1_000)


def test_recovery_hold_leaves_runs_for_the_operator(cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    journal = crashed(tmp_path, [("approach", "step", "ok", "move_to", home(1), None)])
    done, _ = asyncio.run(recover(root, program, journal, hold=True))
    assert [d.action for d in done] == ["held"] and world(root) == []
    # held, it is no process's: an owner alive would mean someone is rolling it back (``bbflow runs recover``)
    assert journal.read.execute("SELECT status, owner FROM runs WHERE id = 'r1'").fetchone() == ("held", None)
    journal.close()
    journal = journal_at(tmp_path / "j.db")

    async def operator() -> list[Any]:
        journal.start(asyncio.get_running_loop())
        async with arm(root, program) as robot:
            await robot.call("arm", {})
            return await Recovery(journal, program, {"arm": robot}).run(only="r1")

    assert [d.action for d in asyncio.run(operator())] == ["rolled back"]
    assert [w["args"]["back"] for w in world(root)] == [True]
    journal.close()


# --- retention ----------------------------------------------------------------------------------


def test_retention_prunes_finished_runs_and_keeps_unfinished_ones(tmp_path: Path) -> None:
    journal = journal_at(tmp_path / "j.db", keep=60.0)
    old = time.time() - 3600
    for i in range(50):
        journal.conn.execute("INSERT INTO runs (id, reactor, status, started, ended) VALUES (?, 'Job', 'ok', ?, ?)",
                             (f"old{i}", old, old))
        journal.conn.execute("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, sent, outcome) "
                             "VALUES (?, ?, 'step', 's', '[]', 1, 'move_to', ?, 'ok')", (i + 1, f"old{i}", old))
    journal.conn.execute("INSERT INTO runs (id, reactor, status, started) VALUES ('open', 'Job', 'running', ?)",
                         (old,))
    journal.conn.execute("INSERT INTO runs (id, reactor, status, started, ended) VALUES "
                         "('held', 'Job', 'held', ?, ?)", (old, old))
    journal.conn.execute("INSERT INTO runs (id, reactor, status, started, ended) VALUES "
                         "('new', 'Job', 'ok', ?, ?)", (time.time(), time.time()))

    async def main() -> None:
        await journal.tidy()  # prunes, before start
        journal.start(asyncio.get_running_loop())
        await journal.writer.flush()

    asyncio.run(main())
    left = {r[0] for r in journal.read.execute("SELECT id FROM runs")}
    assert left == {"open", "held", "new"}
    assert journal.read.execute("SELECT count(*) FROM calls").fetchone()[0] == 0
    journal.close()


def test_the_file_is_vacuumed_at_start_only_when_no_other_process_has_it_open(tmp_path: Path) -> None:
    """A VACUUM holds the file locked for as long as it takes: never while another process writes to it."""
    path = tmp_path / "j.db"
    old = time.time() - 3600

    def fill() -> None:  # old finished runs enough to free many pages once pruned
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO runs (id, reactor, status, started, ended, inputs) VALUES "
                             "(?, 'Job', 'ok', ?, ?, ?)", [(f"old{i}", old, old, "x" * 500) for i in range(4000)])
            conn.execute("COMMIT")

    def start_and_free_pages(journal: Journal) -> int:
        async def main() -> None:
            await journal.tidy()
            journal.start(asyncio.get_running_loop())
            await journal.writer.flush()

        asyncio.run(main())
        free = journal.read.execute("PRAGMA freelist_count").fetchone()[0]
        journal.close()
        return free

    journal_at(path).close()
    fill()
    other = journal_at(path, agents=["Monitor"])  # another process on the same journal
    try:
        assert start_and_free_pages(journal_at(path, keep=60.0, agents=["Picker"])) >= 256  # pruned, not vacuumed
    finally:
        other.close()
    fill()
    assert start_and_free_pages(journal_at(path, keep=60.0)) == 0  # alone: vacuumed


def test_a_journal_taking_in_signals_and_starting_no_runs_stays_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitor's journal: signal after signal, each handled, no run; those older than ``keep`` go as more come."""
    now = [1_000_000.0]
    monkeypatch.setattr(journal_module, "time", SimpleNamespace(time=lambda: now[0]))
    journal = journal_at(tmp_path / "j.db", keep=60.0, sync="normal")
    counts = []
    handled = 5 * RETAIN_SIGNALS_EVERY - 1  # with the unhandled one, the last one accepted prunes

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        journal.accepted({"id": "unhandled"}, ["Other"])  # some agent has still to handle it: stays
        for i in range(handled):
            now[0] += 1.0  # one signal a second
            journal.accepted({"id": f"s{i}", "type": "temperature", "data": {"c": 21}}, ["Monitor"])
            journal.agent_turn("Monitor", {"seen": i}, f"s{i}", None)
            if i % 100 == 99:
                await journal.writer.flush()
                counts.append(journal.read.execute("SELECT count(*) FROM signals").fetchone()[0])
        await journal.writer.flush()

    asyncio.run(main())
    assert max(counts) <= RETAIN_SIGNALS_EVERY + 62  # what `keep` holds (61 s) + the unhandled one + one round
    ids = {r[0] for r in journal.read.execute("SELECT id FROM signals")}
    # the last prune came with the last signal: the last 61 seconds' signals stay, and the unhandled one
    assert ids == {"unhandled"} | {f"s{i}" for i in range(handled - 61, handled)}
    journal.close()


def test_a_signal_under_the_id_of_a_handled_one_is_the_one_replayed_after_a_crash(tmp_path: Path) -> None:
    """The journal keeps one signal per id: a sender whose ids start again (a PLC after a reboot) had its new
    signal replayed after a crash as the old one it kept (INSERT OR IGNORE), a pick at the old place."""
    journal = journal_at(tmp_path / "j.db", agents=["Picker"])

    def pick(signal_id: str, x: float) -> dict[str, Any]:
        return envelope_json(Envelope("pick", "/plc", signal_id, data={"x": x}))

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        journal.accepted(pick("1", 0.1), ["Picker"])
        journal.agent_turn("Picker", {}, "1", None)  # handled
        journal.accepted(pick("1", 0.9), ["Picker"])  # the id again: a new one
        journal.accepted(pick("2", 0.2), ["Picker"])
        journal.accepted(pick("2", 0.3), ["Picker"])  # the first still pending
        await journal.writer.flush()

    asyncio.run(main())
    replayed = [e.data for e in AgentJournal(journal, "Picker").pending()]
    assert replayed == [{"x": 0.9}, {"x": 0.2}]
    journal.close()


def test_a_signal_under_the_id_of_one_still_to_be_handled_is_refused_saying_why(tmp_path: Path) -> None:
    """The journal keeps one signal per id: a second one under the id of a signal some agent has still to handle
    cannot be kept beside it. From the same source it is a repeat (a duplicate); from another, it needs an id of
    its own. Once every agent has handled the first, a new one under its id takes its place, as before."""
    journal = journal_at(tmp_path / "j.db", agents=["Picker", "Placer"])

    def pick(source: str, signal_type: str = "pick") -> Envelope:
        return Envelope(signal_type, source, "1", data={"x": 0.1})

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        assert journal.refusal(pick("/plc")) is None
        journal.accepted(envelope_json(pick("/plc")), ["Picker"])
        journal.accepted(envelope_json(pick("/plc")), ["Placer"])  # the same signal, taken by two agents
        assert journal.refusal(pick("/plc")) == "duplicate: /plc sent id 1 already, and it is still to be handled"
        assert journal.refusal(pick("/mes")) == ("id 1 is that of a signal from /plc still to be handled, and the "
                                                 "journal keeps one signal per id: send this one with an id of its own")
        assert journal.refusal(pick("/robot/arm", "robot.safety.changed")) is None  # a robot's: not journaled
        journal.agent_turn("Picker", {}, "1", None)
        assert journal.refusal(pick("/mes")) is not None  # Placer has still to handle it
        journal.agent_turn("Placer", {}, "1", None)
        assert journal.refusal(pick("/mes")) is None
        await journal.writer.flush()

    asyncio.run(main())
    journal.close()


def test_a_signal_under_the_id_of_one_another_process_has_still_to_handle_is_refused(tmp_path: Path) -> None:
    """The processes of a project share its journal (a coordinator, a monitor): a signal under the id of one another
    process has still to handle was taken in (only this process's were looked at), and its agent's pending mark
    was kept with the other's signal, so a crash replayed that one to it, and lost its own. Two processes here:
    this one holds signal 1 of /plc for its agent Other; a ``bbflow run`` of the project is sent one of /mes under
    id 1 (refused, saying why), then the very same signal as /plc's (the fleet bus brings a signal to every
    process: taken in, and its job run)."""
    root = tmp_path / "crash_cell"
    shutil.copytree(DATA, root, ignore=shutil.ignore_patterns(".bbflow", "world.jsonl"))
    mine = Journal.open(JournalConfig(root / ".bbflow" / "journal.db", keep=None, root=root), "crash_cell",
                        agents=["Other"])
    plc = Envelope("job.requested", "/plc", "1", "2026-01-01T00:00:00Z", {"job": 1})
    try:
        async def hold() -> None:
            mine.start(asyncio.get_running_loop())
            mine.accepted(envelope_json(plc), ["Other"])
            await mine.flush()

        asyncio.run(hold())
        lines = [{"type": "job.requested", "source": "/mes", "id": "1", "data": {"job": 5}},
                 {"type": "job.requested", "source": "/plc", "id": "1", "time": plc.time, "data": {"job": 1}}]
        events = tmp_path / "events.jsonl"
        environ = {k: v for k, v in os.environ.items() if k != "BBFLOW_JOURNAL_DIR"}
        done = subprocess.run([sys.executable, "-m", "bbflow", "run", str(root), "--until-idle", "--events",
                               str(events)], input="".join(json.dumps(line) + "\n" for line in lines), text=True,
                              capture_output=True, env=environ, timeout=120)
        assert done.returncode == 0, done.stderr
        log = [json.loads(line) for line in events.read_text().splitlines()]
        assert [e["reason"] for e in log if e["event"] == "signal.dropped"] == [
            "id 1 is that of a signal from /plc still to be handled, and the journal keeps one signal per id: send "
            "this one with an id of its own"]
        assert [e["inputs"] for e in log if e["event"] == "run.start" and "parent" not in e] == [{"job": 1}]
        assert [e.data for e in AgentJournal(mine, "Other").pending()] == [{"job": 1}]  # still its to handle
    finally:
        mine.close()


def test_two_processes_taking_in_two_signals_under_one_id_at_once_each_replays_its_own(tmp_path: Path) -> None:
    """Two processes sharing the journal that take in two signals under one id at the same moment each pass the
    check (neither sees the other's before it is committed): the second's agent's pending mark joined the
    first's signal, so a crash replayed that one to it, a job it was never sent. Its mark keeps its own now."""
    first = journal_at(tmp_path / "j.db", agents=["Picker"])
    second = journal_at(tmp_path / "j.db", agents=["Placer"])

    def pick(source: str, x: float) -> Envelope:
        return Envelope("pick", source, "1", data={"x": x})

    async def main() -> None:
        first.start(asyncio.get_running_loop())
        second.start(asyncio.get_running_loop())
        plc, mes = pick("/plc", 0.1), pick("/mes", 0.9)
        assert first.refusal(plc) is None and second.refusal(mes) is None  # (both before either commits)
        first.accepted(envelope_json(plc), ["Picker"])
        await first.flush()
        second.accepted(envelope_json(mes), ["Placer"])
        await second.flush()

    asyncio.run(main())
    try:
        assert [(e.source, e.data) for e in AgentJournal(first, "Picker").pending()] == [("/plc", {"x": 0.1})]
        assert [(e.source, e.data) for e in AgentJournal(second, "Placer").pending()] == [("/mes", {"x": 0.9})]
    finally:
        first.close()
        second.close()


def test_two_signals_in_flight_under_one_id_the_second_is_a_drop_that_says_why(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    """Three job requests under id 1, taken in before the first was handled: all three were handled (three
    jobs run) while the journal kept the first alone, so a crash before their turns lost the other two
    silently (only the first replayed). The two are drops now, each with its reason, and nothing is lost."""
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    journal = journal_at(tmp_path / "j.db")
    lines = [json.dumps({"type": "job.requested", "id": "1", "source": source, "data": {"job": job}})
             for source, job in (("/plc", 1), ("/plc", 2), ("/mes", 3))]
    session, recorder, _ = agents_session(root, program, journal, *lines)
    outcome = asyncio.run(session.run())
    assert outcome.status == 0, outcome.summary
    assert [e["inputs"] for e in recorder.named("run.start")] == [{"job": 1}]
    assert [e["reason"] for e in recorder.named("signal.dropped")] == [
        "duplicate: /plc sent id 1 already, and it is still to be handled",
        "id 1 is that of a signal from /plc still to be handled, and the journal keeps one signal per id: send this "
        "one with an id of its own"]
    (envelope,) = [json.loads(r[0]) for r in journal.read.execute("SELECT envelope FROM signals WHERE id = '1'")]
    assert envelope["data"] == {"job": 1}
    journal.close()


def test_a_schema_1_journal_is_migrated_keeping_what_it_holds(tmp_path: Path) -> None:
    """Schema 2 indexes ``signals (accepted)``: retention no longer reads the whole table; schema 3 records
    each run's owner (a run from before has none: recovered as before, by whichever process it is for); schema
    4 indexes the runs by parent and start, and records where each run's calls begin (``bbflow runs`` reads
    what it lists, not the whole journal); schema 5, where they end (unknown for a run ended before it); schema 6
    lets a pending mark keep a signal of its own (none before it)."""
    path = tmp_path / "j.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in MIGRATIONS[1]:  # the schema-1 DDL, as a bbflow of that schema wrote it
            conn.execute(statement)
        conn.executemany("INSERT INTO meta VALUES (?, ?)",
                         [("schema", "1"), ("project", "crash_cell"), ("created", "0")])
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("INSERT INTO signals VALUES ('s1', '{}', 1.0)")
        conn.execute("INSERT INTO pending VALUES ('s1', 'Picker')")
        conn.execute("INSERT INTO runs (id, reactor, status, started) VALUES ('r1', 'Job', 'running', 1.0)")
        conn.execute("INSERT INTO runs (id, reactor, status, started) VALUES ('r2', 'Job', 'ok', 2.0)")
        conn.executemany("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, sent) VALUES "
                         "(?, 'r1', 'step', 's', '[]', 1, 'move_to', 1.0)", [(5,), (7,)])
    journal = journal_at(path)
    try:
        assert SCHEMA_VERSION == 6
        read = journal.read
        assert read.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "6"
        assert read.execute("SELECT * FROM signals").fetchall() == [("s1", "{}", 1.0)]
        assert read.execute("SELECT * FROM pending").fetchall() == [("s1", "Picker", None)]
        assert read.execute("SELECT id, status, owner, calls_from, calls_to FROM runs ORDER BY id").fetchall() == [
            ("r1", "running", None, 5, None), ("r2", "ok", None, None, None)]
        assert [(r["id"], r["steps"], r["in_doubt"]) for r in list_runs(read)] == [("r2", 0, 0), ("r1", 0, 2)]
        plan = " ".join(r[-1] for r in read.execute(
            "EXPLAIN QUERY PLAN DELETE FROM signals WHERE accepted < ? AND id NOT IN (SELECT signal FROM pending)",
            (0.0,)))
        assert "USING INDEX signals_accepted" in plan, plan
        assert read.execute("PRAGMA page_size").fetchone()[0] == 4096  # a file keeps the page size it has
    finally:
        journal.close()
    journal_at(path).close()  # and opens again as it is, migrated once


# --- a whole session: writes that start failing mid-run, then a restart -------------------------


def agents_session(root: Path, program: model.Program, journal: Journal, *lines: str) -> Any:
    from bbflow.runtime.app import Session
    from bbflow.runtime.run_plan import RunOptions, plan_run

    project = load_project(root)
    plan = plan_run(program, project, RunOptions(until_idle=True))
    recorder, notes = Recorder(), []

    async def feed() -> Any:
        for line in lines:
            yield line

    session = Session(plan, observer=recorder, lines=feed(), note=notes.append, journal=journal)
    return session, recorder, notes


def test_writes_failing_mid_run_stop_the_work_and_a_restart_recovers(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    """The journal's folder going read-only (or the disk full) mid-run, as SQLite then sees it: writes refused."""
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    request = json.dumps({"type": "job.requested", "data": {"job": 1}})
    journal = journal_at(tmp_path / "j.db")
    session, recorder, notes = agents_session(root, program, journal, request)

    def refuse_after_grip(event: dict[str, Any]) -> None:
        if event["event"] == "step.ok" and event["step"] == "grip":
            journal.conn.set_authorizer(lambda action, *rest: sqlite3.SQLITE_DENY
                                        if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE)
                                        else sqlite3.SQLITE_OK)

    session.observer = fanout(session.observer, refuse_after_grip)
    outcome = asyncio.run(session.run())
    journal.close()
    assert outcome.status == 1 and "journal" in outcome.summary and "write failed" in outcome.summary
    assert [w["command"] for w in world(root)] == ["move_to", "close_gripper"]  # nothing moved after
    assert any("stopping" in n for n in notes)

    journal = journal_at(tmp_path / "j.db")  # writable again: the restart rolls the run back
    session, recorder, notes = agents_session(root, program, journal)
    outcome = asyncio.run(session.run())
    journal.close()
    assert outcome.status == 0
    assert [e["event"] for e in recorder.named("recover.start", "recover.run", "recover.done")] == [
        "recover.start", "recover.run", "recover.done"]
    assert [(w["command"], w["args"]["back"]) for w in world(root)][2:] == [("open_gripper", True),
                                                                          ("move_to", True)]
    emitted = [e for e in recorder.named("signal.emit") if e["type"] == "job.failed"]
    assert [e["data"] for e in emitted] == [{"job": 1, "code": "recovered"}]


def test_pruning_at_start_is_done_off_the_loop_before_any_robot_is_armed(
        cell: tuple[Path, model.Program], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a backlog (a journal of 200,000 runs older than ``keep``) the pruning and VACUUM at start held the event
    loop for 14 s, with the robot armed: nothing else ran meanwhile, a Ctrl-C not even. Now they are done before
    any robot is armed, on a worker thread: here the prune waits until the loop has run a callback."""
    root, program = cell
    journal = journal_at(tmp_path / "j.db", keep=60.0)
    old = time.time() - 3600
    journal.conn.execute("INSERT INTO runs (id, reactor, status, started, ended) VALUES ('old', 'Job', 'ok', ?, ?)",
                         (old, old))
    session, _, _ = agents_session(root, program, journal)
    loops: list[asyncio.AbstractEventLoop] = []
    seen: list[tuple[bool, list[str]]] = []
    loop_ran = threading.Event()
    real = journal_module.prune

    def prune(conn: sqlite3.Connection, cutoff: float) -> int:
        loops[0].call_soon_threadsafe(loop_ran.set)
        seen.append((loop_ran.wait(timeout=30), [proxy.safety for proxy in session.robots]))
        return real(conn, cutoff)

    def unhandled_outcomes() -> list[Any]:  # reads every run: a tenth of a second on the loop at 200,000
        seen.append((True, [proxy.safety for proxy in session.robots]))
        return real_outcomes()

    real_outcomes = journal.unhandled_outcomes
    monkeypatch.setattr(journal, "unhandled_outcomes", unhandled_outcomes)

    async def main() -> Any:
        loops.append(asyncio.get_running_loop())
        return await session.run()

    monkeypatch.setattr(journal_module, "prune", prune)
    outcome = asyncio.run(main())
    journal.close()
    assert outcome.status == 0, outcome.summary
    assert len(seen) == 2 and seen[0][0], "the loop did not run while the journal was pruned"
    assert "armed" not in seen[0][1] + seen[1][1]
    assert [r[0] for r in journal_at(tmp_path / "j.db").read.execute("SELECT id FROM runs")] == []


def test_a_prune_at_start_interrupted_is_rolled_back_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C while the journal is pruned at start: the work on the worker thread is interrupted and waited for
    (the connection is not used by two threads), and nothing is half pruned."""
    journal = journal_at(tmp_path / "j.db", keep=60.0)
    old = time.time() - 3600
    journal.conn.executemany("INSERT INTO runs (id, reactor, status, started, ended) VALUES (?, 'Job', 'ok', ?, ?)",
                             [(f"old{i}", old, old) for i in range(10)])
    started, cancelled = threading.Event(), threading.Event()
    real = journal_module.prune

    def prune(conn: sqlite3.Connection, cutoff: float) -> int:
        deleted = real(conn, cutoff)
        started.set()
        cancelled.wait(timeout=30)  # the prune done, not yet committed, when the cancellation comes
        return deleted

    async def main() -> None:
        tidy = asyncio.ensure_future(journal.tidy())
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
        tidy.cancel()
        await asyncio.sleep(0)
        cancelled.set()
        with pytest.raises(asyncio.CancelledError):
            await tidy

    monkeypatch.setattr(journal_module, "prune", prune)
    asyncio.run(main())
    assert journal.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 10
    journal.close()


def test_a_run_whose_steps_all_completed_is_finished_without_motion(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    root, program = cell
    (root / "world.jsonl").unlink(missing_ok=True)
    steps = [("approach", "move_to"), ("grip", "close_gripper"), ("carry", "move_to"), ("release", "open_gripper"),
             ("back", "move_to")]
    journal = crashed(tmp_path, [(step, "step", "ok", target, home(4), None) for step, target in steps])
    journal.conn.execute("UPDATE runs SET inputs = '{\"job\": 4}'")
    for seq, (step, target) in enumerate(steps, 1):
        result = '"closed"' if target == "close_gripper" else '"open"' if target == "open_gripper" else \
            '{"x": 0.0, "y": 0.0, "z": 0.0}'
        journal.conn.execute("UPDATE calls SET result = ? WHERE seq = ?", (result, seq))
    done, seen = asyncio.run(recover(root, program, journal))
    assert [(d.action, d.value) for d in done] == [("finished", 4)]
    assert world(root) == []  # nothing moved
    assert seen.named("recover.run")[0]["action"] == "finished"
    assert show_run(journal.read, "r1")["result"] == 4 and list_runs(journal.read)[0]["status"] == "ok"
    journal.close()


TIMER = """
signal tick.start
signal tick.fire: {n: int}

agent Timer {
    state {
        fired: int = 0
    }
    on tick.start { schedule tick.fire {n: 1} in 10s }
    on tick.fire as t { set fired = fired + t.data.n }
}
"""


def test_state_and_scheduled_signals_survive_a_restart(tmp_path: Path) -> None:
    from bbflow.runtime.app import Session
    from bbflow.runtime.clock import run_virtual
    from bbflow.runtime.run_plan import RunOptions, plan_run

    root = tmp_path / "timer"
    root.mkdir()
    (root / "bbflow.toml").write_text('[project]\nname = "timer"\n\n[run]\nagents = ["timer.Timer"]\n')
    (root / "timer.flow").write_text(TIMER)
    diagnostics, program = compile_project(root)
    assert program is not None, diagnostics
    plan = plan_run(program, load_project(root), RunOptions(until_idle=True))
    config = JournalConfig(tmp_path / "j.db", sync="normal")

    async def first() -> None:  # takes tick.start, then stops before the tick fires (as a crash would)
        async def lines() -> Any:
            yield json.dumps({"type": "tick.start"})
        session = Session(plan, lines=lines(), journal=journal)
        asyncio.get_running_loop().call_later(1.0, session.interrupt)
        await session.run()

    journal = Journal.open(config, "timer")
    run_virtual(first())
    journal.close()
    journal = Journal.open(config, "timer")
    assert journal.read.execute("SELECT count(*) FROM schedules").fetchone()[0] == 1
    run_virtual(Session(plan, journal=journal).run())  # the restart fires it (10 s after it was scheduled)
    journal.close()
    journal = Journal.open(config, "timer")
    assert journal.read.execute("SELECT count(*) FROM schedules").fetchone()[0] == 0
    assert json.loads(journal.read.execute("SELECT state FROM agents").fetchone()[0]) == {"fired": 1}
    journal.close()


# --- action steps with an undo ------------------------------------------------------------------


def test_an_action_step_is_journaled_and_a_clean_run_records_it(tmp_path: Path) -> None:
    import journal_actions as ja

    async def main() -> None:
        journal = journal_at(tmp_path / "j.db", project="actions", sync="normal")
        journal.start(asyncio.get_running_loop())
        program, reactor = ja.program()
        async with RobotProxy(ja.SPEC, "cell", ja.Gripper) as robot:
            await robot.call("arm", {})
            result = await run_reactor(program, reactor, {"job": 3}, robot=robot, journal=journal,
                                       observer=journal.observe, actions=ja.resolve)
        assert result.ok
        await journal.writer.flush()
        rows = journal.read.execute("SELECT kind, step, target, args, undo, outcome, result FROM calls "
                                    "ORDER BY seq").fetchall()
        assert [(r[0], r[1], r[2], r[5]) for r in rows] == [
            ("step", "grip", "grip", "ok"), ("step", "mark", "action:mark", "ok"), ("step", "place", "place", "ok")]
        mark = rows[1]
        assert json.loads(mark[3]) == {"tag": "job-3"} and json.loads(mark[6]) == "job-3"
        assert json.loads(mark[4]) == {"action": "unmark", "args": {"tag": "job-3"}}
        # a run that fails rolls back: the action's undo is journaled too (so a crash then would not redo it)
        async with RobotProxy(ja.SPEC, "cell", ja.Gripper) as robot:
            await robot.call("arm", {})
            result = await run_reactor(program, reactor, {"job": 0}, robot=robot, journal=journal,
                                       observer=journal.observe, actions=ja.resolve)
        assert not result.ok
        await journal.writer.flush()
        undos = journal.read.execute("SELECT step, target, outcome FROM calls WHERE kind = 'undo' ORDER BY seq")
        assert undos.fetchall() == [("mark", "action:unmark", "ok"), ("grip", "release", "ok")]
        journal.close()

    monkey = pytest.MonkeyPatch()
    monkey.setenv(ja.WORLD, str(tmp_path / "world.jsonl"))
    try:
        asyncio.run(main())
    finally:
        monkey.undo()


async def _hangs_then(value: Any) -> Any:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        if value is None:
            raise
    return value  # finished as it was cancelled


@pytest.mark.parametrize("finishes, outcome", [(None, "error"), (5, "ok")], ids=["cancelled", "finished-anyway"])
def test_an_action_step_cut_short_by_its_timeout_records_how_it_ended(tmp_path: Path, finishes: Any,
                                                                      outcome: str) -> None:
    """An effectful action whose step timed out stayed 'in doubt' ('may have moved: recovery undoes it') in
    `bbflow runs show` of a run that had ended and rolled back: its intent was journaled, its end never."""
    from bbflow.runtime.types import INT

    acts = {"slow": lambda: _hangs_then(finishes), "fix": lambda: None}
    slow = model.Action("slow", "t.slow", (), INT, "slow")
    fix = model.Action("fix", "t.fix", (), None, "fix")
    step = model.Step("s", model.ActionCall("t.slow", lambda s: {}), timeout=0.05,
                      undo=model.Undo(model.ActionCall("t.fix", lambda s: {})))
    reactor = model.Reactor("R", "t.R", (), None, None, model.Body((step,), model.Fail("then fail")))
    program = model.Program()
    for decl in (slow, fix):
        program.add(decl)
    program.add(reactor)

    async def main() -> list[Any]:
        journal = journal_at(tmp_path / "j.db", project="actions")
        journal.start(asyncio.get_running_loop())
        await run_reactor(program, reactor, {}, journal=journal, observer=journal.observe,
                          actions=acts.__getitem__)
        await journal.writer.flush()
        rows = journal.read.execute("SELECT kind, target, outcome FROM calls ORDER BY seq").fetchall()
        journal.close()
        return rows

    rows = asyncio.run(main())
    undo = [("undo", "action:fix", "ok")] if outcome == "ok" else []  # a step that completed is undone
    assert rows == [("step", "action:slow", outcome), *undo]


def test_an_action_cut_off_by_a_crash_is_undone_at_recovery_and_never_run_again(tmp_path: Path) -> None:
    """``mark`` moves the world, then its process is killed (SIGKILL) before its result is recorded: in doubt.
    Recovery undoes it (and the command before it), newest intent first, once; nothing runs again."""
    import subprocess
    import sys

    import journal_actions as ja

    path, world = tmp_path / "j.db", tmp_path / "world.jsonl"
    child = subprocess.run([sys.executable, str(Path(__file__).with_name("journal_actions.py")), str(path),
                            str(world)], env={**os.environ, "BBFLOW_TEST_CRASH": "mark"}, capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == -9, child.stderr  # killed, mid-run
    assert [w["do"] for w in ja.world(world)] == ["grip", "mark"]
    journal = journal_at(path, project="actions")
    doubt = journal.read.execute("SELECT target, outcome FROM calls WHERE step = 'mark'").fetchall()
    assert doubt == [("action:mark", None)]

    async def main() -> list[Any]:
        journal.start(asyncio.get_running_loop())
        program, _ = ja.program()
        async with RobotProxy(ja.SPEC, "cell", ja.Gripper) as robot:
            await robot.call("arm", {})
            done = await Recovery(journal, program, {"cell": robot}, actions=ja.resolve).run()
        return done

    monkey = pytest.MonkeyPatch()
    monkey.setenv(ja.WORLD, str(world))
    try:
        done = asyncio.run(main())
    finally:
        monkey.undo()
    assert [(d.action, d.in_doubt) for d in done] == [("rolled back", ("mark",))]
    assert [w["do"] for w in ja.world(world)] == ["grip", "mark", "unmark", "release"]
    undos = journal.read.execute("SELECT step, target, outcome FROM calls WHERE kind = 'undo' ORDER BY seq").fetchall()
    assert undos == [("mark", "action:unmark", "ok"), ("grip", "release", "ok")]
    journal.close()
    # a second start finds nothing to do: the action's undo is journaled as done, the run as ended
    again = journal_at(path, project="actions")
    assert again.read.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    again.close()


def test_the_journals_of_a_project_are_found_by_their_names(tmp_path: Path) -> None:
    """The project's journal and each ``--robot`` process's (``process_journal``'s names), in a folder shared
    with other projects (``$BBFLOW_JOURNAL_DIR``), SQLite's files and the owners folder: only the project's."""
    for name in ("a.db", "a.left.db", "a.left+right.db", "a.right+left.db", "a.left+left.db", "a..db", "a.db-wal",
                 "a.left.db-wal", "a.left.db-shm", "a.db.bak", "b.db", "b.left.db", "ab.left.db", "j", "j.left",
                 "j-wal", "j.left-wal"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a.db.owners").mkdir()
    (tmp_path / "a.arm.db").mkdir()
    assert journal_files(tmp_path / "a.db") == [tmp_path / n for n in ("a.db", "a.left+right.db", "a.left.db")]
    assert journal_files(tmp_path / "j") == [tmp_path / "j", tmp_path / "j.left"]
    assert journal_files(tmp_path / "none" / "journal.db") == []  # nothing has run yet
    assert process_robots(tmp_path / "a.left+right.db", tmp_path / "a.db") == ["left", "right"]
    assert process_robots(tmp_path / "a.db", tmp_path / "a.db") == []
    assert process_robots(tmp_path / "x" / "a.left.db", tmp_path / "a.db") == []  # not beside it
    made = journal_module.process_journal(JournalConfig(tmp_path / "a.db"), ["right", "left"]).path
    assert process_robots(made, tmp_path / "a.db") == ["left", "right"]


def test_a_cancelled_command_run_of_an_agent_is_ended_in_the_journal(
        cell: tuple[Path, model.Program], tmp_path: Path) -> None:
    """Ctrl-C (or a preemption) during an agent's `run close_gripper(...)` used to leave the run
    "running, cut off" in the journal, as if the process had crashed in the middle of it."""
    from bbflow.runtime.agent import CallRunner
    from bbflow.runtime.ports import RuntimeFailure
    from bbflow.runtime.tasks import Tasks

    root, program = cell
    journal = journal_at(tmp_path / "j.db")

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        robot = arm(root, program)
        robot.stop_grace = 0.5
        async with robot:
            await robot.call("arm", {})
            hang = asyncio.get_running_loop().create_future()

            async def stuck(_kwargs: dict[str, Any]) -> Any:
                await hang  # until cancelled
            robot._commands["close_gripper"] = stuck
            tasks = Tasks()
            runner = CallRunner(program, robot=robot, tasks=tasks, journal=journal)
            call = model.CommandCall("close_gripper", lambda s: {})
            running = asyncio.create_task(runner(call, {"job": 1}, run_id="r1"))
            for _ in range(500):  # until the command is at the driver
                if robot._inflight or running.done():
                    break
                await asyncio.sleep(0.01)
            assert robot._inflight and not running.done()
            assert tasks.cancel("r1", "interrupted")
            with pytest.raises(RuntimeFailure) as failed:
                await running
            assert failed.value.code == "interrupted"

    asyncio.run(main())
    journal.close()
    journal = journal_at(tmp_path / "j.db")
    try:
        (run,) = list_runs(journal.read)
        assert run["status"] == "failed"
        assert show_run(journal.read, "r1")["error"]["code"] == "interrupted"
    finally:
        journal.close()


def test_reading_the_held_runs_does_not_scan_the_whole_history(tmp_path: Path) -> None:
    """``Journal.held`` is read on the event loop at every ``GET /api/state`` and ``/metrics`` scrape. It
    scanned every run and every call of the journal (270 ms with one held run among 200,000 finished ones, a
    week of a busy cell, the robots' loop stalled meanwhile, every 5 s while a dashboard is open). It finds the
    held runs by the status index and counts a held run's steps once: its work no longer grows with the
    history."""

    def steps(journal: Journal) -> int:
        count = [0]

        def tick() -> int:
            count[0] += 1
            return 0

        journal.read.set_progress_handler(tick, 1)
        held = journal.held()
        journal.read.set_progress_handler(None, 1)
        assert [(r["id"], r["steps"], r["in_doubt"]) for r in held] == [("held-1", 1, 1)]
        return count[0]

    def add(journal: Journal, run: str, status: str, outcomes: list[str | None]) -> None:
        journal.conn.execute("INSERT INTO runs (id, reactor, robot, status, started, inputs) "
                             "VALUES (?, 'Job', 'arm', ?, ?, '{}')", (run, status, time.time()))
        journal.conn.executemany("INSERT INTO calls (run, kind, step, idx, attempt, target, args, sent, outcome) "
                                 "VALUES (?, 'step', 'approach', '[]', 1, 'move_to', '{}', 0, ?)",
                                 [(run, outcome) for outcome in outcomes])

    small = journal_at(tmp_path / "small.db")
    add(small, "held-1", "held", ["ok", None])
    small.conn.execute(MARK_CALLS_FROM)
    steps(small)
    few = steps(small)
    small.close()
    journal = journal_at(tmp_path / "big.db")
    journal.conn.execute("BEGIN")  # (one commit, not one each)
    add(journal, "held-1", "held", ["ok", None])
    for i in range(2000):
        add(journal, f"done-{i}", "ok", ["ok", "ok", "ok"])
    journal.conn.execute(MARK_CALLS_FROM)
    journal.conn.execute("COMMIT")
    steps(journal)  # the first read counts its steps
    assert steps(journal) < 2 * few
    journal.close()


def test_a_process_in_another_locale_is_seen_keeping_the_same_journal(tmp_path: Path) -> None:
    """``others_on`` (no VACUUM while another process has the journal open) compares the journal each owner
    wrote down: a process under ``LC_ALL=C`` without UTF-8 mode held ``cellé`` as ``cell\\udcc3\\udca9`` and
    wrote that, which never equalled the name as another process reads it; both now write its bytes as UTF-8."""
    folder = tmp_path / "j.db.owners"
    named = tmp_path / "cellé" / "journal.db"  # as a UTF-8 locale reads the name
    escaped = Path(os.fsdecode(os.fsencode(tmp_path)) + "/cell\udcc3\udca9/journal.db")  # as LC_ALL=C reads it
    theirs = owners.Owner.claim(folder, escaped, ["left"])
    mine = owners.Owner.claim(folder, named, ["right"])
    try:
        assert owners.others_on(folder, named, mine)
    finally:
        mine.release()
        theirs.release()


def test_a_prune_reads_the_calls_of_the_runs_it_deletes_not_every_call(tmp_path: Path) -> None:
    """Pruning (every thousand runs, on the writer's thread or, with ``sync = "normal"``, on the event loop's, the
    file locked meanwhile) read every call of the journal and every root run, to delete a few: 1.5 s on a journal
    of 470 MB with nothing to delete. It reads the old runs by the index of their ends, and their calls by the
    calls' primary key up to where the last of them end (``calls_to``): the work does not grow with what stays."""
    journal = journal_at(tmp_path / "j.db", keep=60.0)
    conn, now = journal.conn, time.time()
    conn.execute("INSERT INTO runs (id, reactor, status, started, ended, calls_from, calls_to) "
                 "VALUES ('old', 'Job', 'ok', 1, 2, 1, 6), ('held', 'Job', 'held', 1, 2, 2, 2)")
    conn.execute("INSERT INTO runs (id, parent, reactor, status, started, ended, calls_from, calls_to) "
                 "VALUES ('old-composed', 'old', 'Sub', 'ok', 1, 2, 5, 6)")
    conn.executemany("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, sent) "
                     "VALUES (?, ?, 'step', 's', '[]', 1, 'move_to', 1)",
                     [(1, "old"), (2, "held"), (3, "old"), (4, "old"), (5, "old-composed"), (6, "old-composed")])
    plan = " ".join(r[-1] for r in conn.execute(
        f"EXPLAIN QUERY PLAN {store_module._OLD_RUNS} DELETE FROM calls WHERE seq <= ? AND run IN old", (0.0, 0)))
    assert "SEARCH calls USING INTEGER PRIMARY KEY (rowid<?)" in plan and "USING INDEX runs_ended" in plan, plan
    steps = []
    for kept in (100, 5000):  # runs of the last minute, with a call each
        conn.execute("BEGIN")
        conn.execute("DELETE FROM runs WHERE id LIKE 'new%'")
        conn.execute("DELETE FROM calls WHERE run LIKE 'new%'")
        conn.executemany("INSERT INTO runs (id, reactor, status, started, ended, calls_from, calls_to) "
                         "VALUES (?, 'Job', 'ok', ?, ?, ?, ?)", [(f"new{i}", now, now, 7 + i, 7 + i) for i in range(kept)])
        conn.executemany("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, sent) "
                         "VALUES (?, ?, 'step', 's', '[]', 1, 'move_to', 1)", [(7 + i, f"new{i}") for i in range(kept)])
        counted = [0]

        def count() -> int:
            counted[0] += 1
            return 0

        conn.set_progress_handler(count, 1)  # every instruction SQLite's machine runs
        assert store_module.prune(conn, now - 60) == 2
        conn.set_progress_handler(None, 1)
        assert conn.execute("SELECT run FROM calls WHERE seq <= 6").fetchall() == [("held",)]
        assert conn.execute("SELECT count(*) FROM calls").fetchone() == (kept + 1,)
        conn.execute("ROLLBACK")
        steps.append(counted[0])
    assert steps[0] == steps[1], steps  # (every call and run: fifty times the instructions)
    journal.close()


def test_pruning_a_backlog_at_start_is_said_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal not opened for weeks: pruning it and giving the space back took 35 s (200,000 runs, 470 MB) with
    nothing shown, the robot not yet armed: it looked hung. What it does is said first (a backlog, a VACUUM)."""
    monkeypatch.setattr(journal_module, "BACKLOG", 100)
    path = tmp_path / "j.db"
    old = time.time() - 3600
    journal_at(path).close()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO runs (id, reactor, status, started, ended, inputs) VALUES "
                         "(?, 'Job', 'ok', ?, ?, ?)", [(f"old{i}", old, old, "x" * 500) for i in range(4000)])
        conn.execute("COMMIT")
    notes: list[str] = []
    for _ in range(2):  # the second time: nothing to prune, nothing said
        journal = journal_at(path, keep=60.0)

        async def main() -> None:
            await journal.tidy(notes.append)

        asyncio.run(main())
        journal.close()
    assert notes == ["journal: pruning 4000 runs finished longer ago than [journal] keep, before any robot is armed; "
                     "a backlog takes a while (Ctrl-C stops it, nothing half pruned)",
                     "journal: giving the space of what was pruned back to the file system (VACUUM), before any robot "
                     "is armed (Ctrl-C stops it)"]
