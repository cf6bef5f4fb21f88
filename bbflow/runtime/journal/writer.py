"""The journal writer: how records reach the file, in order, without stalling the event loop.

``commit`` returns once its write, and everything written before it, is
committed (an intent: the command must not reach the driver before);
``write`` does not wait (results, run ends, agent state): it is buffered on
the loop and committed with the next ``commit``, or at the latest
``FLUSH_AFTER`` seconds later.

Group commit: the commits asked for during one turn of the event loop are
made as one transaction once that turn's work is done, and while one
transaction is being committed whatever comes meanwhile gathers into the
next. So concurrent steps' intents share one commit, and with ``sync =
"full"`` one fsync of the WAL.

Where the commit runs:

- a commit that may wait on the disk runs on the writer thread: every
  commit with ``sync = "full"`` (it fsyncs), the WAL checkpoints (they sync
  the WAL and the database; counted in ``checkpoints``), and a commit that
  finds the file locked by another process (it waits for the lock);
- with ``sync = "normal"``, a commit that has nothing to wait for is made
  on the loop's thread: SQLite appends the pages to the WAL, a write into the
  OS page cache that does not wait for the disk, and never waits for a lock
  (``busy_timeout`` 0: a locked file sends the batch to the thread). Handing
  it to the thread would cost two thread wake-ups per commit, several times
  the commit itself (BENCHMARKS.md, journal section).

Backpressure: records written and not yet committed are held in memory, so
when the disk is slower than the input they must not pile up without end.
``room()`` returns at once while fewer than ``MAX_PENDING`` records are
pending; past that it waits (asynchronously: the loop goes on) until a
commit of the thread brings them below the bound. Whoever takes input from
outside (the agents' ``room``, and so standard input, the HTTP ingress)
awaits it before taking the next signal; a write that cannot wait (inside an
agent's turn, an intent) is never refused, so the records pending stay
within the bound plus what the signals already taken write when handled.

A write that fails makes the journal *failed* for good: every waiting and
later ``commit`` raises ``JournalFailed``, so no new work starts on an
unrecorded intent.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from bbflow.runtime.ports import RuntimeFailure

Params = Sequence[Any]
#: One write: SQL and its parameters, or ``fn(cursor, *params)``.
Op = tuple[Any, Params]

#: A write that does not wait is committed at the latest this long after it is made (seconds); a call's
#: result (``lazy``) at the latest ``LAZY_AFTER`` after it.
FLUSH_AFTER = 0.002
LAZY_AFTER = 0.5
#: The writer thread checkpoints the WAL after this many commits (or records, whichever comes first).
CHECKPOINT_EVERY = 1000
CHECKPOINT_RECORDS = 20_000
#: Records pending (written, not yet committed) at which intake waits (``room``).
MAX_PENDING = 10_000
#: How long the thread waits for a lock held by another connection (``bbflow runs recover``, a VACUUM).
BUSY_TIMEOUT_MS = 5000


class JournalFailed(RuntimeFailure):
    """A journal write failed: nothing more may move (code ``journal``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "journal")


@attrs.frozen
class Lag:
    """How far the journal's file is behind what was written: records not yet committed, and how long the
    oldest of them has waited (seconds; 0 when none)."""

    pending: int
    oldest: float


class _Batch:
    """Writes committed together, and the commits waiting on them."""

    __slots__ = ("ops", "waiters", "since")

    def __init__(self, ops: list[Op], since: float) -> None:
        self.ops = ops
        self.waiters: list[asyncio.Future[None]] = []
        self.since = since  # when its oldest write was made (time.monotonic)


class Writer:
    """The writer of one journal connection (see the module's docstring)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, inline: bool = False) -> None:
        self.conn = conn
        self.path = path
        #: ``sync = "normal"``: commits that cannot wait are made on the loop's thread
        self.inline = inline
        #: records pending at which input waits (``room``)
        self.max_pending = MAX_PENDING
        self.failure: JournalFailed | None = None
        #: transactions committed (with ``sync = "full"``, one fsync of the WAL each), records written,
        #: WAL checkpoints (two syncs each: the WAL, then the database)
        self.commits = 0
        self.records = 0
        self.checkpoints = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_failure: Callable[[Exception], None] | None = None
        self._buffer: list[Op] = []  # written on the loop, not handed over yet
        self._buffer_since = 0.0
        self._waiters: list[asyncio.Future[None]] = []  # commits waiting on the buffer
        self._handoff_soon = False
        self._turn_committed = False  # a commit was made at once in this turn of the loop
        self._timer: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()
        self._inflight: _Batch | None = None  # what the thread is committing (under _lock)
        self._next: _Batch | None = None  # what gathers meanwhile (under _lock)
        self._wake: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._since_checkpoint = (0, 0)
        self._room: asyncio.Event | None = None  # set: intake may go on (made by ``start``)
        self._room_wanted = False  # someone waits in ``room``: the thread tells the loop after each batch
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints are the thread's, counted
        #: every write goes through this one cursor: ``conn.execute`` would make a cursor per statement, four
        #: a step (the loop's thread and the writer's never write at once: ``_inflight``)
        self._cursor = conn.cursor()

    def start(self, loop: asyncio.AbstractEventLoop, on_failure: Callable[[Exception], None] | None = None) -> None:
        """Start the thread; ``on_failure(exc)`` is called on the loop when a write fails."""
        if self.inline:  # from now on the loop commits: it never waits for a lock, the thread does
            self.conn.execute("PRAGMA busy_timeout = 0")
        self._loop = loop
        self._on_failure = on_failure
        self._room = asyncio.Event()
        self._room.set()
        self._thread = threading.Thread(target=self._serve, name="bbflow-journal", daemon=True)
        self._thread.start()

    # --- on the loop's thread -------------------------------------------------------------

    def write(self, sql: str | Callable[..., Any], params: Params = (), *, lazy: bool = False) -> None:
        """Buffer a write; committed with the next commit, or ``FLUSH_AFTER`` seconds later (no waiting).

        ``lazy`` (a call's result): ``LAZY_AFTER`` seconds later at the latest, so that a step's result rides
        with the next step's intent (one commit, one fsync, per step) even when its command took a while.
        """
        if self.failure is not None:
            return
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append((sql, params))
        loop = self._loop
        if loop is None:
            return
        due = loop.time() + (LAZY_AFTER if lazy else FLUSH_AFTER)
        if self._timer is None or due < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(due, self._flush_buffer)

    async def commit(self, sql: str | Callable[..., Any], params: Params = ()) -> None:
        """Write and wait until it (and everything written before it) is committed."""
        if self.failure is not None:
            raise self.failure
        loop = self._loop
        assert loop is not None, "the journal writer is not started"
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append((sql, params))
        if self.inline and not self._turn_committed and not self._waiters and self._commit_now():
            # the first commit of this turn of the loop is made at once; the others of the turn wait for
            # the turn to end and go together (a fan-out's intents: two commits, not one each)
            self._turn_committed = True
            loop.call_soon(self._turn_over)
            if self.failure is not None:
                raise self.failure
            return
        done = loop.create_future()
        self._waiters.append(done)
        if not self._handoff_soon:  # once this turn of the loop is done: the commits asked for in it go as one
            self._handoff_soon = True
            loop.call_soon(self._handoff)
        waiting = getattr(loop, "waiting_on_thread", None)  # a virtual clock must not run ahead meanwhile
        if waiting is None:
            await done
        else:
            with waiting():
                await done

    async def flush(self) -> None:
        """Wait until everything written so far is committed."""
        await self.commit(_nothing)  # (a callable: flushes asked together are not one executemany, as a SELECT was)

    async def room(self) -> None:
        """Return once fewer than ``max_pending`` records wait to be committed (at once when they do), else
        when a commit of the thread brings them below it, or the journal failed (then nothing is written
        any more). Never blocks the loop."""
        loop = self._loop
        room = self._room
        if loop is None or room is None or self.pending() < self.max_pending:
            return
        while self.failure is None:
            room.clear()
            self._room_wanted = True  # before counting: a batch the thread ends after the count tells the loop
            if self.pending() < self.max_pending:
                self._room_wanted = False
                room.set()
                return
            if self._buffer and not self._handoff_soon:  # what waits on the loop goes to the thread now
                self._handoff_soon = True
                loop.call_soon(self._handoff)
            waiting = getattr(loop, "waiting_on_thread", None)  # a virtual clock must not run ahead meanwhile
            if waiting is None:
                await room.wait()
            else:
                with waiting():
                    await room.wait()

    def pending(self) -> int:
        """Records written and not yet committed."""
        return len(self._buffer) + sum(len(b.ops) for b in self._handed())

    def lag(self) -> Lag:
        """Records written and not yet committed, and the age of the oldest (seconds)."""
        batches = self._handed()
        pending = len(self._buffer) + sum(len(b.ops) for b in batches)
        if not pending:
            return Lag(0, 0.0)
        oldest = min([b.since for b in batches] + ([self._buffer_since] if self._buffer else []))
        return Lag(pending, max(0.0, time.monotonic() - oldest))

    def close(self) -> None:
        """Commit what is written, stop the thread (blocking: at shutdown, off the hot path)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._thread is None:
            return
        self._handoff()
        self._wake.put(None)
        self._thread.join()
        self._thread = None
        if self._room is not None:  # nothing is pending any more
            self._room_wanted = False
            self._room.set()

    def _handed(self) -> list[_Batch]:
        """The batches handed to the thread and not yet committed."""
        with self._lock:
            return [b for b in (self._inflight, self._next) if b is not None]

    def _turn_over(self) -> None:
        self._turn_committed = False

    def _check_room(self) -> None:
        """After a commit: let intake go on once below the bound, or the journal failed."""
        if not self._room_wanted or self._room is None:
            return
        if self.failure is not None or self.pending() < self.max_pending:
            self._room_wanted = False
            self._room.set()

    def _commit_now(self) -> bool:
        """Commit the buffer on the loop (``inline``), unless the thread is busy or the file locked: False."""
        with self._lock:
            if self._inflight is not None:
                return False
            ops = self._buffer
            if not self._apply(ops, inline=True):
                return False
            self._buffer = []
            if self.failure is not None:
                if self._on_failure is not None:
                    self._on_failure(self.failure)
            elif self._checkpoint_due():
                self._inflight = _Batch([], time.monotonic())
                self._wake.put(self._inflight)
        self._check_room()
        return True

    def _flush_buffer(self) -> None:
        self._timer = None
        self._handoff()

    def _handoff(self) -> None:
        """Commit the buffer: on the loop (``inline``, the thread idle, nothing to wait for), else through
        the thread, as a batch of its own if it is idle or gathered into the next one."""
        self._handoff_soon = False
        if not self._buffer or self.failure is not None:
            return
        ops, self._buffer = self._buffer, []
        waiters, self._waiters = self._waiters, []
        if self.inline:
            self._buffer = ops
            if self._commit_now():
                _settle(waiters, self.failure)
                return
            ops, self._buffer = self._buffer, []
        with self._lock:
            if self._inflight is not None:  # the thread is busy: gather; it takes the next batch when done
                if self._next is None:
                    self._next = _Batch(ops, self._buffer_since)
                else:
                    self._next.ops.extend(ops)
                self._next.waiters.extend(waiters)
                return
            batch = self._inflight = _Batch(ops, self._buffer_since)
            batch.waiters.extend(waiters)
        self._wake.put(batch)

    # --- on the writer's thread -----------------------------------------------------------

    def _serve(self) -> None:
        while True:
            batch = self._wake.get()
            if batch is None:  # ``close``: whatever was handed over before is committed by now
                return
            while batch is not None:
                if batch.ops:
                    self._apply(batch.ops, inline=False)
                    if self.failure is not None:
                        self._tell(self._on_failure, self.failure)
                if self._checkpoint_due():
                    self._checkpoint()
                with self._lock:  # no longer pending before its waiters hear of it (``lag``, ``room``)
                    done, batch = batch, self._next
                    self._inflight = batch
                    self._next = None
                if done.waiters:
                    self._tell(_settle, done.waiters, self.failure)
                if self._room_wanted:
                    self._tell(self._check_room)

    # --- either ---------------------------------------------------------------------------

    def _apply(self, ops: list[Op], *, inline: bool) -> bool:
        """Execute ``ops`` in one transaction; on an error, fail for good. False: ``inline`` and the file is
        locked by another connection (nothing done: the thread will wait for the lock)."""
        if self.failure is not None:
            return True
        conn, cursor = self.conn, self._cursor
        try:
            if not inline and self.inline:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                cursor.execute("BEGIN IMMEDIATE")
            finally:
                if not inline and self.inline:
                    conn.execute("PRAGMA busy_timeout = 0")
            i, count = 0, len(ops)
            while i < count:
                sql, params = ops[i]
                if callable(sql):
                    sql(cursor, *params)
                    i += 1
                    continue
                j = i + 1
                while j < count and ops[j][0] == sql:  # a fan-out's intents (or results): one executemany
                    j += 1
                if j == i + 1:
                    cursor.execute(sql, params)
                else:
                    cursor.executemany(sql, [op[1] for op in ops[i:j]])
                i = j
            cursor.execute("COMMIT")
        except Exception as exc:  # an SQLite error, or a value SQLite cannot take: never the thread's end
            if inline and not conn.in_transaction and _locked(exc):
                return False
            why = str(exc) if isinstance(exc, sqlite3.Error) else f"{type(exc).__name__}: {exc}"
            self.failure = JournalFailed(f"journal {self.path}: write failed: {why}; "
                                         "nothing more moves on an unrecorded intent")
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return True
        self.commits += 1
        self.records += len(ops)
        commits, records = self._since_checkpoint
        self._since_checkpoint = (commits + 1, records + len(ops))
        return True

    def _checkpoint_due(self) -> bool:
        commits, records = self._since_checkpoint
        return self.failure is None and (commits >= CHECKPOINT_EVERY or records >= CHECKPOINT_RECORDS)

    def _checkpoint(self) -> None:
        self._since_checkpoint = (0, 0)
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.checkpoints += 1
        except sqlite3.Error:
            pass  # the next one will try again; a failed checkpoint loses nothing

    def _tell(self, fn: Callable[..., None] | None, *args: Any) -> None:
        """Call ``fn(*args)`` on the event loop's thread."""
        if fn is None or self._loop is None or self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed meanwhile
            pass


def _nothing(cursor: sqlite3.Cursor) -> None:
    """The write of a flush: none."""


def _locked(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def _settle(waiters: list[asyncio.Future[None]], failure: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if failure is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(failure)
