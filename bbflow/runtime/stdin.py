"""Lines of standard input as an async iterator, for ``bbflow run``'s signals, read with backpressure.

A daemon thread reads a file descriptor with ``os.read`` (or, for a stream
without one, such as a test runner's in-memory stdin, its ``readline``) and
hands batches of complete lines to the event loop. Why a thread: standard input may be a terminal, a
pipe or a regular file (``< signals.jsonl``), and the loop's pipe transport
cannot watch regular files. Why ``os.read`` on the raw descriptor and a daemon
thread: a thread blocked on a terminal must never keep the process from
exiting after Ctrl-C, and ``sys.stdin``'s buffered object would be locked by
that thread while the interpreter shuts down.

Backpressure: the thread reads ahead at most ``BATCHES`` chunks; it waits
until the consumer has taken one before it reads the next. So memory stays
bounded whatever the size of the input, and input is read only as fast as the
consumer (the agents) takes it. A line longer than ``max_bytes`` is not kept:
the reader skips to its end and hands over a ``LineTooLong`` with its size
(reading is linear in the input, however long the line). Lines are bytes
(text for a text stream); decoding them is the door's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import IO

from bbflow.runtime.door import MAX_LINE_BYTES, LineTooLong

CHUNK = 65536
#: Batches (each the lines of one chunk) read ahead of the consumer.
BATCHES = 4

Line = bytes | str | LineTooLong


class InputLines:
    """``async for line in InputLines(0)``: each line without its newline; ends at end of input.

    ``source`` is a file descriptor, or a text stream that has none.
    """

    def __init__(self, source: int | IO[str], *, max_bytes: int = MAX_LINE_BYTES) -> None:
        self.source = source
        self.max_bytes = max_bytes

    def __aiter__(self) -> AsyncIterator[Line]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[Line]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[Line] | None] = asyncio.Queue()
        slots = threading.Semaphore(BATCHES)
        stop = threading.Event()
        threading.Thread(target=self._pump, args=(loop, queue, slots, stop), name="bbflow-stdin", daemon=True).start()
        try:
            while (batch := await queue.get()) is not None:
                slots.release()
                for line in batch:
                    yield line
        finally:
            stop.set()

    def _pump(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[list[Line] | None],
              slots: threading.Semaphore, stop: threading.Event) -> None:
        try:
            for batch in self._batches():
                while not slots.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, batch)
        except OSError:
            pass  # a closed or unreadable descriptor ends the input like end of file
        except RuntimeError:
            return  # the loop is closed: nobody is listening any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, None)

    def _batches(self) -> Iterator[list[Line]]:
        if not isinstance(self.source, int):
            yield from self._text_batches(self.source)
            return
        pending = bytearray()
        skipped = 0  # bytes of an over-long line skipped so far (0: not skipping)
        while chunk := os.read(self.source, CHUNK):
            batch: list[Line] = []
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                if skipped:
                    batch.append(LineTooLong(skipped + end - start))
                    skipped = 0
                else:
                    pending += chunk[start:end]
                    batch.append(_line(pending, self.max_bytes))
                    pending.clear()
                start = end + 1
            rest = len(chunk) - start
            if skipped:
                skipped += rest
            elif len(pending) + rest > self.max_bytes:
                skipped = len(pending) + rest
                pending.clear()
            else:
                pending += chunk[start:]
            if batch:
                yield batch
        if skipped:
            yield [LineTooLong(skipped)]
        elif pending:
            yield [_line(pending, self.max_bytes)]

    def _text_batches(self, stream: IO[str]) -> Iterator[list[Line]]:
        while line := stream.readline(self.max_bytes + 2):
            if not line.endswith("\n") and len(line) > self.max_bytes:
                size = len(line)
                while (more := stream.readline(CHUNK)) and not more.endswith("\n"):
                    size += len(more)
                yield [LineTooLong(size + len(more.rstrip("\n")))]
            else:
                yield [line.rstrip("\r\n")]


def _line(data: bytearray, max_bytes: int) -> Line:
    line = bytes(data[:-1] if data.endswith(b"\r") else data)
    return line if len(line) <= max_bytes else LineTooLong(len(line))


def stdin_source(stream: IO[str]) -> int | IO[str]:
    """What ``InputLines`` should read for ``stream``: its descriptor when it has one."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and ValueError
        return stream
