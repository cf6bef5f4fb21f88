"""The journal as the runtime sees it: what gets recorded, when, and with what.

``Journal.open`` checks the file (``store``) and ``start`` starts its writer
thread (``writer``). Then:

- ``intent`` (awaited: committed before the command reaches the driver) and
  ``returned`` record each command or undo sent for a step (``calls``);
- ``observe`` is an event observer that records runs' starts and ends from the
  executor's ``run.*`` events (the robot and the agent that started a run come
  from ``ORIGIN``, set by whoever starts the run);
- ``agent_turn``, ``accepted``, ``scheduled`` and ``fired`` record the agents'
  side: state after each turn, signals accepted and still to be handled,
  scheduled signals with their due time.

Nothing here blocks the event loop: writes are queued to the writer thread,
and ``room`` is how input waits while too many of them are not yet committed.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import attrs

from bbflow.runtime.crew import wait_through
from bbflow.runtime.durations import parse_retention
from bbflow.runtime.events import jsonable
from bbflow.runtime.ids import folder_key
from bbflow.runtime.journal import owners
from bbflow.runtime.journal.owners import InUse, Owner, folder_of
from bbflow.runtime.journal.query import list_runs
from bbflow.runtime.journal.store import JournalError, connect, dumps, loads, open_store, prune, shrink
from bbflow.runtime.journal.writer import Lag, Writer
from bbflow.runtime.signals import Envelope, is_robot_bound

DEFAULT_PATH = ".bbflow/journal.db"
JOURNAL_DIR_ENV = "BBFLOW_JOURNAL_DIR"
SYNC_MODES = ("full", "normal")
RECOVERY_MODES = ("rollback", "hold")
DEFAULT_KEEP = 7 * 86400.0
#: Finished runs are pruned at start and after every so many run ends (a robot may run for months).
RETAIN_EVERY = 1000
#: ... and after every so many accepted signals: a process whose agents take in many signals and start few
#: runs (a coordinator, a monitor) would otherwise keep every signal it took in while it runs.
RETAIN_SIGNALS_EVERY = 1000
#: Old runs from which pruning them at start is said (``tidy``): a backlog, seconds of work.
BACKLOG = 10_000


@attrs.frozen
class JournalConfig:
    """``[journal]`` of bbflow.toml: where, how durable, what recovery does, how long finished runs stay."""

    path: Path
    sync: str = "full"
    recovery: str = "rollback"
    keep: float | None = DEFAULT_KEEP  # seconds; None keeps everything
    #: the project's journal, when ``path`` is not it (a ``--robot`` process's own journal)
    project_path: Path | None = None
    #: what names the project's owners folder, when not its journal: the project's folder, for a journal whose
    #: place bbflow.toml does not set (``$BBFLOW_JOURNAL_DIR`` or not, its processes see each other)
    root: Path | None = None

    @property
    def project(self) -> Path:
        """The project's journal: beside it, every process's journal and the owners folder."""
        return self.project_path if self.project_path is not None else self.path

    @property
    def owners(self) -> Path:
        """The owners folder of the project (``owners``): every process of a project sees every other, wherever
        each keeps its journal; with ``[journal] path`` set, named for that journal, so that two checkouts of the
        project that share one see each other too."""
        return folder_of(self.root if self.root is not None else self.project)


@attrs.frozen
class Origin:
    """Who started a run: its robot instance and, for an agent's run, what its outcome turn needs."""

    robot: str | None = None
    agent: str | None = None  # "Picker" or "Picker/left"
    route: str | None = None  # the route's pattern
    line: int = 0  # the line of the `run` statement
    binding: Any = None  # the route's envelope binding
    run: str | None = None  # the id the agent allotted to the run (recorded with the turn that started it)


#: Set by whoever starts a run (the session, an agent) in the task that awaits it.
ORIGIN: ContextVar[Origin | None] = ContextVar("bbflow_run_origin", default=None)


class Journal:
    """One open journal of one ``bbflow run``."""

    def __init__(self, conn: sqlite3.Connection, config: JournalConfig, owner: Owner,
                 agents: Collection[str] = ()) -> None:
        self.conn = conn
        self.config = config
        #: ``conn`` belongs to the writer's thread from ``start`` on
        self.writer = Writer(conn, config.path, inline=config.sync == "normal")
        #: this process, for the runs it starts: alive while the journal is open (``owners``)
        self.owner = owner
        #: the agent instances this process runs (``Picker``, ``Picker/left``): the journal's other agents are
        #: other processes' (``refusal``)
        self.agents = frozenset(agents)
        #: for reading on the event loop's thread (recovery, queries): sees what is committed
        self.read = connect(config.path, sync=config.sync)
        self._ended = 0
        self._accepted = 0
        #: the runs whose first call this process has journaled (and marked: ``calls_from``), until they end
        self._calling: set[str] = set()
        #: the signals accepted here and still to be handled, by id: their source, and how many agents have
        #: still to handle them (``refusal``)
        self._unhandled: dict[str, tuple[str, int]] = {}
        #: the steps done and in doubt of the runs ``held`` last listed
        self._held_steps: dict[str, tuple[int, int]] = {}
        #: the writes of the agent turn in progress: committed together, as one, with its state
        self._turn: list[tuple[str, Any]] | None = None

    @classmethod
    def open(cls, config: JournalConfig, project: str, *, robots: Collection[str] = (),
             agents: Collection[str] = (), command: str = owners.RUN, say: Callable[[str], None] | None = None
             ) -> Journal:
        """Open and check the file for a process (``command``, for the others' messages) that runs ``robots``
        and ``agents`` (instances); raises ``JournalError``, also when another live process of the project runs
        some of them. ``say``: told when a journal of an older bbflow is brought up to date (``open_store``).
        The writer starts with ``start``."""
        conn = open_store(config.path, project, sync=config.sync, say=say)
        try:
            owner = _own(config, config.path, robots, agents, command)
        except JournalError:
            conn.close()
            raise
        return cls(conn, config, owner, agents)

    async def tidy(self, note: Callable[[str], None] | None = None) -> None:
        """Prune what is older than ``keep``, then VACUUM if it pays and no other process has the file open (a
        VACUUM holds it locked for as long as it takes): before ``start``, and before any robot is armed. On a
        backlog (a journal not opened for weeks) this takes seconds: it is done on a worker thread, the loop
        free meanwhile (a Ctrl-C is handled at once), and ``note`` is told first, for it is no silent pause
        (a backlog of ``BACKLOG`` runs or more; a VACUUM). Cancelled, the work in progress is interrupted,
        rolled back whole (nothing is half pruned), and waited for before this returns."""
        if self.config.keep is None:
            return
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        cutoff = time.time() - self.config.keep
        old = 0 if note is None else \
            self.read.execute("SELECT count(*) FROM runs WHERE ended < ?", (cutoff,)).fetchone()[0]  # (an index)
        if note is not None and old >= BACKLOG:
            note(f"journal: pruning {old} runs finished longer ago than [journal] keep, before any robot is armed; "
                 "a backlog takes a while (Ctrl-C stops it, nothing half pruned)")

        def cancel() -> None:
            stop.set()  # (between statements, where an interrupt would come too early or too late)
            self.conn.interrupt()

        def vacuuming() -> None:  # (on the worker's thread)
            if note is not None:
                loop.call_soon_threadsafe(note, "journal: giving the space of what was pruned back to the file system "
                                                "(VACUUM), before any robot is armed (Ctrl-C stops it)")

        work = loop.run_in_executor(None, self._tidy, cutoff, stop, vacuuming)
        if await wait_through(work, on_cancel=cancel):
            raise asyncio.CancelledError

    def _tidy(self, cutoff: float, stop: threading.Event, vacuuming: Callable[[], None]) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            prune(self.conn, cutoff)
            self.conn.execute("ROLLBACK" if stop.is_set() else "COMMIT")
            if not stop.is_set() and not owners.others_on(self.config.owners, self.config.path, self.owner):
                shrink(self.conn, vacuuming)
        except sqlite3.Error:  # (interrupted, or the file locked by another process: pruned at the next pass)
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def start(self, loop: asyncio.AbstractEventLoop,
                on_failure: Callable[[Exception], None] | None = None) -> None:
        """Start the writer (after ``tidy``); ``on_failure`` is called on the loop when a write fails."""
        self.writer.start(loop, on_failure)

    def retain(self) -> None:
        """Prune finished runs and handled signals older than ``keep`` (queued)."""
        if self.config.keep is not None:
            self.writer.write(_retain, (time.time() - self.config.keep,))

    def close(self) -> None:
        """Commit what is queued and close the file (blocking: at shutdown)."""
        self.writer.close()
        for conn in (self.read, self.conn):
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self.owner.release()

    async def claim(self, runs: Sequence[tuple[str, str | None]]) -> set[str]:
        """Make each ``(run, owner)`` of ``runs`` this process's if its owner is still ``owner`` (and it is
        unfinished), all in one commit; returns the runs taken. One statement a run, so of two processes
        recovering together only one takes it."""
        taken: set[str] = set()
        if runs:
            await self.writer.commit(_claim, (runs, self.owner.token, taken))
        return taken

    @property
    def failure(self) -> Exception | None:
        return self.writer.failure

    async def room(self) -> None:
        """Return when fewer than the writer's ``max_pending`` records wait to be committed: input from
        outside awaits this before it is taken (see ``writer``)."""
        await self.writer.room()

    def held(self, limit: int = 50) -> list[dict[str, Any]]:
        """The runs held for an operator in this journal, newest first (as ``bbflow runs`` lists them), each
        with ``recovering``: an operator's ``bbflow runs recover`` is rolling it back now. Read on the loop's
        thread from what is committed, so a run an operator closed from another process is gone at once;
        ``sqlite3.Error`` if the file cannot be read. A held run's steps are counted once (nothing runs them
        any more): counting scans every call of the journal, and this is read at every state request."""
        runs = list_runs(self.read, limit, status="held", counted=self._held_steps)
        self._held_steps = {run["id"]: self._held_steps[run["id"]] for run in runs}
        for run in runs:
            run["recovering"] = owners.alive(self.config.owners, run.pop("owner"))
        return runs

    def held_count(self) -> int:
        """How many runs this journal holds for an operator (``held`` lists the newest 50 of them)."""
        row = self.read.execute("SELECT count(*) FROM runs WHERE status = 'held' AND parent IS NULL").fetchone()
        return int(row[0])

    def source_of(self, signal_id: str) -> str | None:
        """The source of the signal this journal holds under ``signal_id`` (accepted, in this process or an
        earlier one, and not yet pruned), None when it holds none; read on the loop's thread, from what is
        committed. The journal keeps one signal per id."""
        row = self.read.execute("SELECT envelope FROM signals WHERE id = ?", (signal_id,)).fetchone()
        return None if row is None else str(loads(row[0]).get("source"))

    async def flush(self) -> None:
        """Wait until everything written so far is committed (``JournalFailed`` if it cannot be)."""
        await self.writer.flush()

    def lag(self) -> Lag:
        """How far the file is behind: records written and not yet committed, and the oldest one's age."""
        return self.writer.lag()

    # --- calls ----------------------------------------------------------------------

    async def intent(self, run: str, kind: str, step: str, index: tuple[int, ...], attempt: int, target: str,
                     args: Any, undo: Any = None, hold: str | None = None) -> int:
        """Commit the intent of a call; returns its sequence number (the order of intents).

        SQLite numbers the row as it inserts it, under the write lock: the processes of a fleet share the
        project's journal, so a number counted in one process could be another's already.
        """
        row = _Intent((run, kind, step, dumps(list(index)) if index else "[]", attempt, target, dumps(args),
                       None if undo is None else dumps(undo), hold, time.time()), run not in self._calling)
        self._calling.add(run)
        await self.writer.commit(_insert_intent, (row,))
        return row.seq

    def returned(self, seq: int, ok: bool, value: Any, error: Mapping[str, Any] | None, undo: Any = None) -> None:
        """Record how a call ended (``undo``: the step's undo, now that its result is known)."""
        self.writer.write(
            "UPDATE calls SET outcome = ?, result = ?, error = ?, undo = coalesce(?, undo), returned = ? "
            "WHERE seq = ?",
            ("ok" if ok else "error", dumps(value) if ok else None,
             None if error is None else dumps(error), None if undo is None else dumps(undo), time.time(), seq),
            lazy=True,  # with the next intent (or the run's end), not in a commit (an fsync) of its own
        )

    def cut_off(self, seq: int) -> None:
        """Record a step's call as cut off at the driver by its run's failure or cancel (its own timeout is a
        failed attempt): it may have moved part-way, so the live rollback undoes it, and so does recovery
        should the process die first (outcome ``cut``, a step in doubt to it)."""
        self.writer.write("UPDATE calls SET outcome = 'cut' WHERE seq = ?", (seq,), lazy=True)

    # --- runs (an observer of the executor's events) -----------------------------------

    def observe(self, event: dict[str, Any]) -> None:
        name = event["event"]
        if "command" in event and name != "run.failed":
            return  # an agent's command run journals itself (``run_started``); a failure may be one that never started
        if name == "run.start":
            origin = ORIGIN.get()
            robot = origin.robot if origin is not None else None
            agent = origin.agent if origin is not None else None
            parent = event.get("parent")
            self.writer.write(
                "INSERT OR IGNORE INTO runs (id, parent, reactor, robot, agent, origin, inputs, status, started, "
                "owner) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (event["run"], parent, event["reactor"], robot, None if parent else agent,
                 None if parent or origin is None or origin.agent is None else dumps(_origin_json(origin)),
                 dumps(event.get("inputs")), time.time(), self.owner.token),
            )
        elif name in ("run.ok", "run.failed", "run.halted"):
            self.run_ended(event["run"], name[4:], event.get("result"), event.get("error"),
                           event.get("undo_errors"))

    def run_started(self, run: str, reactor: str, inputs: Any, origin: Origin | None) -> None:
        """A run that does not go through the executor (an agent's one-command run)."""
        self.writer.write(
            "INSERT OR IGNORE INTO runs (id, reactor, robot, agent, origin, inputs, status, started, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            (run, reactor, origin.robot if origin else None, origin.agent if origin else None,
             dumps(_origin_json(origin)) if origin is not None and origin.agent else None,
             dumps(jsonable(inputs)), time.time(), self.owner.token),
        )

    def run_ended(self, run: str, status: str, result: Any = None, error: Any = None, undo_errors: Any = None,
                  note: str | None = None) -> None:
        """Record how a run ended; a run ``held`` for an operator is no process's any more (no owner), so that
        an owner alive means a process at work on it (``bbflow runs recover`` rolling it back)."""
        self.writer.write(
            "UPDATE runs SET status = ?, ended = ?, result = ?, error = ?, undo_errors = ?, "
            "note = coalesce(?, note), owner = CASE WHEN ? = 'held' THEN NULL ELSE owner END, "
            "calls_to = (SELECT max(seq) FROM calls) WHERE id = ?",  # (its calls end there: ``runs show``)
            (status, time.time(), dumps(result), None if error is None else dumps(error),
             dumps(undo_errors or []), note, status, run),
        )
        self._calling.discard(run)
        self._ended += 1
        if self._ended % RETAIN_EVERY == 0:
            self.retain()

    def outcome_handled(self, run: str) -> None:
        self.writer.write("UPDATE runs SET outcome_handled = 1 WHERE id = ?", (run,))

    # --- agents -----------------------------------------------------------------------
    #
    # A turn is one transaction in the journal as it is in memory: what it accepts
    # (signals it emits to other agents), schedules and starts (runs), its new state
    # and the signal it handled are committed together or not at all. So after a
    # crash a signal is either handled, with all its consequences, or still pending.

    def begin_turn(self) -> None:
        """Collect the writes from here to ``agent_turn`` (or ``end_atomic``) into one."""
        self._turn = []

    def end_atomic(self) -> None:
        """Queue the writes collected since ``begin_turn`` as one (a scheduled signal firing, say)."""
        writes, self._turn = self._turn or [], None
        if writes:
            self.writer.write(_all, (writes,))

    def _put(self, sql: str, params: Any) -> None:
        if self._turn is not None:
            self._turn.append((sql, params))
        else:
            self.writer.write(sql, params)

    def accepted(self, envelope: Mapping[str, Any], agents: list[str]) -> None:
        """A signal taken in for ``agents`` (each still has to handle it). The journal keeps one signal per id:
        a new one under the id of one that is handled (a sender whose ids start again after it restarts, a
        file of signals fed again) takes its place, else after a crash the old one would be replayed for it;
        while the old one is still pending, it stays, and each of ``agents`` keeps this one beside its pending
        mark (``refusal`` turns such a one away, but another process of the project may take one in at the same
        moment: neither sees the other's before it is committed, and each must replay its own)."""
        text = dumps(envelope)
        self._put("INSERT INTO signals VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET envelope = excluded.envelope, "
                  "accepted = excluded.accepted WHERE NOT EXISTS (SELECT 1 FROM pending WHERE signal = excluded.id)",
                  (envelope["id"], text, time.time()))
        for agent in agents:  # (the envelope kept by the signal's own row: not again)
            self._put("INSERT OR IGNORE INTO pending (signal, agent, envelope) VALUES (?1, ?2, "
                      "CASE WHEN (SELECT envelope FROM signals WHERE id = ?1) IS ?3 THEN NULL ELSE ?3 END)",
                      (envelope["id"], agent, text))
        source, left = self._unhandled.get(envelope["id"], (str(envelope.get("source")), 0))
        self._unhandled[envelope["id"]] = (source, left + len(agents))
        self._accepted += 1
        if self._accepted % RETAIN_SIGNALS_EVERY == 0:
            self.retain()

    def refusal(self, envelope: Envelope) -> str | None:
        """Why a signal from outside cannot be taken in (a ``Bus.gate``), or None: the journal keeps one signal per
        id, and while one is still to be handled a second under its id would be lost after a crash (the first
        replayed, or nothing). From the same source it is a repeat of that one (CloudEvents names an event by its
        source and id): a duplicate; from another, it needs an id of its own. The signal may be another
        process's of the project, which shares the journal (committed: read here); the very same signal taken
        in by another process for its own agents (the fleet bus brings it to each) is no repeat here."""
        if is_robot_bound(envelope.type):
            return None
        held = self.unhandled_source(envelope.id)
        if held is None:
            held = self._pending_source(envelope)
        if held is None:
            return None
        if held == envelope.source:
            return f"duplicate: {envelope.source} sent id {envelope.id} already, and it is still to be handled"
        return (f"id {envelope.id} is that of a signal from {held} still to be handled, and the journal keeps "
                "one signal per id: send this one with an id of its own")

    def _pending_source(self, envelope: Envelope) -> str | None:
        """The source of the signal the journal holds under ``envelope``'s id for some agent to handle (committed:
        by this process before it restarted, or by another), None when it holds none, or when it is this very
        signal and only other processes' agents have it (or the journal cannot be read now: its failure stops
        the process)."""
        try:
            row = self.read.execute("SELECT envelope, (SELECT json_group_array(agent) FROM pending WHERE signal = ?1) "
                                    "FROM signals WHERE id = ?1 AND EXISTS (SELECT 1 FROM pending WHERE signal = ?1)",
                                    (envelope.id,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        held = loads(row[0])
        if held == loads(dumps(envelope.binding())) and self.agents.isdisjoint(loads(row[1])):
            return None
        return str(held.get("source"))

    def unhandled_source(self, signal_id: str) -> str | None:
        """The source of the signal accepted here under ``signal_id`` that some agent has still to handle (committed
        or not yet), None when there is none."""
        held = self._unhandled.get(signal_id)
        return None if held is None else held[0]

    def run_allotted(self, reactor: str, inputs: Any, origin: Origin) -> None:
        """A run an agent's turn starts (its ``run.start`` comes later, when it really starts)."""
        self._put("INSERT OR IGNORE INTO runs (id, reactor, robot, agent, origin, inputs, status, started, owner) "
                  "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                  (origin.run, reactor, origin.robot, origin.agent, dumps(_origin_json(origin)),
                   dumps(jsonable(inputs)), time.time(), self.owner.token))

    def agent_turn(self, agent: str, state: Mapping[str, Any], handled: str | None, outcome_of: str | None) -> None:
        """End a turn: the agent instance's new state, the signal it handled or the run whose outcome it took."""
        writes = self._turn or []
        self._turn = None
        writes.append(("INSERT OR REPLACE INTO agents VALUES (?, '', ?)", (agent, dumps(jsonable(state)))))
        if handled is not None:
            writes.append(("DELETE FROM pending WHERE signal = ? AND agent = ?", (handled, agent)))
            held = self._unhandled.pop(handled, None)
            if held is not None and held[1] > 1:
                self._unhandled[handled] = (held[0], held[1] - 1)
        if outcome_of is not None:
            writes.append(("UPDATE runs SET outcome_handled = 1 WHERE id = ?", (outcome_of,)))
        self.writer.write(_all, (writes,))

    def scheduled(self, key: str, agent: str, envelope: Mapping[str, Any], due: float) -> None:
        self._put("INSERT OR REPLACE INTO schedules VALUES (?, ?, ?, ?)", (key, agent, dumps(envelope), due))

    def fired(self, key: str) -> None:
        self._put("DELETE FROM schedules WHERE id = ?", (key,))

    def unhandled_outcomes(self) -> list[tuple[str, str, bool, Any, dict[str, Any]]]:
        """Agents' runs that ended while their outcome turn was never journaled: (run, agent, ok, value, origin)."""
        out = []
        for run, agent, status, result, error, origin in self.read.execute(
                "SELECT id, agent, status, result, error, origin FROM runs WHERE parent IS NULL AND agent IS NOT NULL "
                "AND origin IS NOT NULL AND outcome_handled = 0 AND status IN ('ok', 'failed', 'halted')"):
            ok = status == "ok"
            out.append((run, agent, ok, loads(result) if ok else loads(error), loads(origin)))
        return out


def journal_config(root: Path, table: Mapping[str, Any]) -> JournalConfig:
    """``[journal]`` read into a ``JournalConfig``; ``ValueError`` names the bad key.

    Without ``path``, the journal is ``PROJECT/.bbflow/journal.db``; or, when
    ``$BBFLOW_JOURNAL_DIR`` names a folder, a file of the project's own in there
    (for read-only checkouts, CI and tests).
    """
    path = table.get("path")
    if path is None:
        shared = os.environ.get(JOURNAL_DIR_ENV)
        if shared:
            path = str(Path(shared) / f"{folder_key(root)}.db")
        else:
            path = DEFAULT_PATH
    if not isinstance(path, str) or not path:
        raise ValueError(f"journal.path: expected a file name, got {path!r}")
    sync = table.get("sync", "full")
    if sync not in SYNC_MODES:
        raise ValueError(f"journal.sync: expected \"full\" or \"normal\", got {sync!r}")
    recovery = table.get("recovery", "rollback")
    if recovery not in RECOVERY_MODES:
        raise ValueError(f"journal.recovery: expected \"rollback\" or \"hold\", got {recovery!r}")
    keep = parse_keep(table["keep"]) if "keep" in table else DEFAULT_KEEP
    return JournalConfig((root / path).resolve(), sync, recovery, keep,
                         root=root.resolve() if "path" not in table else None)


def hold_without_journal(config: JournalConfig, robots: Collection[str], agents: Collection[str]) -> Owner | None:
    """For a process that keeps no journal (``--no-journal``): its robots and agents, held in the project's
    owners folder all the same, so that no other process of the project runs them meanwhile (``JournalError``
    if one does); None when the folder cannot be written (a read-only checkout: the process runs unguarded).
    ``release`` it at the end."""
    try:
        return Owner.claim(config.owners, None, robots, agents)
    except InUse as exc:
        raise JournalError(str(exc)) from exc
    except OSError:
        return None


def _own(config: JournalConfig, journal: Path, robots: Collection[str], agents: Collection[str],
         command: str) -> Owner:
    try:
        return Owner.claim(config.owners, journal, robots, agents, command)
    except InUse as exc:
        raise JournalError(str(exc)) from exc
    except OSError as exc:
        raise JournalError(f"{exc.filename or config.owners}: cannot make this process's lock file in the project's "
                           f"owners folder: {exc.strerror or exc}") from exc


def process_journal(config: JournalConfig, robots: Collection[str]) -> JournalConfig:
    """The journal of a process limited to some robots (``--robot``, one process per robot of a fleet): a
    file of its own beside the project's (``journal.left.db``), with the project's owners folder."""
    if not robots:
        return config
    path = config.path
    return attrs.evolve(config, path=path.with_name(f"{path.stem}.{'+'.join(sorted(robots))}{path.suffix}"),
                        project_path=config.project)


def journal_files(project: Path) -> list[Path]:
    """Every journal of the project whose journal is ``project`` that exists: it first, then each ``--robot``
    process's beside it (``process_journal``'s names), sorted. Not SQLite's ``-wal`` and ``-shm`` files, the
    owners folder, nor any file named otherwise."""
    try:
        names = sorted(os.listdir(project.parent))
    except OSError:  # no folder yet (nothing has run), or it cannot be read: as if empty
        names = []
    found = [project] if project.is_file() else []
    found += [project.parent / name for name in names if process_robots(project.parent / name, project)
              and (project.parent / name).is_file()]
    return found


def process_robots(journal: Path, project: Path) -> list[str]:
    """The robots of the ``--robot`` process whose journal is ``journal`` (``journal.left+right.db`` beside the
    project's ``journal.db``: left and right); [] when ``journal`` is not named as ``process_journal`` names
    one (the robots sorted, none twice)."""
    name = journal.name
    head, tail = f"{project.stem}.", project.suffix
    if journal.parent != project.parent or not (name.startswith(head) and name.endswith(tail)) or \
            len(name) <= len(head) + len(tail) or name.endswith(("-wal", "-shm", "-journal")):
        return []  # (SQLite's files end so: only in question for a journal whose name has no suffix)
    robots = name[len(head):len(name) - len(tail)].split("+")
    return robots if all(robots) and robots == sorted(set(robots)) else []


def parse_keep(value: Any) -> float:
    """``keep``: how long finished runs stay, ``"7d"`` or any duration (``"12h"``); ``ValueError`` if not."""
    try:
        return parse_retention(value)
    except ValueError as exc:
        raise ValueError(f"journal.keep: {exc}") from None


class _Intent:
    """An intent's row, and its sequence number once inserted; ``first``: the first this process journals for
    its run."""

    __slots__ = ("params", "seq", "first")

    def __init__(self, params: tuple[Any, ...], first: bool) -> None:
        self.params = params
        self.seq = 0
        self.first = first


def _insert_intent(cursor: sqlite3.Cursor, row: _Intent) -> None:
    row.seq = cursor.execute("INSERT INTO calls (run, kind, step, idx, attempt, target, args, undo, hold, sent) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row.params).lastrowid or 0
    if row.first:  # where the run's calls begin (``bbflow runs`` counts its steps from there); a process that
        # takes the run over (recovery) adds its calls after those already there: the least ``seq`` stays, and
        # where they end is known again when it ends (``run_ended``)
        cursor.execute("UPDATE runs SET calls_from = min(coalesce(calls_from, ?), ?), calls_to = NULL WHERE id = ?",
                       (row.seq, row.seq, row.params[0]))


def _claim(cursor: sqlite3.Cursor, runs: Sequence[tuple[str, str | None]], new: str, taken: set[str]) -> None:
    for run, old in runs:
        if cursor.execute("UPDATE runs SET owner = ? WHERE id = ? AND owner IS ? AND status IN ('running', 'held')",
                        (new, run, old)).rowcount == 1:
            taken.add(run)


def _all(cursor: sqlite3.Cursor, writes: list[tuple[str, Any]]) -> None:
    for sql, params in writes:
        cursor.execute(sql, params)


def _retain(cursor: sqlite3.Cursor, cutoff: float) -> None:
    prune(cursor.connection, cutoff)


def _origin_json(origin: Origin) -> dict[str, Any]:
    return {"agent": origin.agent, "route": origin.route, "line": origin.line, "binding": jsonable(origin.binding),
            "run": origin.run}
