"""The journal writers: how records reach the file without stalling the event loop.

Both keep writes in order: ``commit`` returns once its write, and everything
written before it, is committed (an intent: the command must not reach the
driver before); ``write`` does not wait (results, run ends, agent state), and
is committed with the next commit, whichever comes first.

- ``ThreadWriter`` (``sync = "full"``): a thread takes everything queued at
  once and commits it as one transaction, so concurrent steps' intents share
  one commit and one fsync (group commit), and the loop never waits on disk.
- ``InlineWriter`` (``sync = "normal"``): a commit without fsync is a write
  into the page cache, cheaper than handing it to a thread and back; it runs on
  the loop's thread, batching what one loop iteration writes. The WAL is
  checkpointed (the part that syncs) by a thread of its own.

A write that fails makes the journal *failed* for good: every waiting and
later ``commit`` raises ``JournalFailed``, so no new work starts on an
unrecorded intent.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bbflow.runtime.ports import RuntimeFailure

Params = Sequence[Any]
_STOP: Any = object()


class JournalFailed(RuntimeFailure):
    """A journal write failed: nothing more may move (code ``journal``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "journal")


class _Writer:
    """What both writers share: applying a batch of writes as one transaction, and failing for good."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.failure: JournalFailed | None = None
        #: transactions committed (with ``sync = "full"``, one fsync of the WAL each) and records written
        self.commits = 0
        self.records = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_failure: Callable[[Exception], None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop, on_failure: Callable[[Exception], None] | None = None) -> None:
        self._loop = loop
        self._on_failure = on_failure

    async def flush(self) -> None:
        """Wait until everything written so far is committed."""
        await self.commit("SELECT 1")

    async def commit(self, sql: str, params: Params = ()) -> None:
        raise NotImplementedError

    def _apply(self, ops: list[tuple[Any, Params]]) -> bool:
        """Execute ``ops`` in one transaction; on an error, fail for good (returns False)."""
        if not ops or self.failure is not None:
            return self.failure is None
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params in ops:
                if callable(sql):
                    sql(conn, *params)
                else:
                    conn.execute(sql, params)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.failure = JournalFailed(f"journal {self.path}: write failed: {exc}; "
                                         "nothing more moves on an unrecorded intent")
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._failed()
            return False
        self.commits += 1
        self.records += len(ops)
        return True

    def _failed(self) -> None:
        raise NotImplementedError


class ThreadWriter(_Writer):
    """``sync = "full"``: one thread commits whatever is queued as one transaction (one fsync)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        super().__init__(conn, path)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop, on_failure: Callable[[Exception], None] | None = None) -> None:
        super().start(loop, on_failure)
        self._thread = threading.Thread(target=self._serve, name="bbflow-journal", daemon=True)
        self._thread.start()

    def write(self, sql: str | Callable[..., Any], params: Params = ()) -> None:
        """Queue a write (SQL, or ``fn(conn, *params)``); committed with the next batch (no waiting)."""
        if self.failure is None:
            self._queue.put((sql, params, None))

    async def commit(self, sql: str, params: Params = ()) -> None:
        """Queue a write and wait until it (and everything queued before it) is committed."""
        if self.failure is not None:
            raise self.failure
        assert self._loop is not None, "the journal writer is not started"
        done = self._loop.create_future()
        self._queue.put((sql, params, done))
        waiting = getattr(self._loop, "waiting_on_thread", None)  # a virtual clock must not run ahead meanwhile
        if waiting is None:
            await done
        else:
            with waiting():
                await done

    def close(self) -> None:
        """Commit what is queued, stop the thread (blocking: at shutdown, off the hot path)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ops = [item for item in batch if item is not _STOP]
            self._apply([(sql, params) for sql, params, _ in ops])
            waiters = [item[2] for item in ops if item[2] is not None]
            if waiters:
                self._tell(_settle, waiters, self.failure)
            if len(ops) != len(batch):
                return

    def _failed(self) -> None:
        self._tell(self._on_failure, self.failure)

    def _tell(self, fn: Callable[..., None] | None, *args: Any) -> None:
        """Call ``fn(*args)`` on the event loop's thread."""
        if fn is None or self._loop is None or self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed meanwhile
            pass


#: With ``InlineWriter``, checkpoint the WAL (in a thread) after this many commits.
CHECKPOINT_EVERY = 1000


class InlineWriter(_Writer):
    """``sync = "normal"``: commits on the loop's thread (no fsync), one per loop iteration at most for
    the writes that do not wait; the WAL checkpoints (which do sync) run in a thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        super().__init__(conn, path)
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints are the thread's
        self._pending: list[tuple[Any, Params]] = []
        self._scheduled = False
        self._checkpointing: threading.Thread | None = None
        self._since_checkpoint = 0

    def write(self, sql: str | Callable[..., Any], params: Params = ()) -> None:
        if self.failure is not None:
            return
        self._pending.append((sql, params))
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._flush_now)

    async def commit(self, sql: str, params: Params = ()) -> None:
        if self.failure is not None:
            raise self.failure
        self._pending.append((sql, params))
        self._flush_now()
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        self._flush_now()
        if self._checkpointing is not None:
            self._checkpointing.join()
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass

    def _flush_now(self) -> None:
        self._scheduled = False
        ops, self._pending = self._pending, []
        if self._apply(ops):
            self._since_checkpoint += 1
            if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpointing is None:
                self._since_checkpoint = 0
                self._checkpointing = threading.Thread(target=self._checkpoint, name="bbflow-journal-checkpoint",
                                                       daemon=True)
                self._checkpointing.start()

    def _checkpoint(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=5.0)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.close()
        except sqlite3.Error:
            pass  # the next one will try again; a failed checkpoint loses nothing
        finally:
            self._checkpointing = None

    def _failed(self) -> None:
        if self._on_failure is not None and self.failure is not None:
            self._on_failure(self.failure)


Writer = ThreadWriter | InlineWriter


def _settle(waiters: list[asyncio.Future[None]], failure: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if failure is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(failure)
