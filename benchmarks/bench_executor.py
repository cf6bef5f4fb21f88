"""Per-step overhead of the reactor executor.

Compares ``run_reactor`` with (a) a hand-written asyncio saga that has what the
executor guarantees at its simplest: a per-step timeout, an undo list and a
reverse rollback, and (b) a bare chain of awaits (fan-out: a bare TaskGroup),
on a chain of N and a fan-out of N no-op driver calls (the driver returns at
once, so only the orchestration is measured). Runs on the ordinary asyncio
loop, in real time.

    python benchmarks/bench_executor.py [--steps 1000] [--runs 5]

Prints median, min and max wall time of ``--runs`` runs and the ratios of the
medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bbflow.runtime import model
from bbflow.runtime.events import Recorder
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.types import ANY

TIMEOUT = 10.0


class NoopPort:
    """A RobotPort whose commands do nothing and return at once."""

    spec = model.Robot("Bench", "bench.Bench", ("idle",), (), {
        "op": model.Command("op", (model.Param("tag", ANY),), ANY, timeout=TIMEOUT),
        "undo": model.Command("undo", (model.Param("tag", ANY),), ANY, timeout=TIMEOUT),
    }, {})
    instance = "bench"
    safety = "armed"
    state = "idle"

    async def call(self, command: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
        return kwargs["tag"]

    async def wait_state(self, states: tuple[str, ...]) -> str:
        return self.state

    async def wait_event(self, event: str, predicate: Any = None) -> Any:
        raise NotImplementedError

    def on_safety(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return lambda: None

    on_state = on_safety
    on_event = on_safety  # type: ignore[assignment]


def reactor(n: int, *, chain: bool) -> tuple[model.Program, model.Reactor]:
    steps = []
    for i in range(n):
        steps.append(model.Step(
            f"s{i}",
            model.CommandCall("op", lambda s, i=i: {"tag": i}),
            deps=(f"s{i - 1}",) if chain and i else (),
            timeout=TIMEOUT,
            undo=model.Undo(model.CommandCall("undo", lambda s, i=i: {"tag": i})),
        ))
    r = model.Reactor("Bench", "bench.Bench", (), None, "bench.Bench", model.Body(tuple(steps), None),
                      concurrency=n)
    program = model.Program()
    program.add(NoopPort.spec)
    program.add(r)
    return program, r


async def saga_chain(port: NoopPort, n: int) -> None:
    done: list[tuple[int, Any]] = []
    try:
        for i in range(n):
            async with asyncio.timeout(TIMEOUT):
                result = await port.call("op", {"tag": i}, timeout=TIMEOUT)
            done.append((i, result))
    except BaseException:
        for i, _ in reversed(done):
            await port.call("undo", {"tag": i}, timeout=TIMEOUT)
        raise


async def saga_fanout(port: NoopPort, n: int) -> None:
    done: list[tuple[int, Any]] = []

    async def one(i: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            result = await port.call("op", {"tag": i}, timeout=TIMEOUT)
        done.append((i, result))

    try:
        async with asyncio.TaskGroup() as tg:
            for i in range(n):
                tg.create_task(one(i))
    except BaseException:
        for i, _ in reversed(done):
            await port.call("undo", {"tag": i}, timeout=TIMEOUT)
        raise


async def bare_chain(port: NoopPort, n: int) -> None:
    for i in range(n):
        await port.call("op", {"tag": i})


async def bare_fanout(port: NoopPort, n: int) -> None:
    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(port.call("op", {"tag": i}))


def timed(make: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        async def once() -> float:
            start = time.perf_counter()
            await make()
            return time.perf_counter() - start

        times.append(asyncio.run(once()))
    return times


def executor(program: model.Program, r: model.Reactor, port: NoopPort, observe: bool) -> Callable[[], Awaitable[Any]]:
    async def go() -> None:
        result = await run_reactor(program, r, {}, robot=port, observer=Recorder() if observe else None)
        assert result.status == "ok", result

    return go


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    n, runs = args.steps, args.runs
    port = NoopPort()
    print(f"{n} no-op steps, {runs} runs each, Python {sys.version.split()[0]}")
    print(f"{'shape':8} {'implementation':22} {'median ms':>10} {'min':>8} {'max':>8} {'us/step':>8} "
          f"{'x saga':>7} {'x bare':>7}")
    for shape, chain in (("chain", True), ("fan-out", False)):
        program, r = reactor(n, chain=chain)
        rows = [
            ("bare awaits" if chain else "bare TaskGroup", bare_chain if chain else bare_fanout),
            ("hand-written saga", saga_chain if chain else saga_fanout),
        ]
        results: dict[str, list[float]] = {}
        for label, fn in rows:
            results[label] = timed(lambda fn=fn: fn(port, n), runs)
        results["run_reactor"] = timed(executor(program, r, port, False), runs)
        results["run_reactor + events"] = timed(executor(program, r, port, True), runs)
        bare = statistics.median(results[rows[0][0]])
        saga = statistics.median(results["hand-written saga"])
        for label, times in results.items():
            med = statistics.median(times)
            print(f"{shape:8} {label:22} {med * 1e3:10.2f} {min(times) * 1e3:8.2f} {max(times) * 1e3:8.2f} "
                  f"{med / n * 1e6:8.2f} {med / saga:7.2f} {med / bare:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
