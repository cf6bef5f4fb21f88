"""Property: one task per robot, whatever agents start, cancel and preempt, with faults.

Random agents (one to three robots, one or two agent instances each) get random
signals at random virtual times: start a run, start one that preempts, cancel
their runs. Random steps fail. Then, per robot, the commands that reached the
driver form whole runs one after another (a run's commands and undos are never
interleaved with another's), every run ends exactly once (ok, failed with a
code, or never started), and every completed effectful step of a run that
failed (cancelled, preempted, faulted) is undone exactly once, newest first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from runtime_fakes import FakeRobot, ops_spec

from bbflow.runtime import model
from bbflow.runtime.agent import AgentServer, CallRunner
from bbflow.runtime.bus import Bus
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.events import Recorder
from bbflow.runtime.signals import Envelope, SignalCatalog
from bbflow.runtime.tasks import Tasks
from bbflow.runtime.types import ANY

VERBS = ("go", "rush", "stop")


def task_reactor(steps: int) -> model.Reactor:
    """``reactor R(k) on Ops``: ``steps`` chained ``op(tag: "k:i") undo undo(tag: "k:i")``."""
    nodes = []
    for i in range(steps):
        nodes.append(model.Step(
            f"s{i}", model.CommandCall("op", lambda s, i=i: {"tag": f"{s['k']}:{i}"}),
            deps=(f"s{i - 1}",) if i else (),
            undo=model.Undo(model.CommandCall("undo", lambda s, i=i: {"tag": f"{s['k']}:{i}"}))))
    return model.Reactor("R", "t.R", (model.Param("k", ANY),), None, "t.Ops", model.Body(tuple(nodes)))


def worker(name: str) -> model.Agent:
    args = lambda s: {"k": s["g"]["data"]}  # noqa: E731
    call = model.ReactorCall("t.R", args)
    return model.Agent(name, f"t.{name}", "t.Ops", (), (
        model.Route(f"go.{name}", (model.Run(call),), bind="g", index=0),
        model.Route(f"rush.{name}", (model.Run(call, preempt=True),), bind="g", index=1),
        model.Route(f"stop.{name}", (model.Cancel("t.R"),), index=2),
    ))


actions = st.lists(st.tuples(st.integers(0, 5), st.sampled_from(VERBS), st.one_of(st.just(0.0), st.floats(0, 0.05))),
                  min_size=1, max_size=14)


@settings(max_examples=60, deadline=None)
@given(
    robots=st.integers(1, 3),
    per_robot=st.integers(1, 2),
    steps=st.integers(1, 3),
    capacity=st.integers(1, 3),
    plan=actions,
    faults=st.sets(st.tuples(st.integers(0, 14), st.integers(0, 2)), max_size=4),
)
def test_one_task_per_robot_under_cancel_preempt_and_faults(robots, per_robot, steps, capacity, plan, faults):
    check_scenario(robots, per_robot, steps, capacity, plan, faults)


def test_a_run_cancelled_before_its_work_began_ends_once() -> None:
    """Found by the property: `go` and `stop` at once cancel the run before the executor ran it."""
    check_scenario(1, 1, 1, 1, [(0, "go", 0.0), (0, "stop", 0.0)], set())


def test_a_preemption_during_the_rollback_of_a_failure_ends_the_run_once() -> None:
    """Found by the property: the preemption arrives while a faulted run rolls back; it ends once, failed."""
    plan = [(0, "go", 0.0), (0, "go", 0.0), (0, "stop", 0.0), (2, "go", 0.0), (0, "go", 0.03125), (0, "rush", 0.0)]
    check_scenario(2, 2, 3, 1, plan, {(4, 2)})


def note(text: str) -> None:
    """A statistic of the property (``--hypothesis-show-statistics``); nothing in a plain test."""
    with contextlib.suppress(InvalidArgument):
        event(text)


def check_scenario(robots: int, per_robot: int, steps: int, capacity: int, plan: list[tuple[int, str, float]],
                   faults: set[tuple[int, int]]) -> None:
    reactor = task_reactor(steps)
    program = model.Program()
    program.add(ops_spec())
    program.add(reactor)
    names = [f"a{r}_{j}" for r in range(robots) for j in range(per_robot)]
    catalog = SignalCatalog.of(*(model.Signal(f"{v}.{n}", ANY) for v in VERBS for n in names))
    fakes = {f"r{r}": FakeRobot(ops_spec(), instance=f"r{r}", duration=0.01) for r in range(robots)}
    for fake in fakes.values():
        for key, step in faults:
            fake.cue("op", match={"tag": f"{key}:{step}"}, error="jammed")
    recorder = Recorder()

    async def main() -> list[AgentServer]:
        bus = Bus(catalog, observer=recorder)
        tasks = Tasks(capacities={r: capacity for r in fakes}, observer=recorder)
        servers = []
        for name in names:
            robot = fakes[f"r{name[1]}"]
            runner = CallRunner(program, robot=robot, observer=recorder, tasks=tasks, signals=bus.waits)
            servers.append(AgentServer(worker(name), bus, runner=runner, robot_instance=robot.instance, tasks=tasks))
        serving = [asyncio.create_task(s.serve()) for s in servers]
        for key, (who, verb, pause) in enumerate(plan):
            bus.receive(Envelope(type=f"{verb}.{names[who % len(names)]}", source="/test", data=key))
            await asyncio.sleep(pause)
        await bus.wait_idle()
        for t in serving:
            t.cancel()
        await asyncio.gather(*serving, return_exceptions=True)
        return servers

    servers = run_virtual(main())

    # every run ends exactly once
    endings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    started = set()
    for e in recorder.events:
        if e["event"] == "run.start":
            started.add(e["run"])
        if e["event"] in ("run.ok", "run.failed", "run.halted"):
            endings[e["run"]].append(e)
    assert all(len(v) == 1 for v in endings.values()), endings
    assert started <= set(endings)
    assert len(endings) == sum(s.stats.runs_started for s in servers)
    for run_id, (end,) in endings.items():
        if end["event"] == "run.failed":
            note(f"a run failed: {end['error']['code']}{'' if run_id in started else ', never started'}")
            assert end["error"]["code"] in ("cancelled", "preempted", "command", "busy"), end
            if run_id not in started:
                assert end["error"]["code"] in ("cancelled", "preempted", "busy"), end
    run_key = {e["run"]: e["inputs"]["k"] for e in recorder.events if e["event"] == "run.start"}
    failed = {run_key[r] for r, (end,) in endings.items() if end["event"] == "run.failed" and r in started}

    for fake in fakes.values():
        calls = sorted(fake.calls, key=lambda c: (c.start, c.end if c.end is not None else c.start))
        # whole runs one after another: a run's calls form one block, and no two calls overlap in time
        blocks = [int(c.kwargs["tag"].split(":")[0]) for c in calls]
        seen, previous = set(), None
        for key in blocks:
            if key != previous:
                assert key not in seen, f"run {key} interleaved with another on {fake.instance}: {blocks}"
                seen.add(key)
                previous = key
        assert fake.max_in_flight() <= 1
        # every completed op of a failed run, and one cut off in flight (it may have moved), undone once, newest
        # first; nothing undone for a run that succeeded
        for key in set(blocks):
            mine = [c for c in calls if int(c.kwargs["tag"].split(":")[0]) == key]
            done = [c.kwargs["tag"] for c in mine if c.command == "op" and c.outcome in ("ok", "cancelled")]
            undone = [c.kwargs["tag"] for c in mine if c.command == "undo"]
            if key in failed:
                assert undone == done[::-1], (key, done, undone)
            else:
                assert undone == [], (key, undone)
