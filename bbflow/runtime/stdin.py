"""Lines of standard input as an async iterator, for ``bbflow run``'s signals.

A daemon thread reads a file descriptor with ``os.read`` (or, for a stream
without one, such as a test runner's in-memory stdin, its ``readline``) and
hands complete lines to the event loop. Why a thread: standard input may be a terminal, a
pipe or a regular file (``< signals.jsonl``), and the loop's pipe transport
cannot watch regular files. Why ``os.read`` on the raw descriptor and a daemon
thread: a thread blocked on a terminal must never keep the process from
exiting after Ctrl-C, and ``sys.stdin``'s buffered object would be locked by
that thread while the interpreter shuts down.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import IO

CHUNK = 65536


class InputLines:
    """``async for line in InputLines(0)``: each line without its newline; ends at end of input.

    ``source`` is a file descriptor, or a text stream that has none.
    """

    def __init__(self, source: int | IO[str]) -> None:
        self.source = source

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=self._pump, args=(loop, queue), name="bbflow-stdin", daemon=True).start()
        while (line := await queue.get()) is not None:
            yield line

    def _pump(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
        try:
            for line in self._read():
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except OSError:
            pass  # a closed or unreadable descriptor ends the input like end of file
        except RuntimeError:
            return  # the loop is closed: nobody is listening any more
        try:
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:
            pass

    def _read(self) -> Iterator[str]:
        if not isinstance(self.source, int):
            for line in iter(self.source.readline, ""):
                yield line.rstrip("\r\n")
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        while chunk := os.read(self.source, CHUNK):
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            yield from (line.rstrip("\r") for line in lines)
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending.rstrip("\r")


def stdin_source(stream: IO[str]) -> int | IO[str]:
    """What ``InputLines`` should read for ``stream``: its descriptor when it has one."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and ValueError
        return stream
