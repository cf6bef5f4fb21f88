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


def _bounded_selects(monkeypatch, limit=1000):
    """Fail (instead of spinning for ever) when the loop polls its selector more than ``limit`` times."""
    from bbflow.runtime import clock

    polls = [0]
    select = clock._VirtualSelector.select

    def counted(self, timeout=None):
        polls[0] += 1
        if polls[0] > limit:
            raise AssertionError(f"the virtual clock is stuck at {self._loop.time()} (timeout {timeout})")
        return select(self, timeout)

    monkeypatch.setattr(clock._VirtualSelector, "select", counted)
    return polls


def test_a_timer_far_ahead_fires_and_time_jumps_to_it_at_once(monkeypatch):
    # `schedule x in 10000h`: above 2**24 s a float cannot add asyncio's 1 ns clock resolution, so a timer due at
    # exactly the clock's time was never ready (the loop spun for ever); and time moved a day per poll
    polls = _bounded_selects(monkeypatch)

    async def main(delay):
        await asyncio.sleep(delay)
        return asyncio.get_running_loop().time()

    for delay in (3.6e7, 3.6e23, 1e300):
        assert run_virtual(main(delay)) == delay
    assert polls[0] < 100  # a day a poll: 3.6e7 s alone took 417
