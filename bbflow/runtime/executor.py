"""The reactor executor: runs a ``model.Reactor`` as a saga (docs/runtime.md).

``run_reactor`` conforms the inputs, then runs the reactor's body: a node
starts when every node of its body it depends on has completed or been
skipped, at most ``concurrency`` steps of the run are in flight at once, and
each step attempt has its own deadline, retries and fallback. On a failure
nothing new starts, the steps in flight are cancelled and awaited, and every
completed step that has an undo is undone in reverse order of completion (see
``bbflow.runtime.rollback``). If the robot leaves ``armed`` the run halts:
everything in flight is cancelled and nothing is undone.

Structured concurrency: every task a run creates ends before the run returns
(``bbflow.runtime.crew``). A step runs in the task of the body that schedules
it when nothing else of that body can run meanwhile (a plain chain of steps
creates no task at all); otherwise in a child task.

The parts: the run's state (``bbflow.runtime.run_state``), body scheduling
(``bbflow.runtime.scheduler``), the step runner (``bbflow.runtime.steps``), the
calls steps and undos make (``bbflow.runtime.calls``), rollback
(``bbflow.runtime.rollback``) and the run's events (``bbflow.runtime.run_events``).
This module runs a run as a whole: inputs, the reactor's timeout, failure,
rollback, halt and cancellation.

The user-facing description of all of this is docs/runtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from bbflow.runtime import model, run_events
from bbflow.runtime.actions import resolve_action
from bbflow.runtime.calls import failure
from bbflow.runtime.crew import wait_through
from bbflow.runtime.deadline import Deadline
from bbflow.runtime.durations import format_duration
from bbflow.runtime.ids import uuid7
from bbflow.runtime.journal import ORIGIN, Journal, Origin
from bbflow.runtime.ports import ActionResolver, Observer, RobotPort, RuntimeFailure
from bbflow.runtime.reactor_plan import plan_for
from bbflow.runtime.rollback import rollback
from bbflow.runtime.run_state import RunResult, RunState, UndoFailure
from bbflow.runtime.scheduler import run_body
from bbflow.runtime.signal_waits import SignalWaits
from bbflow.runtime.types import Optional as OptionalType
from bbflow.runtime.types import TypeMismatch

__all__ = ["RunResult", "UndoFailure", "conform_inputs", "run_reactor"]


def run_reactor(
    program: model.Program,
    reactor: str | model.Reactor,
    inputs: Mapping[str, Any],
    *,
    robot: RobotPort | None = None,
    observer: Observer | None = None,
    actions: ActionResolver | None = None,
    run_id: str | None = None,
    cancel_code: Callable[[], str | None] | None = None,
    signals: SignalWaits | None = None,
    journal: Journal | None = None,
) -> Coroutine[Any, Any, RunResult]:
    """Run ``reactor`` (a declaration or its qualified or unambiguous short name) to its end.

    Await it like a coroutine function: it returns the run's coroutine (one
    frame less per run in flight) and, as with a coroutine function, nothing
    is looked up, checked or raised until that is awaited. Then it raises
    ``RuntimeFailure`` with code ``input`` (before ``run.start``) when
    ``inputs`` do not conform to the parameters, ``ValueError`` when the
    reactor's model cannot run, and
    ``asyncio.CancelledError`` when the awaiting task is cancelled (after the
    rollback). Every other outcome is a ``RunResult``.

    ``cancel_code`` tells, once the run's task is cancelled, whether the
    cancellation was a ``cancel`` or a preemption (``bbflow.runtime.tasks``):
    then the run fails with that code and returns its ``RunResult`` after the
    rollback instead of raising. ``signals`` serves ``wait_signal`` steps.
    With ``journal``, every command is journaled (intent before it reaches the
    driver, result after) and the run's start and end are recorded through
    ``observer``'s events (``journal.observe`` must be among the observers).
    """
    run = RunState(program, reactor, robot, observer, actions or resolve_action, run_id or uuid7(), None, execute,
                   journal)
    run.cancel_code = cancel_code
    run.signals = signals
    return execute(run, inputs)


def conform_inputs(reactor: model.Reactor, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs conformed to the parameters' types, defaults applied; ``RuntimeFailure("input")`` if not."""
    names = {p.name for p in reactor.params}
    unknown = [k for k in inputs if k not in names]
    if unknown:
        listed = ", ".join(repr(k) for k in unknown)
        raise RuntimeFailure(f"{reactor.name} has no parameter {listed}", "input")
    out: dict[str, Any] = {}
    for param in reactor.params:
        if param.name in inputs:
            raw = inputs[param.name]
        elif param.default is not None:
            try:
                raw = param.default({})
            except Exception as exc:  # a default that fails when it runs (`x: float = 1 / 0`): bad input, no crash
                raise failure(exc, "input", f"{reactor.name}: the default of input {param.name!r}") from None
        elif isinstance(param.type, OptionalType):
            raw = None
        else:
            raise RuntimeFailure(f"{reactor.name}: missing input {param.name!r}", "input")
        try:
            out[param.name] = param.type.conform(raw, param.name)
        except TypeMismatch as exc:
            raise RuntimeFailure(f"{reactor.name}: input {exc}", "input") from None
    return out


async def execute(run: RunState, raw_inputs: Mapping[str, Any]) -> RunResult:
    """Run ``run`` to its end (the ``Runner`` of every run: composition starts child runs with it)."""
    reactor = run.reactor
    if not isinstance(reactor, model.Reactor):
        run.reactor = reactor = run.program.find("reactors", reactor)
    wrong = _wrong_robot(reactor, run.robot)
    run.loop = asyncio.get_running_loop()
    run.free = max(1, reactor.concurrency)
    inputs = conform_inputs(reactor, raw_inputs)
    plan = plan_for(reactor)
    task = asyncio.current_task()
    assert task is not None, "run_reactor must be awaited in a task"
    run.task = task
    baseline = task.cancelling()
    if run.journal is not None and run.robot is not None and ORIGIN.get() is None:
        ORIGIN.set(Origin(robot=run.robot.instance))  # for the journal's record of the run
    run_events.run_start(run, inputs)
    robot = run.robot
    on_safety = _safety_watch(run)
    unsubscribe: Callable[[], None] | None = robot.on_safety(on_safety) if robot is not None else None
    cancelled = False
    deadline = Deadline(run.loop)  # for the steps that run in this task
    try:
        try:
            if wrong is not None:  # never move a robot through another robot's task (the checker's BBF206)
                raise run.fail(wrong)
            # ``inputs`` is a fresh dict (conformed): it becomes the body's scope
            limit = reactor.timeout
            if limit is None:
                value = await run_body(run, plan, inputs, (), deadline)
            else:
                try:
                    async with asyncio.timeout(limit):
                        value = await run_body(run, plan, inputs, (), deadline)
                except TimeoutError:
                    raise run.fail(RuntimeFailure(
                        f"{reactor.name} did not finish within its timeout of {format_duration(limit)}",
                        "timeout",
                    )) from None
            value = _returned(run, reactor, value)
        except asyncio.CancelledError:
            if run.halt is not None:
                return await _halted(run, baseline, delivered=True)
            run.take_cancel(task)
            error = run.fail(run.cancel_reason(reactor.name))
            cancelled = task.cancelling() > baseline
        except Exception as exc:
            if run.halt is not None:
                return await _halted(run, baseline, delivered=False)
            error = run.failure if run.failure is not None else run.fail(failure(exc, "internal", "executor"))
        else:
            if unsubscribe is not None:
                unsubscribe()
                unsubscribe = None
            run_events.run_ok(run, value)
            return run.result("ok", value)
        if await _shielded_rollback(run):
            run.take_cancel(task)
            cancelled = task.cancelling() > baseline
        if run.halt is not None:
            return await _halted(run, baseline, delivered=False)
        if unsubscribe is not None:
            unsubscribe()
            unsubscribe = None
        run_events.run_failed(run, error)
        if cancelled:
            raise asyncio.CancelledError
        return run.result("failed", None, error)
    finally:
        deadline.close()
        if unsubscribe is not None:
            unsubscribe()


def _returned(run: RunState, reactor: model.Reactor, value: Any) -> Any:
    """The run's value as its declared result type has it: a `switch` whose branches return an int and a
    float, or ``min(1, 2.5)``, gives an int that a ``-> float`` reactor returns as a float."""
    if reactor.result is None:
        return value
    try:
        return reactor.result.conform(value)
    except TypeMismatch as exc:  # the generated code conforms an `any`: a compiler bug, failed like a bad value
        raise run.fail(RuntimeFailure(f"{reactor.name} returned a bad value: {exc}", "expression")) from None


def _wrong_robot(reactor: model.Reactor, robot: RobotPort | None) -> RuntimeFailure | None:
    """A failure when ``reactor`` is bound to another robot interface than the robot it was given (or to
    one, and was given none): run, it would move the wrong robot. Nothing has moved yet."""
    if reactor.robot is None:
        return None
    if robot is None:
        return RuntimeFailure(f"{reactor.name} runs on {reactor.robot.rsplit('.', 1)[-1]}, and no robot is "
                              "bound here", "robot")
    if robot.spec.qualname == reactor.robot:
        return None
    return RuntimeFailure(
        f"{reactor.name} runs on {reactor.robot.rsplit('.', 1)[-1]}, not on robot {robot.instance!r} "
        f"(a {robot.spec.name}): refused before anything moved", "robot")


def _safety_watch(run: RunState) -> Callable[[str, str], None]:
    """The robot's safety callback for ``run``: leaving ``armed`` halts it."""

    def on_safety(old: str, new: str) -> None:
        if new == "armed" or run.halt is not None:
            return
        run.halt = RuntimeFailure(f"{run.reactor.name} halted: the robot left armed ({old} -> {new})", "halted")
        run.stopping = True
        if run.rollback_task is not None:
            run.rollback_task.cancel()
        elif run.task is not None:
            run.cancelled_root = True
            run.task.cancel()

    return on_safety


async def _shielded_rollback(run: RunState) -> bool:
    """Roll back in a task of its own that cancelling the run cannot cut short.

    Returns whether the run's task was cancelled meanwhile (the caller
    re-raises once the rollback is done). A halt cancels the rollback task.
    """
    if not run.done:
        return False
    task = run.loop.create_task(rollback(run, run.done))
    run.rollback_task = task
    if run.halt is not None:  # halted between the failure and here
        task.cancel()
    interrupted = await wait_through(task)
    run.rollback_task = None
    if not task.cancelled():
        task.result()  # an executor bug in the rollback must not go unnoticed
    return interrupted


async def _halted(run: RunState, baseline: int, *, delivered: bool) -> RunResult:
    """Finish a halted run: nothing is undone. Re-raises a cancellation that was not ours."""
    task = run.task
    halt = run.halt
    assert task is not None and halt is not None
    run.take_cancel(task)
    if run.cancelled_root:
        if not delivered:  # our cancellation may still be on its way: take it here
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
        task.uncancel()
    external = task.cancelling() > baseline
    run_events.run_halted(run, halt)
    if external:
        raise asyncio.CancelledError
    return run.result("halted", None, halt)
