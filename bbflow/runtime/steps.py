"""The step runner: one step's guard, attempts (each with its deadline), retries with backoff, fallback.

A step that completes is recorded on the run (``RunState.done``) with what its
undo will need; one that fails after its last attempt and has no fallback
fails the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bbflow.runtime import model, run_events
from bbflow.runtime.calls import action, arguments, compose, cut_by, driver_failure, failure, perform, timed_out
from bbflow.runtime.deadline import Deadline
from bbflow.runtime.journal import Journaled, journaled_call, planner
from bbflow.runtime.ports import Completed, NotSent, RuntimeFailure
from bbflow.runtime.run_state import Completion, RunState


def backoff(retry: model.Retry, failed_attempt: int) -> float:
    """Delay before the attempt after ``failed_attempt`` (1-based): D, 2D, 4D, ... capped."""
    if retry.backoff <= 0:
        return 0.0
    cap = retry.max_backoff if retry.max_backoff is not None else 10 * retry.backoff
    # doublings beyond 1023 are past any cap (and 2 ** 1024 is no float): the product saturates at inf
    return min(retry.backoff * 2.0 ** min(failed_attempt - 1, 1023), cap)


async def run_step(run: RunState, step: model.Step, scope: dict[str, Any], index: tuple[int, ...],
                   deadline: Deadline) -> None:
    """One step: guard, attempts with deadline and backoff, fallback; records its completion.

    ``deadline`` is the one of the task the step runs in (each attempt arms it).
    """
    if run.stopping:  # spawned before the run began to stop, started after
        raise run.stop()
    name = step.name
    if step.when is not None:
        try:
            go = step.when(scope)
        except Exception as exc:
            raise run.fail(failure(exc, "expression", f"{name}: when")) from None
        if not go:
            scope[name] = None
            run_events.step_skip(run, name, index)
            return
    retry = step.retry
    last = 1 + retry.attempts if retry is not None else 1
    attempt = 1
    while True:
        run_events.step_start(run, name, index, attempt)
        outcome = await _attempt(run, step, scope, index, deadline, attempt)
        if outcome is None:
            return
        error = outcome
        run_events.step_error(run, name, index, error, attempt)
        if attempt < last and not run.stopping:
            delay = backoff(retry, attempt)  # type: ignore[arg-type]
            attempt += 1
            run_events.step_retry(run, name, index, attempt, delay)
            if delay > 0:
                await asyncio.sleep(delay)
            if run.stopping:
                raise run.stop()
            continue
        if step.fallback is not None and not run.stopping:
            try:
                value = step.fallback(scope)
            except Exception as exc:
                raise run.fail(failure(exc, "expression", f"{name}: fallback")) from None
            scope[name] = value
            run.done.append(Completion(step, scope, None, value, None, index, False))
            run_events.step_ok(run, name, index, value, fallback=True)
            return
        raise run.fail(error)


async def _attempt(run: RunState, step: model.Step, scope: dict[str, Any], index: tuple[int, ...],
                   deadline: Deadline, attempt: int) -> RuntimeFailure | None:
    """One attempt of a step: None when it completed (and was recorded), else its failure."""
    name = step.name
    call = step.call
    timeout = step.timeout
    args: dict[str, Any] | None = None
    child: RunState | None = None
    journaled: Journaled | None = None
    if timeout is not None:
        deadline.arm(timeout)
    try:
        if type(call) is model.CommandCall:
            args = arguments(call, scope, name)
            robot = run.robot
            if robot is None:
                raise run.no_robot(call.command)
            try:
                if run.journal is not None:
                    journaled = _journaled(run, step, scope, index, attempt)
                value = await journaled_call(robot, call.command, args, timeout, journaled)
            except (RuntimeFailure, TimeoutError):
                raise
            except Exception as exc:  # a port or driver bug still fails only this attempt
                raise driver_failure(call.command, exc) from exc
        elif type(call) is model.ReactorCall:
            value, child = await compose(run, call, scope, name,
                                         None if timeout is None else cut_by(deadline, name, timeout))
        elif type(call) is model.ActionCall and run.journal is not None and step.irreversible is None \
                and run.undo_call(step) is not None:  # an action with an undo is an effect: journaled
            journaled = _journaled(run, step, scope, index, attempt)
            value = await action(run, call, scope, name, journaled)
        else:
            value = await perform(run, call, scope, name)
    except RuntimeFailure as exc:
        return exc
    except TimeoutError:
        return timed_out(name, timeout)
    except asyncio.CancelledError as exc:
        ours = timeout is not None and deadline.expired()
        done = Completed.of(exc)
        if done is not None:  # the command was done at the driver: undone with the rest
            _completed(run, step, scope, index, args, done.value, None)
            if ours:
                return None
            raise
        if not ours:
            in_doubt = not NotSent.of(exc) and type(call) in _EFFECTS  # cut off at the driver: it may have moved
            if in_doubt:
                _cut_off(run, step, scope, index, args)
                if journaled is not None:
                    journaled.cut_off()
            run_events.step_error(run, name, index, run.cancel_reason(name), attempt, in_doubt=in_doubt)
            raise
        return timed_out(name, timeout)
    else:
        _completed(run, step, scope, index, args, value, child)
        return None
    finally:
        if timeout is not None:
            deadline.disarm()


def _completed(run: RunState, step: model.Step, scope: dict[str, Any], index: tuple[int, ...],
               args: dict[str, Any] | None, value: Any, child: RunState | None) -> None:
    """Record a step that completed (for the rollback) and report it."""
    scope[step.name] = value
    if args is not None and not _undo_uses_args(run, step):
        args = None  # only a command's default undo reads them: do not keep them for nothing
    run.done.append(Completion(step, scope, args, value, child, index, True))
    run_events.step_ok(run, step.name, index, value)


#: the calls that reach a driver (an action stands for one): cut off in flight, they may have moved part-way
_EFFECTS = (model.CommandCall, model.ActionCall)


def _cut_off(run: RunState, step: model.Step, scope: dict[str, Any], index: tuple[int, ...],
             args: dict[str, Any] | None) -> None:
    """Record a step cancelled while its command (or action) was at the driver, for the rollback to undo
    like a completed one (as recovery undoes a step in doubt); it has no value (docs/runtime.md)."""
    if step.irreversible is not None or run.undo_call(step) is None:
        return
    if not _undo_uses_args(run, step):
        args = None
    elif args is None:  # an action's, evaluated in the call (the same values: the scope has not changed)
        try:
            args = step.call.args(scope)  # type: ignore[union-attr]
        except Exception:  # they failed in the call too: it never started
            return
    run.done.append(Completion(step, scope, args, None, None, index, True, True))


def _journaled(run: RunState, step: model.Step, scope: Mapping[str, Any], index: tuple[int, ...],
               attempt: int) -> Journaled:
    """The journal's record of one attempt of a command (or action) step, with the undo recovery would run."""
    assert run.journal is not None
    chosen = None if step.irreversible is not None else run.undo_call(step)
    return Journaled(run.journal, run.run_id, "step", step.name, index, attempt, planner(chosen, step.name, scope))


def _undo_uses_args(run: RunState, step: model.Step) -> bool:
    """Whether the undo of a completed command step reads the call's arguments (``args``).

    Only an inherited undo does: the command's default undo, or one marked
    ``inherited`` in the model; an own undo sees the step's scope instead.
    """
    if step.irreversible is not None:
        return False
    undo = step.undo
    if undo is not None:
        return undo.inherited
    spec = run.command_spec(step.call.command)  # type: ignore[union-attr]
    return spec is not None and spec.undo is not None
