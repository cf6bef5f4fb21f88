"""The cost of one task per robot: the hold and queue per run, and 10,000 queued runs on one robot.

- per run: a 3-step reactor run to its end, one run after another, through
  ``Tasks.run`` (hold, registry, the run's own task) against ``run_reactor``
  awaited directly, on the same no-op robot in the same rounds;
- queue: N runs submitted at once to one robot, so that N - 1 wait in its
  queue; the time per run at 1,000 and at 10,000 (a quadratic queue would make
  the second ten times the first), and the throughput in runs/s.

    python benchmarks/bench_tasks.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import bench_executor
from common import Figure, Stats, async_timer, compare, ratios

from bbflow.runtime.executor import run_reactor
from bbflow.runtime.tasks import Tasks

STEPS = 3


def _one_by_one(runs: int, held: bool) -> Callable[[], Awaitable[Any]]:
    program, reactor = bench_executor.reactor(STEPS, chain=True)
    port = bench_executor.NoopPort()

    async def go() -> None:
        tasks = Tasks()
        for _ in range(runs):
            if held:
                result = await tasks.run(
                    lambda t: run_reactor(program, reactor, {}, robot=port, run_id=t.run_id,
                                          cancel_code=t.cancel_code),
                    name=reactor.name, robot=port.instance)
            else:
                result = await run_reactor(program, reactor, {}, robot=port)
            assert result.ok, result

    return go


def _queued(runs: int) -> Callable[[], Awaitable[Any]]:
    program, reactor = bench_executor.reactor(STEPS, chain=True)
    port = bench_executor.NoopPort()

    async def go() -> None:
        tasks = Tasks(capacities={port.instance: runs})

        async def one() -> Any:
            return await tasks.run(
                lambda t: run_reactor(program, reactor, {}, robot=port, run_id=t.run_id, cancel_code=t.cancel_code),
                name=reactor.name, robot=port.instance)

        async with asyncio.TaskGroup() as group:
            started = [group.create_task(one()) for _ in range(runs)]
        assert all(t.result().ok for t in started)

    return go


def figures(runs: int, queued: tuple[int, ...], repeat: int) -> list[Figure]:
    out = []
    timers = {"run_reactor": async_timer(_one_by_one(runs, False)),
              "Tasks.run (hold, queue, registry)": async_timer(_one_by_one(runs, True))}
    times = compare(timers, repeat=repeat)
    for label in timers:
        against = (("run_reactor", ratios(times, label, "run_reactor")),) if label != "run_reactor" else ()
        out.append(Figure("tasks", f"{runs:,} runs of a {STEPS}-step reactor one after another: {label}",
                          "µs/run", Stats.of(times[label]).scaled(1e6 / runs), against))
    per_run: dict[str, list[float]] = {}
    for n in queued:
        seconds = compare({"q": async_timer(_queued(n))}, repeat=max(1, repeat // 2))["q"]
        per_run[str(n)] = [s / n for s in seconds]
        out.append(Figure("tasks", f"{n:,} runs queued at once on one robot: throughput", "runs/s",
                          Stats.of([n / s for s in seconds])))
    if len(queued) > 1:
        small, large = str(queued[0]), str(queued[-1])
        rounds = min(len(per_run[small]), len(per_run[large]))
        pairs = {k: v[:rounds] for k, v in per_run.items()}
        out.append(Figure("tasks", f"time per queued run, {int(large):,} against {int(small):,} queued", "x",
                          ratios(pairs, large, small)))
    return out


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    from common import table

    print(table(figures(200 if quick else 1_000, (1_000, 10_000), 3 if quick else 7)))
