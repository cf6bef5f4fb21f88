"""Rollback: undo the completed steps of a failed run, newest first, one at a time.

Which undo a completed step gets:

- none if it was skipped (never recorded), completed through its ``fallback``
  (its own effect failed), or is marked ``irreversible``;
- a step cut off in flight (cancelled while its command or action was at the
  driver: it may have moved part-way) is undone in its place like a completed
  one, without its result: an undo that needs that result is not run blindly
  but recorded as an undo error (code ``in_doubt``, 0 attempts);
- its own ``undo`` if it has one, run in the step's scope (which holds the
  step's own result under its name);
- else, for a robot command, the command's declared default undo, run with
  the scope ``{"args": <the call's arguments>, "result": <its result>}``;
- else, for a composed reactor, the child run's own completed steps, rolled
  back as a unit at this position (with the child's run id in the events).

Each undo attempt has a deadline: the undo command's declared ``timeout``, else
``UNDO_TIMEOUT`` (30 s). An undo that fails (error, exception or deadline) is
tried again at once, ``UNDO_ATTEMPTS`` (3) attempts in all, and then recorded
as an ``UndoFailure``; the rollback goes on with the next step either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bbflow.runtime import model, run_events
from bbflow.runtime.actions import resolve_action
from bbflow.runtime.calls import action, arguments, cut_by, driver_failure, perform, timed_out
from bbflow.runtime.crew import wait_through
from bbflow.runtime.deadline import Deadline
from bbflow.runtime.journal import Journal, Journaled, journaled_call
from bbflow.runtime.ports import Completed, Observer, RobotPort, RuntimeFailure, error_text
from bbflow.runtime.run_state import Completion, Runner, RunState, UndoFailure

UNDO_ATTEMPTS = 3
UNDO_TIMEOUT = 30.0


async def rollback(run: RunState, done: Sequence[Completion]) -> None:
    """Undo ``done`` (in completion order) newest first; failures are recorded on ``run``.

    Runs in a task of its own; one ``Deadline`` serves every undo attempt of it.
    """
    deadline = Deadline(run.loop)
    try:
        await _undo_all(run, done, deadline)
    finally:
        deadline.close()


async def undo_command_cut_off(robot: RobotPort, command: str, args: dict[str, Any], *, run_id: str,
                               observer: Observer | None, journal: Journal | None,
                               runner: Runner) -> tuple[UndoFailure, ...]:
    """Undo an agent's command (a run of one step) cut off in flight, as a reactor's rollback undoes a step cut
    off in flight: its command's default undo, with the call's arguments, or an undo error if that undo needs
    the result. Shielded: a further cancel waits for it. Its events name ``command`` (``reactor`` null)."""

    def as_command(sink: Observer) -> Observer:
        def emit(event: dict[str, Any]) -> None:
            event.update(reactor=None, command=command, robot=robot.instance)
            sink(event)
        return emit

    reactor = model.Reactor(command, command, (), None, None, model.Body((), None))
    run = RunState(model.Program(), reactor, robot, None if observer is None else as_command(observer), resolve_action,
                   run_id, None, runner, journal)
    run.loop = asyncio.get_running_loop()
    step = model.Step(command, model.CommandCall(command, lambda scope: args))
    task = run.loop.create_task(rollback(run, [Completion(step, {}, args, None, None, (), True, True)]))
    await wait_through(task)
    task.result()
    return tuple(run.undo_errors)


async def _undo_all(run: RunState, done: Sequence[Completion], deadline: Deadline) -> None:
    for completion in reversed(done):
        step = completion.step
        if not completion.undoable or step.irreversible is not None:
            continue
        if step.undo is None and completion.child is not None:
            child = completion.child
            before, undone = len(child.undo_errors), len(child.undone)
            try:
                await _undo_all(child, child.done, deadline)
            finally:
                run.undo_errors.extend(child.undo_errors[before:])
                run.undone.extend(child.undone[undone:])
            continue
        chosen = run.undo_call(step)
        if chosen is None:
            continue
        call, inherited = chosen
        if not completion.in_doubt:
            scope = {"args": completion.args, "result": completion.value} if inherited else completion.scope
        else:  # cut off in flight: undone without the result it never got (``scope`` lacks the step's name)
            scope = {"args": completion.args} if inherited else completion.scope
            if _needs(call, scope, "result" if inherited else step.name):
                _not_undone(run, step.name, completion.iterations)
                continue
        await _undo(run, step.name, call, scope, completion.iterations, deadline, completion.in_doubt)


def _needs(call: model.Call, scope: Any, name: str) -> bool:
    """Whether the arguments of undo ``call`` read ``name``, which ``scope`` does not hold."""
    if not isinstance(call, (model.CommandCall, model.ActionCall, model.ReactorCall)):
        return False
    try:
        call.args(scope)
    except KeyError as exc:
        return exc.args == (name,)
    except Exception:  # another error of the undo's arguments: the undo fails with it, as any
        return False
    return False


def _not_undone(run: RunState, name: str, index: tuple[int, ...]) -> None:
    """A step cut off in flight whose undo needs its result: it cannot be undone blindly, and is not left
    un-undone silently either (recovery holds such a run for the operator; a live run reports it)."""
    error = RuntimeFailure(f"undo of {name}: {name} was cut off in flight (it may have moved part-way) and its "
                           f"undo needs its result, which it never got: not undone, check the robot", "in_doubt")
    run_events.undo_error(run, name, index, error, 0)
    run.undo_errors.append(UndoFailure(error, step=name, reactor=run.reactor.name, run=run.run_id, attempts=0))


def _seconds(run: RunState, call: model.Call) -> float:
    """The deadline of each attempt of an undo: its command's declared timeout, else ``UNDO_TIMEOUT``."""
    if type(call) is model.CommandCall:
        spec = run.command_spec(call.command)
        if spec is not None and spec.timeout is not None:
            return spec.timeout
    return UNDO_TIMEOUT


async def _undo(run: RunState, name: str, call: model.Call, scope: Any, index: tuple[int, ...],
                deadline: Deadline, in_doubt: bool) -> None:
    seconds = _seconds(run, call)
    error: RuntimeFailure | None = None
    for attempt in range(1, UNDO_ATTEMPTS + 1):
        run_events.undo_start(run, name, index, attempt, in_doubt=in_doubt)
        error = await _attempt(run, name, call, scope, index, deadline, seconds, attempt)
        if error is None:
            run.undone.append(name)
            run_events.undo_ok(run, name, index, attempt)
            return
        run_events.undo_error(run, name, index, error, attempt)
    assert error is not None
    run.undo_errors.append(
        UndoFailure(error, step=name, reactor=run.reactor.name, run=run.run_id, attempts=UNDO_ATTEMPTS)
    )


async def _attempt(run: RunState, name: str, call: model.Call, scope: Any, index: tuple[int, ...],
                   deadline: Deadline, seconds: float, attempt: int) -> RuntimeFailure | None:
    """One attempt of an undo: None when it succeeded, else its failure."""
    robot = run.robot
    deadline.arm(seconds)
    try:
        if type(call) is model.CommandCall and robot is not None:  # the common case, without a detour
            args = arguments(call, scope, name)
            journaled = None if run.journal is None else Journaled(run.journal, run.run_id, "undo", name, index,
                                                                   attempt)
            try:
                await journaled_call(robot, call.command, args, seconds, journaled)
            except (RuntimeFailure, TimeoutError):
                raise
            except Exception as exc:  # a port or driver bug
                raise driver_failure(call.command, exc) from exc
        elif type(call) is model.ActionCall and run.journal is not None:  # done, it is not redone at recovery
            await action(run, call, scope, name, Journaled(run.journal, run.run_id, "undo", name, index, attempt))
        else:
            await perform(run, call, scope, name, seconds, cut_by(deadline, f"undo of {name}", seconds))
    except RuntimeFailure as exc:
        return exc
    except TimeoutError:
        return timed_out(f"undo of {name}", seconds)
    except asyncio.CancelledError as exc:
        if not deadline.expired():
            run_events.undo_error(run, name, index, run.cancel_reason(f"undo of {name}"), attempt)
            raise
        if Completed.of(exc) is not None:  # the driver finished the undo as its deadline struck: it is done
            return None
        return timed_out(f"undo of {name}", seconds)
    except Exception as exc:  # an expression of the undo call, or a bug below: still only this undo fails
        return RuntimeFailure(f"undo of {name}: {error_text(exc)}", "expression")
    finally:
        deadline.disarm()
    return None
