"""Signals per second through one agent, end to end, with p50/p99 latency.

    python benchmarks/bench_agent.py [--signals 50000] [--burst 500]

Each signal goes the whole way a signal from standard input goes: a JSON
object checked at the door (``Bus.admit``: parse, validate the
payload, ``signal.in``), delivered to the agent's mailbox, routed through
the trie (the agent has 50 routes, so the right one must be found), its
``when`` evaluated, and its handler run as a transaction (a ``set`` and an
``if``). Latency is from ``admit`` to the end of the handler's turn.

Two loads, on a real asyncio loop (not the virtual clock):
- one at a time: the next signal is sent when the previous one was handled
  (the latency of an idle agent);
- bursts: ``--burst`` signals are sent at once, and the next burst when the
  agent has handled them (throughput; latency includes waiting in the mailbox
  behind the rest of the burst).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bbflow.runtime import model
from bbflow.runtime.agent import AgentServer
from bbflow.runtime.bus import Bus
from bbflow.runtime.signals import SignalCatalog
from bbflow.runtime.types import FLOAT, INT, Record

PAYLOAD = Record((("sent", FLOAT), ("n", INT)))


def build(latencies: list[float]) -> tuple[Bus, AgentServer]:
    signals = [model.Signal(f"cell.station{i}.report", PAYLOAD) for i in range(50)]
    bus = Bus(SignalCatalog.of(*signals))

    def record(scope: model.Scope) -> int:
        latencies.append(time.perf_counter() - scope["sig"]["data"]["sent"])
        return scope["count"] + 1

    routes = [
        model.Route(f"cell.station{i}.report", (model.Set("count", record),), bind="sig", index=i) for i in range(1, 49)
    ]
    routes.append(
        model.Route(
            "cell.*.report",
            (
                model.If(
                    lambda s: s["sig"]["data"]["n"] % 2 == 0,
                    then=(model.Set("even", lambda s: s["even"] + 1),),
                ),
                model.Set("count", record),
            ),
            bind="sig",
            when=lambda s: s["sig"]["data"]["n"] >= 0,
            index=49,
        )
    )
    routes.append(model.Route("cell.**", (), index=50))
    agent = model.Agent(
        name="Bench",
        qualname="bench.Bench",
        robot=None,
        state=(model.StateField("count", INT, lambda s: 0), model.StateField("even", INT, lambda s: 0)),
        routes=tuple(routes),
    )
    return bus, AgentServer(agent, bus, mailbox_size=100_000)


def signal(n: int) -> dict:
    # station0 is not named by a literal route: it goes through the `cell.*.report` route.
    return {"type": "cell.station0.report", "source": "/bench", "data": {"sent": time.perf_counter(), "n": n}}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def one_at_a_time(count: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    bus, server = build(latencies)
    task = asyncio.create_task(server.serve())
    start = time.perf_counter()
    for n in range(count):
        bus.admit(signal(n))
        await bus.wait_idle()
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert server.state["count"] == count, server.state
    return count / elapsed, latencies


async def bursts(count: int, burst: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    bus, server = build(latencies)
    task = asyncio.create_task(server.serve())
    start = time.perf_counter()
    for first in range(0, count, burst):
        for n in range(first, min(first + burst, count)):
            bus.admit(signal(n))
        await bus.wait_idle()
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert server.state["count"] == count and server.stats.dropped_overflow == 0, server.state
    return count / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=50_000)
    parser.add_argument("--burst", type=int, default=500)
    args = parser.parse_args()
    for name, run in (
        ("one at a time", one_at_a_time(args.signals // 5)),
        (f"bursts of {args.burst}", bursts(args.signals, args.burst)),
    ):
        per_second, latencies = asyncio.run(run)
        p50 = percentile(latencies, 50) * 1e6
        p99 = percentile(latencies, 99) * 1e6
        print(f"{name:>16}: {per_second:>10,.0f} signals/s   p50 {p50:>8,.1f} us   p99 {p99:>8,.1f} us   ({len(latencies):,} signals)")


if __name__ == "__main__":
    main()
