"""The event log for ``GET /events``: a bounded ring of events and Server-Sent Event streams over it.

The runtime gives every event to ``EventHub`` (an observer): it gets the next
sequence number (its SSE ``id``) and goes into a ring of the last ``capacity``
events, replacing the oldest. That is all the runtime ever pays: no client can
slow it or make the ring grow. Events are serialised once, when first sent.

Each client is a generator that reads the ring from its own cursor (from
``Last-Event-ID``, or ``?after=N``, when it reconnects). The numbers of a
process start above every number of the processes before it (``start``: its
start time in milliseconds, times 1,000), so a client that was reading a
cell that has been started again gets every event the new one holds, not
only those past the number it had seen. A client that falls
so far behind that the ring has moved past its cursor skips ahead to the
oldest event still held, after a ``stream.skipped`` marker saying how many
events it missed; so does a client that asks to resume from an id the ring no
longer holds. A client slower than the network lets it be is held back only
by its own socket (uvicorn's flow control), never by the runtime.

A stream writes at most once per ``flush`` interval: after a write it waits
that long, so the events of a busy moment leave in one write per client
rather than one each (at 1,000 signals/s, ten clients were 20,000 writes a
second; now they are at most 200). A lone event still leaves at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from bbflow.runtime import jsonout

DEFAULT_CAPACITY = 4096
KEEPALIVE = 15.0  # seconds between two comments on an idle stream
BATCH_BYTES = 65536  # at most this much text per write to one client
FLUSH = 0.05  # seconds a stream waits after a write, so that what comes meanwhile goes in the next one


class _Entry:
    __slots__ = ("seq", "event", "_text")

    def __init__(self, seq: int, event: dict[str, Any]) -> None:
        self.seq = seq
        self.event = event
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = sse(self.seq, self.event)
        return self._text


def sse(seq: int | None, event: dict[str, Any]) -> str:
    """One Server-Sent Event: ``id`` and a single ``data`` line of compact JSON."""
    data = jsonout.dumps(event, separators=(",", ":"), ensure_ascii=False, default=repr)
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}data: {data}\n\n"


class EventHub:
    """A bounded ring of the latest events, and the streams that read it."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, keepalive: float = KEEPALIVE, flush: float = FLUSH,
                 start: int | None = None) -> None:
        self.capacity = capacity
        self.keepalive = keepalive
        self.flush = flush
        #: the number before the first event (see the module's docstring; 1,000 events a millisecond, for the
        #: process's life, would be needed to reach the next process's)
        self.start = start if start is not None else int(time.time() * 1000) * 1000
        self.last = self.start  # the sequence number of the latest event (``start``: none yet)
        self.clients = 0
        self.skipped = 0  # events clients missed by falling behind, in total
        self._ring: deque[_Entry] = deque(maxlen=capacity)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __call__(self, event: dict[str, Any]) -> None:
        self.last += 1
        self._ring.append(_Entry(self.last, event))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    @property
    def oldest(self) -> int:
        """The sequence number of the oldest event held (``last + 1`` when empty)."""
        return self._ring[0].seq if self._ring else self.last + 1

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self._closed = True
        self(_marker("stream.closed"))

    def resume_point(self, last_id: str | None) -> int:
        """The cursor for a client that saw ``last_id`` (None: only new events)."""
        if last_id is None:
            return self.last
        try:
            seen = int(last_id)
        except ValueError:
            return self.start  # not one of ours: everything held
        return seen if self.start <= seen <= self.last else self.start  # (an earlier process's: everything held)

    async def stream(self, cursor: int) -> AsyncIterator[str]:
        """The SSE text for a client whose last event was ``cursor``, until the hub closes."""
        self.clients += 1
        try:
            yield "retry: 1000\n\n"
            while True:
                if cursor < self.last:
                    chunk, cursor = self._after(cursor)
                    yield chunk
                    if not self._closed:
                        await asyncio.sleep(self.flush)
                    continue
                if self._closed:
                    return
                if self._waiter is None or self._waiter.done():
                    self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await asyncio.wait_for(asyncio.shield(self._waiter), self.keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
        finally:
            self.clients -= 1

    def _after(self, cursor: int) -> tuple[str, int]:
        """Text of the events after ``cursor`` (up to ``BATCH_BYTES``), and the new cursor."""
        parts: list[str] = []
        oldest = self.oldest
        if cursor + 1 < oldest:
            missed = oldest - cursor - 1
            self.skipped += missed
            parts.append(sse(None, _marker("stream.skipped", missed=missed, resume=oldest)))
            cursor = oldest - 1
        size = 0
        start = cursor - oldest + 1
        for i in range(start, len(self._ring)):
            entry = self._ring[i]
            text = entry.text
            parts.append(text)
            cursor = entry.seq
            size += len(text)
            if size >= BATCH_BYTES:
                break
        return "".join(parts), cursor


def _marker(name: str, **fields: Any) -> dict[str, Any]:
    return {"event": name, "reactor": None, "step": None, "run": None, **fields}
