"""``within``: await something with a deadline, for the hot path of every step attempt.

It behaves like ``async with asyncio.timeout(t): return await aw`` (the task
is cancelled at the deadline, the cancellation becomes ``TimeoutError``, and a
cancellation that comes from elsewhere at the same moment is passed on, told
apart by the task's cancel count) but costs one timer and no context manager
object, which is a third of the executor's per-step overhead on a chain of
no-op steps (see benchmarks/bench_executor.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


def _expire(task: asyncio.Task[Any], fired: list[bool]) -> None:
    fired.append(True)
    task.cancel()


async def within(aw: Awaitable[T], seconds: float, loop: asyncio.AbstractEventLoop) -> T:
    """``await aw``, or ``TimeoutError`` once ``seconds`` have passed on ``loop``'s clock."""
    task = asyncio.current_task(loop)
    assert task is not None
    fired: list[bool] = []
    baseline = task.cancelling()
    handle = loop.call_at(loop.time() + seconds, _expire, task, fired)
    try:
        return await aw
    except asyncio.CancelledError:
        if fired:
            fired.clear()  # our cancellation is accounted for here
            if task.uncancel() <= baseline:
                raise TimeoutError from None
        raise
    finally:
        handle.cancel()
        if fired:  # expired, but the awaited code swallowed the cancellation: balance the count
            task.uncancel()
