"""Deadlines for the hot path: every step attempt and every undo attempt has one.

``Deadline`` behaves like ``async with asyncio.timeout(t)`` around one await
(the task is cancelled at the deadline, the cancellation becomes a timeout,
and a cancellation that comes from elsewhere at the same moment is passed on,
told apart by the task's cancel count) but it is re-armed for the next await
of the same task instead of being rebuilt: its timer is left in place while
it is disarmed, and when it fires early (a later await moved the deadline
on) it just schedules itself again for the current deadline. A chain of
steps, or a rollback of a thousand undos, with the same timeout each costs
one timer instead of one per attempt, no context manager and no extra
coroutine frame (see benchmarks/bench_executor.py).

``within`` is the one-shot form: ``await aw`` under a fresh ``Deadline``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Deadline:
    """A deadline for one await at a time of the task that creates it; ``close`` it when that task is done with it.

    Use::

        deadline.arm(seconds)
        try:
            value = await something
        except asyncio.CancelledError:
            if deadline.expired():   # our cancellation, not somebody else's
                ...timeout...
            raise
        finally:
            deadline.disarm()
    """

    __slots__ = ("_loop", "_task", "_when", "_baseline", "_armed", "_fired", "_handle", "_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        task = asyncio.current_task(loop)
        assert task is not None, "a deadline needs a task"
        self._loop = loop
        self._task = task
        self._when = 0.0  # the current deadline (loop time)
        self._baseline = 0  # the task's cancel count when armed
        self._armed = False
        self._fired = False  # we cancelled the task and the await has not accounted for it yet
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0  # when ``_handle`` fires

    def arm(self, seconds: float) -> None:
        """Start the deadline of the current task's next await: ``seconds`` from now."""
        loop = self._loop
        self._baseline = self._task.cancelling()
        self._when = when = loop.time() + seconds
        self._armed = True
        handle = self._handle
        if handle is not None:
            if self._at <= when:  # fires in time; ``_fire`` moves it on if it comes early
                return
            handle.cancel()
        self._at = when
        self._handle = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._armed:
            return
        if self._when > self._at:  # re-armed since this timer was set: not yet
            self._at = self._when
            self._handle = self._loop.call_at(self._when, self._fire)
            return
        self._fired = True
        self._task.cancel()

    def expired(self) -> bool:
        """In ``except CancelledError`` of the armed await: whether the cancellation was the deadline's.

        False when it was not ours, or ours but another cancellation came at the
        same moment (that one must go on).
        """
        if not self._fired:
            return False
        self._fired = False  # our cancellation is accounted for here
        return self._task.uncancel() <= self._baseline

    def striking(self) -> bool:
        """While the armed await unwinds (before ``expired`` accounts for it): whether the cancellation
        is this deadline's alone. What a composed run awaited under it asks, to say why it was cut short."""
        return self._fired and self._task.cancelling() - 1 <= self._baseline

    def disarm(self) -> None:
        """The await ended (any way): the deadline no longer applies; the timer stays for the next ``arm``."""
        self._armed = False
        if self._fired:  # expired, but the awaited code swallowed the cancellation: balance the count
            self._fired = False
            self._task.uncancel()

    def close(self) -> None:
        """Drop the timer (the task will not arm this deadline again)."""
        self._armed = False
        handle = self._handle
        if handle is not None:
            self._handle = None
            handle.cancel()


async def within(aw: Awaitable[T], seconds: float, loop: asyncio.AbstractEventLoop) -> T:
    """``await aw``, or ``TimeoutError`` once ``seconds`` have passed on ``loop``'s clock."""
    deadline = Deadline(loop)
    deadline.arm(seconds)
    try:
        return await aw
    except asyncio.CancelledError:
        if deadline.expired():
            raise TimeoutError from None
        raise
    finally:
        deadline.disarm()
        deadline.close()
