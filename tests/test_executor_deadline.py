"""``within``: a step attempt's deadline, told apart from other cancellations."""

import asyncio

import pytest

from bbflow.runtime.clock import run_virtual
from bbflow.runtime.deadline import within


def test_a_result_before_the_deadline():
    async def main():
        loop = asyncio.get_running_loop()
        value = await within(asyncio.sleep(1.0, result="done"), 2.0, loop)
        await asyncio.sleep(5.0)  # the timer is gone: nothing cancels us later
        return value, asyncio.current_task().cancelling()

    assert run_virtual(main()) == ("done", 0)


def test_the_deadline_raises_timeout_error_and_leaves_the_cancel_count_balanced():
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await within(asyncio.sleep(10.0), 2.0, loop)
        return loop.time(), asyncio.current_task().cancelling()

    assert run_virtual(main()) == (2.0, 0)


def test_an_outside_cancellation_passes_through():
    async def inner():
        await within(asyncio.sleep(10.0), 5.0, asyncio.get_running_loop())

    async def main():
        task = asyncio.create_task(inner())
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return asyncio.get_running_loop().time()

    assert run_virtual(main()) == 1.0


def test_an_outside_cancellation_at_the_deadline_is_not_swallowed():
    async def inner():
        await within(asyncio.sleep(10.0), 2.0, asyncio.get_running_loop())

    async def main():
        task = asyncio.create_task(inner())
        asyncio.get_running_loop().call_at(2.0, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task

    run_virtual(main())


def test_a_swallowed_expiry_still_balances_the_count():
    async def stubborn():
        try:
            await asyncio.sleep(10.0)
        except asyncio.CancelledError:
            return "swallowed"

    async def main():
        value = await within(stubborn(), 1.0, asyncio.get_running_loop())
        await asyncio.sleep(1.0)
        return value, asyncio.current_task().cancelling()

    assert run_virtual(main()) == ("swallowed", 0)
