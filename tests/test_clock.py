"""The virtual-time loop: time jumps to the next timer, and only then."""

import asyncio
import time

from bbflow.runtime.clock import run_virtual


def test_sleep_advances_virtual_time_without_waiting():
    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - t0

    assert run_virtual(main()) == 3600  # an hour of virtual time; in real time the suite would hang


def test_timers_fire_in_order_of_deadline():
    order = []

    async def sleeper(name, d):
        await asyncio.sleep(d)
        order.append((name, asyncio.get_running_loop().time()))

    async def main():
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sleeper("b", 2.0))
            tg.create_task(sleeper("a", 0.5))
            tg.create_task(sleeper("c", 10.0))

    run_virtual(main())
    assert order == [("a", 0.5), ("b", 2.0), ("c", 10.0)]


def test_timeout_expires_on_virtual_time():
    async def main():
        try:
            async with asyncio.timeout(5):
                await asyncio.sleep(60)
        except TimeoutError:
            return asyncio.get_running_loop().time()
        return None

    assert run_virtual(main()) == 5


def test_threads_are_waited_for_in_real_time():
    async def main():
        return await asyncio.to_thread(lambda: (time.sleep(0.01), 42)[1])

    assert run_virtual(main()) == 42


def test_leftover_tasks_are_cancelled_at_the_end():
    cancelled = []

    async def forever():
        try:
            await asyncio.sleep(1e9)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)

    run_virtual(main())
    assert cancelled == [True]
