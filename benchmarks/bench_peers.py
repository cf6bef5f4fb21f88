"""bbflow against its peers, same work: N no-op actions in sequence, and a fan-out of N.

    python benchmarks/bench_peers.py [--steps 1000] [--repeat 5]

- **sequence**: a bbflow reactor of N no-op steps, each after the previous
  one (every step awaits a driver call that returns at once); a py_trees
  ``Sequence`` (with memory) of N behaviours whose ``update`` returns
  ``SUCCESS``, ticked until it is done; a LangGraph ``StateGraph`` chain of N
  nodes that return no update, run with ``ainvoke``.
- **fan-out**: a bbflow reactor of N independent no-op steps
  (``concurrency N``) against a LangGraph graph with N nodes between START and
  END (one superstep running all of them, each adding to a list reducer).

The bbflow steps are bare (no ``timeout``, no ``undo``): the peers have
neither, so both sides do the same work. The graphs, trees and reactors are
built once; a run is executing them to completion. LangGraph runs
asynchronously (its nodes are coroutines): measured faster than its
synchronous ``invoke`` on this machine, which runs fan-out nodes in threads.

A peer that is not installed (``pip install -e '.[bench]'``) gives a row that
says so; the rest runs.
"""

from __future__ import annotations

import argparse
import operator
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from bbflow.runtime import model
from bbflow.runtime.executor import run_reactor

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_executor import NoopPort  # noqa: E402
from common import Figure, Stats, Timer, async_timer, compare, ratios, sync_timer  # noqa: E402

SECTION = "peers"
NOT_INSTALLED = "not installed"


def bbflow_noop(n: int, *, chain: bool) -> Timer:
    """A reactor of ``n`` bare no-op steps (a chain, or all independent), run to completion."""
    steps = tuple(
        model.Step(f"s{i}", model.CommandCall("op", lambda s, i=i: {"tag": i}),
                   deps=(f"s{i - 1}",) if chain and i else ())
        for i in range(n)
    )
    reactor = model.Reactor("Noop", "bench.Noop", (), None, NoopPort.spec.qualname, model.Body(steps, None),
                            concurrency=n)
    program = model.Program()
    program.add(NoopPort.spec)
    program.add(reactor)
    port = NoopPort()

    async def go() -> None:
        result = await run_reactor(program, reactor, {}, robot=port)
        assert result.status == "ok" and len(result.completed) == n, result

    return async_timer(go)


def pytrees_sequence(n: int) -> Timer | None:
    """A py_trees ``Sequence`` of ``n`` no-op behaviours, ticked until it succeeds."""
    try:
        import py_trees
    except ImportError:
        return None
    success = py_trees.common.Status.SUCCESS

    class Noop(py_trees.behaviour.Behaviour):  # type: ignore[misc]
        def update(self) -> Any:
            return success

    root = py_trees.composites.Sequence("sequence", memory=True, children=[Noop(f"n{i}") for i in range(n)])

    def go() -> None:
        ticks = 0
        root.tick_once()
        while root.status != success:
            root.tick_once()
            ticks += 1
            assert ticks <= n, "the sequence does not finish"

    return sync_timer(go)


class _ChainState(TypedDict):
    n: int


class _FanState(TypedDict):
    done: Annotated[list[int], operator.add]


def langgraph_chain(n: int) -> Timer | None:
    """A LangGraph chain of ``n`` no-op nodes, run with ``ainvoke``."""
    try:
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None

    async def node(state: _ChainState) -> dict[str, Any]:
        return {}

    graph = StateGraph(_ChainState)
    for i in range(n):
        graph.add_node(f"n{i}", node)
    graph.add_edge(START, "n0")
    for i in range(n - 1):
        graph.add_edge(f"n{i}", f"n{i + 1}")
    graph.add_edge(f"n{n - 1}", END)
    compiled = graph.compile()
    config = {"recursion_limit": n + 10}  # one superstep per node

    async def go() -> None:
        await compiled.ainvoke({"n": 0}, config)

    return async_timer(go)


def langgraph_fanout(n: int) -> Timer | None:
    """A LangGraph graph of ``n`` parallel no-op nodes (one superstep), run with ``ainvoke``."""
    try:
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None

    def make(i: int) -> Callable[[_FanState], Any]:
        async def node(state: _FanState) -> dict[str, Any]:
            return {"done": [i]}

        return node

    graph = StateGraph(_FanState)
    for i in range(n):
        graph.add_node(f"n{i}", make(i))
        graph.add_edge(START, f"n{i}")
        graph.add_edge(f"n{i}", END)
    compiled = graph.compile()

    async def go() -> None:
        out = await compiled.ainvoke({"done": []})
        assert len(out["done"]) == n, len(out["done"])

    return async_timer(go)


def figures(n: int, repeat: int) -> list[Figure]:
    """The peer figures: µs per action, and each peer's time over bbflow's in the same rounds."""
    out: list[Figure] = []
    shapes = (
        ("sequence", bbflow_noop(n, chain=True),
         (("py_trees Sequence", pytrees_sequence), ("LangGraph chain", langgraph_chain))),
        ("fan-out", bbflow_noop(n, chain=False), (("LangGraph fan-out", langgraph_fanout),)),
    )
    for shape, ours, peers in shapes:
        timers: dict[str, Timer] = {"bbflow": ours}
        missing = []
        for label, make in peers:
            timer = make(n)
            if timer is None:
                missing.append(label)
            else:
                timers[label] = timer
        times = compare(timers, repeat=repeat)
        per_action = 1e6 / n
        out.append(Figure(SECTION, f"{shape} of {n:,}: bbflow reactor", "µs/action",
                          Stats.of(times["bbflow"]).scaled(per_action)))
        for label, _ in peers:
            if label in missing:
                out.append(Figure(SECTION, f"{shape} of {n:,}: {label}", "µs/action", note=NOT_INSTALLED))
                continue
            out.append(Figure(SECTION, f"{shape} of {n:,}: {label}", "µs/action",
                              Stats.of(times[label]).scaled(per_action),
                              ((("bbflow", ratios(times, label, "bbflow"))),)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from common import table

    print(table(figures(args.steps, args.repeat)))


if __name__ == "__main__":
    main()
