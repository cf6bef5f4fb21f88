"""Noticing a driver command that blocks the event loop."""

import asyncio
import time

import pytest

from bbflow.runtime.loopwatch import watched


def test_a_stretch_without_yielding_longer_than_the_limit_is_reported_once_at_the_end():
    reports = []

    async def blocks():
        await asyncio.sleep(0)
        time.sleep(0.02)
        await asyncio.sleep(0)
        return "done"

    assert asyncio.run(watched(blocks(), reports.append, limit=0.01)) == "done"
    assert len(reports) == 1 and reports[0] >= 0.02


def test_a_command_that_awaits_is_not_reported_and_its_errors_pass_through():
    reports = []

    async def fails():
        await asyncio.sleep(0.001)
        raise OSError("servo fault")

    with pytest.raises(OSError, match="servo fault"):
        asyncio.run(watched(fails(), reports.append, limit=0.5))
    assert reports == []


def test_a_cancellation_reaches_the_command_where_it_awaits():
    seen = []

    async def moves():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("stopped")
            raise

    async def main():
        task = asyncio.create_task(watched(moves(), lambda s: None))
        await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["stopped"]
