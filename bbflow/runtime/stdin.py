"""Lines of standard input (or any file descriptor) as an async iterator, for ``bbflow run``'s signals.

A daemon thread reads the descriptor with ``os.read`` and hands complete
lines to the event loop. Why a thread: standard input may be a terminal, a
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
from collections.abc import AsyncIterator

CHUNK = 65536


class FdLines:
    """``async for line in FdLines(0)``: each line without its newline; ends at end of input."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._queue: asyncio.Queue[str | None] | None = None
        self._thread: threading.Thread | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._thread = threading.Thread(target=self._pump, args=(loop, self._queue), name="bbflow-stdin", daemon=True)
        self._thread.start()
        while (line := await self._queue.get()) is not None:
            yield line

    def _pump(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            while chunk := os.read(self.fd, CHUNK):
                pending += decoder.decode(chunk)
                *lines, pending = pending.split("\n")
                for line in lines:
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            pending += decoder.decode(b"", final=True)
            if pending:
                loop.call_soon_threadsafe(queue.put_nowait, pending)
        except OSError:
            pass  # a closed or unreadable descriptor ends the input like end of file
        except RuntimeError:
            return  # the loop is closed: nobody is listening any more
        try:
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:
            pass
