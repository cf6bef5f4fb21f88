"""``Deadline``: one timer re-armed across the awaits of a task, each await with its own deadline."""

import asyncio

import pytest

from bbflow.runtime.clock import run_virtual
from bbflow.runtime.deadline import Deadline


def count_timers(loop):
    """Count the timers the loop is asked for (``call_at``) from now on."""
    made = []
    real = loop.call_at

    def call_at(when, callback, *args, **kwargs):
        made.append(getattr(callback, "__self__", None))  # who asked: a Deadline, or asyncio itself
        return real(when, callback, *args, **kwargs)

    loop.call_at = call_at
    return made


async def bounded(deadline, seconds, work):
    deadline.arm(seconds)
    try:
        return await work
    except asyncio.CancelledError:
        if deadline.expired():
            raise TimeoutError from None
        raise
    finally:
        deadline.disarm()


def test_a_later_await_moves_the_deadline_on_without_a_new_timer():
    async def main():
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop)
        await bounded(deadline, 10.0, asyncio.sleep(6.0))   # done at 6; its timer at 10 stays
        with pytest.raises(TimeoutError):
            await bounded(deadline, 10.0, asyncio.sleep(100.0))  # its deadline is 16, not 10
        deadline.close()
        return loop.time(), asyncio.current_task().cancelling()

    now, cancelling = run_virtual(main())
    assert now == 16.0 and cancelling == 0


def test_a_chain_of_quick_awaits_shares_one_timer():
    """100 attempts of 1 s, each with a 10 s deadline: the timer moves on about every 10 s, not per attempt."""

    async def main():
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop)
        made = count_timers(loop)
        for _ in range(100):
            await bounded(deadline, 10.0, asyncio.sleep(1.0))
        deadline.close()
        return [owner for owner in made if isinstance(owner, Deadline)]

    assert len(run_virtual(main())) <= 15  # one per attempt would be 100


def test_a_shorter_deadline_replaces_the_timer():
    async def main():
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop)
        await bounded(deadline, 30.0, asyncio.sleep(1.0))
        with pytest.raises(TimeoutError):
            await bounded(deadline, 2.0, asyncio.sleep(100.0))
        deadline.close()
        return loop.time()

    assert run_virtual(main()) == 3.0


def test_a_disarmed_deadline_cancels_nothing():
    async def main():
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop)
        await bounded(deadline, 5.0, asyncio.sleep(1.0))
        await asyncio.sleep(20.0)  # the old timer fires meanwhile and does nothing
        value = await bounded(deadline, 5.0, asyncio.sleep(1.0, result="ok"))
        deadline.close()
        return value, loop.time()

    assert run_virtual(main()) == ("ok", 22.0)


def test_an_outside_cancellation_passes_through_a_rearmed_deadline():
    async def inner(deadline_box):
        deadline = Deadline(asyncio.get_running_loop())
        deadline_box.append(deadline)
        await bounded(deadline, 5.0, asyncio.sleep(1.0))
        await bounded(deadline, 5.0, asyncio.sleep(100.0))

    async def main():
        box = []
        task = asyncio.create_task(inner(box))
        await asyncio.sleep(3.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        box[0].close()
        return asyncio.get_running_loop().time()

    assert run_virtual(main()) == 3.0
