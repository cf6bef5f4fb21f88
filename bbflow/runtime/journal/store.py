"""The journal's file: an SQLite database in WAL mode, its schema, and the checks made when it opens.

``open_store`` opens (or creates) the file, refuses one that is corrupt, from
another project, or written by a newer bbflow (``JournalError``: never a
silent fresh start), and brings an older schema up to date with the
migrations in ``MIGRATIONS``. ``open_reader`` makes the same checks for a
reader (``bbflow runs``), and writes nothing. Every table is described in docs/durability.md.

Values are stored as JSON text; times are wall-clock seconds (UNIX epoch), so
that retention and ``bbflow runs`` mean the same across restarts.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bbflow.runtime import jsonout

#: ``PRAGMA application_id`` of a bbflow journal ("bbfj"): another SQLite file is not one.
APPLICATION_ID = 0x62626A6A
#: The schema this bbflow writes; a journal with a higher one was written by a newer bbflow.
SCHEMA_VERSION = 6

#: Sets every run's ``calls_from`` from its calls, reading them all (once: at the migration to schema 4; a process
#: sets it with the first call it journals for a run, ``Journal.intent``).
MARK_CALLS_FROM = ("UPDATE runs SET calls_from = first.seq FROM (SELECT run, min(seq) AS seq FROM calls GROUP BY run) "
                   "AS first WHERE runs.id = first.run")

#: ``MIGRATIONS[n]`` takes a journal from schema ``n - 1`` to ``n`` (schema 0: an empty file).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # one row per run: a reactor's, a composed reactor's (parent set), or an agent's one-command run
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            parent TEXT,
            reactor TEXT NOT NULL,
            robot TEXT,
            agent TEXT,
            origin TEXT,
            inputs TEXT,
            status TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            result TEXT,
            error TEXT,
            undo_errors TEXT,
            note TEXT,
            outcome_handled INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX runs_parent ON runs (parent)",
        "CREATE INDEX runs_status ON runs (status)",
        "CREATE INDEX runs_ended ON runs (ended)",
        # every command (or action) sent for a step or an undo: the intent, then its outcome
        """CREATE TABLE calls (
            seq INTEGER PRIMARY KEY,
            run TEXT NOT NULL,
            kind TEXT NOT NULL,
            step TEXT NOT NULL,
            idx TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            target TEXT NOT NULL,
            args TEXT,
            undo TEXT,
            hold TEXT,
            sent REAL NOT NULL,
            outcome TEXT,
            result TEXT,
            error TEXT,
            returned REAL
        )""",
        # no index on run: each one costs every intent's commit dearly; readers scan once instead
        # the state of each agent instance after its last turn
        "CREATE TABLE agents (agent TEXT NOT NULL, instance TEXT NOT NULL, state TEXT NOT NULL, "
        "PRIMARY KEY (agent, instance))",
        # signals accepted (at the door, or emitted by an agent) and the agents that have still to handle them
        "CREATE TABLE signals (id TEXT PRIMARY KEY, envelope TEXT NOT NULL, accepted REAL NOT NULL)",
        "CREATE TABLE pending (signal TEXT NOT NULL, agent TEXT NOT NULL, PRIMARY KEY (signal, agent))",
        # signals an agent scheduled and that have not fired yet
        "CREATE TABLE schedules (id TEXT PRIMARY KEY, agent TEXT NOT NULL, envelope TEXT NOT NULL, "
        "due REAL NOT NULL)",
    ),
    # retention finds old signals without reading the whole table
    2: ("CREATE INDEX signals_accepted ON signals (accepted)",),
    # the process running each run (``owners``): recovery leaves a live process's runs alone
    3: ("ALTER TABLE runs ADD COLUMN owner TEXT",),
    # ``bbflow runs`` reads what it lists, not the whole journal: the newest runs by an index, and the steps of
    # each from where its calls begin (``calls_from``: the ``seq`` of its first call, NULL for a run without
    # any; the calls have no index by run, see above)
    4: ("CREATE INDEX runs_roots ON runs (parent, started)",  # (also finds a run's composed runs, as did:)
        "DROP INDEX runs_parent",
        "ALTER TABLE runs ADD COLUMN calls_from INTEGER",
        MARK_CALLS_FROM),
    # ``bbflow runs show`` of an old run reads its calls, not every one journaled since: they end at
    # ``calls_to``, the last ``seq`` of the journal when the run last ended (NULL: running, cut off, or ended before
    # schema 5, its calls read to the end); a process that adds calls to it again (recovery) sets it back to NULL
    5: ("ALTER TABLE runs ADD COLUMN calls_to INTEGER",),
    # a signal an agent has still to handle, when it is not the one the journal keeps under its id (another
    # process of the project took that one in at the same moment, ``Journal.accepted``): NULL for the others
    6: ("ALTER TABLE pending ADD COLUMN envelope TEXT",),
}
#: ``_ADDED[n]``: the column of ``runs`` that schema ``n`` added, as a reader (``open_reader``) sees it in a journal
#: of an older schema, which it does not migrate (a temporary view over the table).
_ADDED: dict[int, str] = {
    3: "NULL AS owner",
    4: "0 AS calls_from",  # (its calls may begin anywhere)
    5: "NULL AS calls_to",  # (... and end anywhere)
}


_T = TypeVar("_T")

#: The page size of a new journal (see ``connect``).
PAGE_SIZE = 1024


class JournalError(Exception):
    """A journal that cannot be used: unreadable, corrupt, foreign or newer (``bbflow run`` exits 2)."""


def connect(path: Path, *, sync: str = "full") -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous`` set; autocommit (callers use BEGIN/COMMIT).

    A new file gets 1 KiB pages (an existing one keeps its own): a step's commit appends each page it
    changed, whole, to the WAL, and a step changes a few hundred bytes; with 1 KiB pages instead of
    SQLite's default 4 KiB a bare commit costs a quarter less, a chain step's journal a sixth less
    (BENCHMARKS.md, journal section).
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


def open_store(path: Path | str, project: str, *, sync: str = "full",
               say: Callable[[str], None] | None = None) -> sqlite3.Connection:
    """Open (or create) the journal at ``path`` for ``project``; checked and migrated. Raises ``JournalError``.

    ``say`` is told, before it starts, that a journal of an older bbflow is being brought up to date: on a large
    one that takes seconds (it reads every call), which must not be a silent pause. An interrupt meanwhile
    (``KeyboardInterrupt``) leaves the journal as it was: the migration is one transaction, never committed."""
    path = Path(path)
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # ("File exists": a file where the folder would be; "Not a directory": on the way)
            why = "a file, not a folder, is there" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
            raise JournalError(f"{path}: cannot create the journal's folder {exc.filename or path.parent}: "
                               f"{why}") from exc
    conn = _opened(path, lambda: connect(path, sync=sync))
    try:
        version = _interruptible(conn, lambda: _check(conn, path, project))
        if version < SCHEMA_VERSION:
            if version and say is not None:  # (0: a new file, nothing in it)
                say(f"journal {path}: bringing it up to date for this bbflow (schema {version} to {SCHEMA_VERSION}), "
                    f"once, before any robot is armed; for a journal of {_size(path)} this may take a while "
                    "(Ctrl-C leaves it as it was)")
            _interruptible(conn, lambda: _migrate(conn, path, version, project))
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: Path | str, project: str, *, whole: bool = False) -> sqlite3.Connection:
    """The journal at ``path``, checked as ``open_store`` checks it, for reading only (``bbflow runs``): nothing
    is written to it, not even a migration (an older schema reads as the current one, ``_ADDED``), and an
    empty file (nothing written yet) reads as a journal without runs. Closed last, the connection removes
    SQLite's ``-wal`` and ``-shm`` files (moving into the journal what a killed writer left in its ``-wal``,
    as any next opener does). Raises ``JournalError``.

    Unlike ``open_store`` it does not read the whole file for damage (``PRAGMA quick_check``: seconds on a large
    journal, at every look) unless ``whole``: a reader reads what it shows, and its queries go inside
    ``reading``, which says so if that is damaged."""
    path = Path(path)
    if not path.is_file():
        raise JournalError(f"{path}: no journal here (nothing has run with a journal in this project)")
    # read-write, not ``mode=ro``: SQLite makes the ``-wal`` and ``-shm`` files beside a journal for any reader,
    # and only a connection that may write removes them, when it is the last to close (``query_only`` below)
    conn = _opened(path, lambda: sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True,
                                                 check_same_thread=False))  # (checked on a worker: Ctrl-C)
    try:
        version = _interruptible(conn, lambda: _check(conn, path, project, whole=whole))
    except BaseException:
        conn.close()
        raise
    if version == 0:  # read as what ``open_store`` would make of it, in memory
        conn.close()
        conn = sqlite3.connect(":memory:")
        for target in range(1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
        return conn
    added = [column for target, column in _ADDED.items() if target > version]
    if added:
        conn.execute(f"CREATE TEMP VIEW runs AS SELECT *, {', '.join(added)} FROM main.runs")
    conn.execute("PRAGMA query_only = ON")
    return conn


def _opened(path: Path, opener: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
    try:
        return opener()
    except sqlite3.OperationalError as exc:
        raise JournalError(f"{path}: cannot open the journal: {_refused(path) or exc}") from exc
    except sqlite3.DatabaseError as exc:  # corrupt, or not an SQLite file at all
        raise JournalError(f"{path}: not a journal, or corrupt: {exc}; move it aside to start a new one "
                           "(its unfinished runs need an operator)") from exc


def _refused(path: Path) -> str | None:
    """Why the system refuses what SQLite needs to open ``path`` (the file, and files of its own beside it), as
    the system says it; SQLite's message gives no reason ("unable to open database file"). None if nothing is
    refused (the cause is elsewhere: SQLite's message is all there is)."""
    try:
        if path.exists():
            os.close(os.open(path, os.O_RDWR))
    except OSError as exc:
        return f"{path} cannot be written ({exc.strerror or exc})"
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        return (f"its folder {path.parent} cannot be written ({exc.strerror or exc}): SQLite makes the journal's "
                f"{path.name}-wal and {path.name}-shm files beside it; make the folder writable for this user, or "
                "keep the journal in one that is ([journal] path, or $BBFLOW_JOURNAL_DIR)")
    return None


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Around a reader's queries (``open_reader``): what SQLite raises, as a ``JournalError`` naming the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:  # the file may be sound: never "move it aside" for this
        raise JournalError(_unreadable(path, exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: the journal is corrupt: {exc}; move it aside to start a new one (its unfinished "
                           "runs need an operator)") from exc


def _check(conn: sqlite3.Connection, path: Path, project: str, *, whole: bool = True) -> int:
    """The schema of the journal, checked (``whole``: every page of it too); 0 for a file nothing was written to
    yet."""
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError as exc:  # the file may be sound: never "move it aside" for this
        raise JournalError(_unreadable(path, exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: not a journal, or corrupt: {exc}; move it aside to start a new one") from exc
    if app != APPLICATION_ID:
        if app != 0 or tables:
            raise JournalError(f"{path}: not a bbflow journal (another application's SQLite file); "
                               "set [journal] path to another file")
        return 0
    try:
        problems = [r[0] for r in conn.execute("PRAGMA quick_check")] if whole else ["ok"]
    except sqlite3.OperationalError as exc:
        raise JournalError(_unreadable(path, exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: the journal is corrupt: {exc}; move it aside to start a new one") from exc
    if problems != ["ok"]:
        raise JournalError(f"{path}: the journal is corrupt ({'; '.join(problems[:3])}); "
                           "move it aside to start a new one (its unfinished runs need an operator)")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
    version = int(meta.get("schema", "0"))
    if version > SCHEMA_VERSION:
        raise JournalError(f"{path}: the journal has schema {version}, written by a newer bbflow "
                           f"(this one reads up to {SCHEMA_VERSION}); upgrade bbflow")
    owner = meta.get("project")
    if owner is not None and owner != project:
        raise JournalError(f"{path}: the journal belongs to project {owner!r}, not {project!r}; "
                           "set [journal] path to a file of this project's own")
    return version


def _unreadable(path: Path, exc: sqlite3.OperationalError) -> str:
    why = f"{path}: cannot read the journal: {exc}"
    if exc.sqlite_errorname == "SQLITE_READONLY_DIRECTORY":  # a reader as another user than the cell's
        why += (f" (reading it needs SQLite's {path.name}-shm beside it, made only while a process has it open, "
                f"and this user cannot write {path.parent}: run this as the user the cell runs as, or while it runs)")
    return why


def _interruptible(conn: sqlite3.Connection, work: Callable[[], _T]) -> _T:
    """``work`` (on ``conn``: seconds on a large journal) done on a worker thread, the caller's waiting for it: a
    Ctrl-C (``KeyboardInterrupt``) comes at once, not when SQLite's statement ends (Python handles signals
    between its own instructions only), interrupts the statement, and is raised once the work is rolled back."""
    done: list[_T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            done.append(work())
        except BaseException as exc:  # (raised in the caller's thread)
            failed.append(exc)

    worker = threading.Thread(target=run, name="bbflow-journal-open")
    worker.start()
    try:
        worker.join()
    except BaseException:
        conn.interrupt()
        worker.join()
        raise
    if failed:
        raise failed[0]
    return done[0]


def _size(path: Path) -> str:
    """The size of the journal's file (with its ``-wal``), for people: ``236 MB``."""
    size = sum(file.stat().st_size for file in (path, path.with_name(path.name + "-wal")) if file.exists())
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _migrate(conn: sqlite3.Connection, path: Path, version: int, project: str) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        # another process of the project (a fleet) may have migrated it meanwhile: look again, locked
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            version = int((conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() or ("0",))[0])
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('project', ?)", (project,))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise JournalError(f"{path}: cannot write the journal: {exc}") from exc


#: Finished runs (and everything they hold) older than the cut-off; a root with its composed runs. The roots by
#: the index of the runs' ends (``+``: not by that of their parents, which reads every root run).
_OLD_RUNS = """WITH RECURSIVE old(id) AS (
    SELECT id FROM runs WHERE +parent IS NULL AND ended < ? AND status NOT IN ('running', 'held')
    UNION ALL SELECT runs.id FROM runs JOIN old ON runs.parent = old.id)"""
#: The greatest ``seq`` SQLite gives (the end of the calls of a run whose end is not known).
LAST_SEQ = (1 << 63) - 1
#: VACUUM at start once this many bytes are free (and they are a quarter of the file).
VACUUM_BYTES = 1 << 20


def prune(conn: sqlite3.Connection, cutoff: float) -> int:
    """Delete what finished before ``cutoff`` (inside the caller's transaction); returns runs deleted.

    Unfinished and held runs stay, whatever their age, and so do signals some
    agent has still to handle and pending schedules.
    """
    # their calls: those up to where the last of them end, by the calls' primary key (those before are the
    # oldest, pruned before but for unfinished and held runs'), not the whole table: the writer does this every
    # thousand runs, the file locked meanwhile (a run ended before schema 5: to the end, as it was)
    (last,) = conn.execute(f"{_OLD_RUNS} SELECT max(coalesce(calls_to, ?)) FROM runs WHERE id IN old",
                           (cutoff, LAST_SEQ)).fetchone()
    if last is not None:
        conn.execute(f"{_OLD_RUNS} DELETE FROM calls WHERE seq <= ? AND run IN old", (cutoff, last))
    conn.execute(f"{_OLD_RUNS} DELETE FROM runs WHERE id IN old", (cutoff,))
    deleted = int(conn.execute("SELECT changes()").fetchone()[0])  # (``rowcount`` is -1 after a WITH)
    conn.execute("DELETE FROM signals WHERE accepted < ? AND id NOT IN (SELECT signal FROM pending)", (cutoff,))
    return deleted


def shrink(conn: sqlite3.Connection, starting: Callable[[], None] | None = None) -> bool:
    """VACUUM when it pays: many free pages, a quarter of the file (outside a transaction, nothing running).

    Pruning frees pages that new records reuse, so a journal with retention
    stays bounded without it; VACUUM gives the space back when the kept
    history shrank (a shorter ``keep``, a burst of runs long gone).
    """
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    if free * conn.execute("PRAGMA page_size").fetchone()[0] < VACUUM_BYTES or free * 4 < pages:
        return False
    if starting is not None:  # (seconds on a large file)
        starting()
    conn.execute("VACUUM")
    return True


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=repr).encode
#: The C encoder that ``json`` builds anew on every call, built once (every step encodes three values);
#: None where the C accelerator is missing. It keeps no markers: a value that holds itself raises
#: RecursionError, and takes the slow path to its ValueError.
_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = None if _MAKE_ENCODER is None else _MAKE_ENCODER(
    None, repr, json.encoder.encode_basestring, None, ":", ",", False, False, True)


def dumps(value: Any) -> str:
    """JSON text of a journaled value (compact; tuples as lists, anything else odd as its repr; an integer
    too long for decimal conversion as its exact hex spelling, see ``bbflow.runtime.jsonout``)."""
    try:
        try:
            text = "".join(_C_ENCODE(value, 0)) if _C_ENCODE is not None else _ENCODE(value)
        except RecursionError:
            text = _ENCODE(value)
    except ValueError:
        return jsonout.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)
    return jsonout.encodable(text)  # half a surrogate pair in a string: SQLite takes UTF-8 only


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
