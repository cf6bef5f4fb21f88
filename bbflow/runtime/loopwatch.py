"""Noticing a driver command that blocks the event loop (``time.sleep``, blocking I/O in an ``async def``).

While a command holds the loop nothing else runs: not other robots, not the
timeout that should stop it (it fires late, once the loop is free again).
``watched(coro, report)`` runs ``coro`` unchanged but times, in real time
(the virtual clock does not advance while the loop is blocked), each stretch
it runs without yielding; the longest over ``BLOCKING`` seconds is passed to
``report`` when the command ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

#: Seconds a command may run without yielding to the event loop before it is reported.
BLOCKING = 0.5


async def watched(coro: Coroutine[Any, Any, Any], report: Callable[[float], None],
                  limit: float = BLOCKING) -> Any:
    """``await coro``, calling ``report(seconds)`` at the end if it once held the loop longer than ``limit``."""
    return await _Watched(coro, report, limit)


class _Watched:
    __slots__ = ("_coro", "_report", "_limit")

    def __init__(self, coro: Coroutine[Any, Any, Any], report: Callable[[float], None], limit: float) -> None:
        self._coro, self._report, self._limit = coro, report, limit

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, longest = self._coro, 0.0
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                start = time.monotonic()
                try:
                    yielded = coro.send(value) if error is None else coro.throw(error)
                except StopIteration as stop:
                    return stop.value
                finally:
                    longest = max(longest, time.monotonic() - start)
                try:
                    value, error = (yield yielded), None
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as exc:  # a cancellation, delivered to the command where it awaits
                    value, error = None, exc
        finally:
            if longest > self._limit:
                self._report(longest)
