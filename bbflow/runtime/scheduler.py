"""Body scheduling: run the nodes of a body, each when the nodes it depends on are done.

At most ``concurrency`` steps of a run are in flight at once (``RunState.free``
slots). A node runs in the task of the body that schedules it when nothing
else of that body can run meanwhile (a plain chain of steps creates no task
at all); otherwise in a child task of the body's ``Crew``. A body that fails
cancels and awaits its children before the failure leaves it.
"""

from __future__ import annotations

from typing import Any

from bbflow.runtime import model
from bbflow.runtime.calls import failure
from bbflow.runtime.crew import Crew
from bbflow.runtime.deadline import Deadline
from bbflow.runtime.exprlib import equal
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.reactor_plan import LET, STEP, SWITCH, BodyPlan
from bbflow.runtime.run_state import RunState
from bbflow.runtime.steps import run_step


async def run_body(run: RunState, plan: BodyPlan, scope: dict[str, Any], index: tuple[int, ...],  # noqa: C901
                   deadline: Deadline) -> Any:
    """Run every node of a body (each when its dependencies are done), then its end.

    ``deadline`` serves the steps that run in this task (not in a child task).
    """
    nodes = plan.nodes
    if nodes:
        kinds = plan.kinds
        dependents = plan.dependents
        waiting = list(plan.indegree)
        # nodes ready to start, first come first started: ``ready[head:]`` (a list, not a deque:
        # a chain never holds more than one)
        ready = list(plan.roots)
        head = 0
        remaining = len(nodes)
        crew: Crew | None = None
        try:
            while True:
                blocked: list[int] = []  # steps that found no free slot
                while head < len(ready):
                    if run.stopping:
                        raise run.stop()
                    i = ready[head]
                    head += 1
                    kind = kinds[i]
                    if kind == LET:
                        _let(run, nodes[i], scope)  # type: ignore[arg-type]
                    else:
                        if kind == STEP:
                            if run.free <= 0:
                                blocked.append(i)
                                continue
                            run.free -= 1
                        if head < len(ready) or blocked or (crew is not None and crew.running):
                            if crew is None:
                                crew = Crew(run.loop)
                            crew.spawn(_node(run, kind, nodes[i], plan.subplans[i], scope, index), i)
                            continue
                        # nothing else of this body can start before this node ends: no task needed
                        if kind == STEP:
                            try:
                                await run_step(run, nodes[i], scope, index, deadline)  # type: ignore[arg-type]
                            finally:
                                run.release()
                        elif kind == SWITCH:
                            await _switch(run, nodes[i], plan.subplans[i], scope, index,  # type: ignore[arg-type]
                                          deadline)
                        else:
                            await _map(run, nodes[i], plan.subplans[i], scope, index,  # type: ignore[arg-type]
                                       deadline)
                    remaining -= 1
                    for j in dependents[i]:
                        waiting[j] -= 1
                        if not waiting[j]:
                            ready.append(j)
                if not remaining:
                    break
                if crew is None:
                    crew = Crew(run.loop)
                ready.clear()
                head = 0
                if blocked:
                    ready.extend(blocked)
                    run.slot_waiters.append(crew)
                await crew.wait()
                for task in crew.finished:
                    i = crew.running.pop(task)
                    if task.cancelled():
                        raise run.fail(RuntimeFailure(f"{nodes[i].name} was cancelled", "cancelled"))
                    exc = task.exception()
                    if exc is not None:
                        raise exc
                    remaining -= 1
                    for j in dependents[i]:
                        waiting[j] -= 1
                        if not waiting[j]:
                            ready.append(j)
                crew.finished.clear()
        finally:
            if crew is not None:
                if crew in run.slot_waiters:
                    run.slot_waiters.remove(crew)
                await crew.close()
    end = plan.body.end
    if end is None:
        return None
    if isinstance(end, model.Fail):
        raise run.fail(RuntimeFailure(end.message, "fail"))
    try:
        return end.expr(scope)
    except Exception as exc:
        raise run.fail(failure(exc, "expression", "return")) from None


async def _node(run: RunState, kind: int, node: Any, subplan: Any, scope: dict[str, Any],
                index: tuple[int, ...]) -> None:
    """A node in a task of its own."""
    deadline = Deadline(run.loop)
    try:
        if kind == STEP:
            try:
                await run_step(run, node, scope, index, deadline)
            finally:
                run.release()
        elif run.stopping:
            raise run.stop()
        elif kind == SWITCH:
            await _switch(run, node, subplan, scope, index, deadline)
        else:
            await _map(run, node, subplan, scope, index, deadline)
    finally:
        deadline.close()


async def _detached_body(run: RunState, plan: BodyPlan, scope: dict[str, Any], index: tuple[int, ...]) -> Any:
    """A body in a task of its own (an iteration of a concurrent ``map``)."""
    deadline = Deadline(run.loop)
    try:
        return await run_body(run, plan, scope, index, deadline)
    finally:
        deadline.close()


def _let(run: RunState, node: model.Let, scope: dict[str, Any]) -> None:
    try:
        scope[node.name] = node.expr(scope)
    except Exception as exc:
        raise run.fail(failure(exc, "expression", node.name)) from None


async def _switch(run: RunState, node: model.Switch, plans: tuple[BodyPlan | None, ...], scope: dict[str, Any],
                  index: tuple[int, ...], deadline: Deadline) -> None:
    try:
        subject = node.subject(scope)
    except Exception as exc:
        raise run.fail(failure(exc, "expression", node.name)) from None
    chosen = plans[-1]
    for case, plan in zip(node.cases, plans):
        if any(equal(subject, value) for value in case.values):  # `true` is not `1`, whatever Python says
            chosen = plan
            break
    if chosen is None:
        raise run.fail(RuntimeFailure(
            f"switch {node.name}: no case matches {subject!r} and there is no default", "expression"))
    scope[node.name] = await run_body(run, chosen, dict(scope), index, deadline)


async def _map(run: RunState, node: model.Map, plan: BodyPlan, scope: dict[str, Any], index: tuple[int, ...],
               deadline: Deadline) -> None:
    try:
        items = list(node.over(scope))
    except Exception as exc:
        raise run.fail(failure(exc, "expression", node.name)) from None
    results: list[Any] = [None] * len(items)
    item = node.item

    def iteration_scope(element: Any) -> dict[str, Any]:
        inner = dict(scope)
        inner[item] = element
        return inner

    if node.concurrency <= 1 or len(items) <= 1:
        for k, element in enumerate(items):
            if run.stopping:
                raise run.stop()
            results[k] = await run_body(run, plan, iteration_scope(element), index + (k,), deadline)
    else:
        crew = Crew(run.loop)
        upcoming = 0
        try:
            while upcoming < len(items) or crew.running:
                while upcoming < len(items) and len(crew.running) < node.concurrency:
                    if run.stopping:
                        raise run.stop()
                    crew.spawn(_detached_body(run, plan, iteration_scope(items[upcoming]), index + (upcoming,)),
                               upcoming)
                    upcoming += 1
                await crew.wait()
                for task in crew.finished:
                    k = crew.running.pop(task)
                    if task.cancelled():
                        raise run.fail(RuntimeFailure(f"{node.name}[{k}] was cancelled", "cancelled"))
                    error = task.exception()
                    if error is not None:
                        raise error
                    results[k] = task.result()
                crew.finished.clear()
        finally:
            await crew.close()
    scope[node.name] = results
