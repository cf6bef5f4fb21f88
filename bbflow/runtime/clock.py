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
import math
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
        self._resolution: float = self._clock_resolution

    def time(self) -> float:
        return self._now

    def _advance(self, seconds: float) -> None:
        """Jump to the next timer. asyncio caps ``seconds`` at a day: past that, straight to the timer's time.
        asyncio takes a timer as due when it is before the clock plus its resolution (1 ns), which a float
        far from zero cannot add (past 2**24 s, 194 days): the resolution grows with the clock, else a timer
        due at exactly the clock's time would never be."""
        if seconds <= 0:
            return
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]  # asyncio's heap of timers
        self._now = max(self._now + seconds, scheduled[0].when() if scheduled else 0.0)
        self._clock_resolution = max(self._resolution, math.ulp(self._now))

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


def run_virtual(coro: Coroutine[Any, Any, T], *, start: float = 0.0, grace: float | None = None) -> T:
    """Run ``coro`` to completion on a fresh ``VirtualTimeLoop`` and close the loop.

    Like ``asyncio.run``: remaining tasks are cancelled and async generators
    shut down before the loop closes (see ``run_real`` for ``grace``).
    """
    return _run(VirtualTimeLoop(start), coro, grace)


def run_real(coro: Coroutine[Any, Any, T], *, grace: float | None = None) -> T:
    """``asyncio.run(coro)`` that never hangs on the way out: the tasks still running at the end are
    cancelled and waited for at most ``grace`` seconds (``None``: for as long as they take); one that
    will not end (code that swallows its cancellation) is abandoned, and the loop closed anyway."""
    return _run(asyncio.new_event_loop(), coro, grace)


def _run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], grace: float | None) -> T:
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_all(loop, grace)
            _bounded(loop, loop.shutdown_asyncgens(), grace)
            _bounded(loop, loop.shutdown_default_executor(), grace)
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _bounded(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, Any], grace: float | None) -> None:
    task = loop.create_task(work)
    loop.run_until_complete(asyncio.wait({task}, timeout=grace))
    if not task.done():
        abandon(task)


def _cancel_all(loop: asyncio.AbstractEventLoop, grace: float | None) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if not tasks:
        return
    loop.run_until_complete(asyncio.wait(tasks, timeout=grace))
    for t in tasks:
        if not t.done():
            abandon(t)
        elif not t.cancelled():
            t.exception()  # retrieved, as gather(return_exceptions=True) would


def abandon(task: asyncio.Future[Any]) -> None:
    """Leave ``task`` pending for good (it will not end), without asyncio's "Task was destroyed but it
    is pending" complaint when the loop is closed."""
    if hasattr(task, "_log_destroy_pending"):
        task._log_destroy_pending = False
