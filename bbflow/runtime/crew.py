"""A minimal nursery: child tasks that never outlive the code that started them.

``asyncio.TaskGroup`` cancels its *parent* on a child's error and wraps
errors in ``ExceptionGroup``; the executor instead wants to look at each
finished child as it ends (to start the nodes that waited for it) and to
decide itself when to stop. ``Crew`` gives exactly that, with the same
guarantee: ``close`` cancels every child still running and waits until all
have ended, even if the waiting task is cancelled again meanwhile.
``wait_through`` is that guarantee on its own, for any task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


async def wait_through(*tasks: asyncio.Future[Any], on_cancel: Callable[[], None] | None = None) -> bool:
    """Wait until every one of ``tasks`` is done, even if the waiting task is cancelled meanwhile.

    Returns whether it was (the caller re-raises ``CancelledError`` once its own cleanup
    is done); ``on_cancel`` is called at each such cancellation (to stop the work sooner).
    """
    interrupted = False
    while True:
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return interrupted
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            interrupted = True
            if on_cancel is not None:
                on_cancel()


class Crew:
    __slots__ = ("_loop", "running", "finished", "_wake")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        #: child task -> the tag given to ``spawn`` (for the executor: a node index)
        self.running: dict[asyncio.Task[Any], Any] = {}
        #: children that ended and were not yet taken, in the order they ended
        self.finished: list[asyncio.Task[Any]] = []
        self._wake: asyncio.Future[None] | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any], tag: Any) -> None:
        task = self._loop.create_task(coro)
        self.running[task] = tag
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self.finished.append(task)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def wake(self) -> None:
        """Wake ``wait`` without a child having ended (something else changed)."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def wait(self) -> None:
        """Until a child ends (returns at once if one already did) or ``wake`` is called."""
        if self.finished:
            return
        self._wake = self._loop.create_future()
        try:
            await self._wake
        finally:
            self._wake = None

    async def close(self) -> None:
        """Cancel the children still running and wait for all of them to end.

        A cancellation of the waiting task does not cut this short (that would
        leave orphans); it is re-raised once every child has ended.
        """
        if not self.running:
            return
        for task in self.running:
            task.cancel()
        interrupted = await wait_through(*self.running)
        for task in self.running:
            if not task.cancelled():
                task.exception()  # retrieved: asyncio must not warn about it
        self.running.clear()
        self.finished.clear()
        if interrupted:
            raise asyncio.CancelledError
