"""A virtual-time asyncio event loop, for fast and deterministic tests and drills.

On a ``VirtualTimeLoop`` the clock (``loop.time()``) advances only when every
task is waiting: when the loop would block on a timer, it jumps straight to
that timer instead. ``asyncio.sleep``, ``asyncio.timeout``, ``wait_for`` and
``call_later`` all follow it, so a flow with a 10 s timeout and a 5 s backoff
runs in microseconds and always in the same order.

Real I/O still works (the selector is polled without blocking), and work
handed to threads (``asyncio.to_thread``) is waited for in real time, since
virtual time cannot speed up another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class _VirtualSelector(selectors.DefaultSelector):
    """A selector that, instead of sleeping until a timer, tells the loop to jump to it."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None or self._loop._pending_threads:
            # Nothing scheduled (or a thread is working): wait for real I/O, e.g. a
            # thread's wake-up through the self-pipe.
            return super().select(timeout if timeout is not None else None)
        self._loop._advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time moves only when nothing is ready to run."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._pending_threads = 0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def _advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    @contextlib.contextmanager
    def waiting_on_thread(self) -> Iterator[None]:
        """While inside, another thread is working for the loop: time waits for it (a journal commit)."""
        self._pending_threads += 1
        try:
            yield
        finally:
            self._pending_threads -= 1

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:  # type: ignore[override]
        self._pending_threads += 1
        fut = super().run_in_executor(executor, func, *args)

        def done(_: asyncio.Future[Any]) -> None:
            self._pending_threads -= 1

        fut.add_done_callback(done)
        return fut


def run_virtual(coro: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run ``coro`` to completion on a fresh ``VirtualTimeLoop`` and close the loop.

    Like ``asyncio.run``: remaining tasks are cancelled and async generators
    shut down before the loop closes.
    """
    loop = VirtualTimeLoop(start)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
