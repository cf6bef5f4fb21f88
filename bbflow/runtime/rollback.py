"""Rollback: undo the completed steps of a failed run, newest first, one at a time.

Which undo a completed step gets:

- none if it was skipped (never recorded), completed through its ``fallback``
  (its own effect failed), or is marked ``irreversible``;
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
from typing import TYPE_CHECKING, Any, NamedTuple

from bbflow.runtime import model
from bbflow.runtime.deadline import Deadline
from bbflow.runtime.durations import format_duration
from bbflow.runtime.events import notify
from bbflow.runtime.ports import RuntimeFailure

if TYPE_CHECKING:  # the executor imports this module
    from bbflow.runtime.executor import _Run

UNDO_ATTEMPTS = 3
UNDO_TIMEOUT = 30.0


class Completion(NamedTuple):
    """A step that completed: what its undo needs."""

    step: model.Step
    scope: dict[str, Any]
    args: dict[str, Any] | None  # a command's keyword arguments (for its default undo)
    value: Any
    child: "_Run | None"  # a composed reactor's run
    index: tuple[int, ...]  # map iterations around the step
    undoable: bool  # False when the value came from ``fallback``


class UndoFailure(RuntimeFailure):
    """An undo that failed all its attempts: the last error, and which step it was meant to undo."""

    def __init__(self, error: RuntimeFailure, *, step: str, reactor: str, run: str, attempts: int) -> None:
        super().__init__(error.message, error.code, command=error.command)
        self.step = step
        self.reactor = reactor
        self.run = run
        self.attempts = attempts

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.update(step=self.step, reactor=self.reactor, run=self.run, attempts=self.attempts)
        return out


def driver_failure(command: str, exc: BaseException) -> RuntimeFailure:
    """A port or driver that raised something other than ``RuntimeFailure``: the attempt fails (code ``command``)."""
    return RuntimeFailure(f"{command}: {str(exc) or type(exc).__name__}", "command", command=command)


async def rollback(run: "_Run", done: Sequence[Completion]) -> None:
    """Undo ``done`` (in completion order) newest first; failures are recorded on ``run``.

    Runs in a task of its own; one ``Deadline`` serves every undo attempt of it.
    """
    deadline = Deadline(run.loop)
    try:
        await _undo_all(run, done, deadline)
    finally:
        deadline.close()


async def _undo_all(run: "_Run", done: Sequence[Completion], deadline: Deadline) -> None:
    for completion in reversed(done):
        step = completion.step
        if not completion.undoable or step.irreversible is not None:
            continue
        undo = step.undo
        if undo is not None:
            call = undo.call
            inherited = undo.inherited
        elif completion.child is not None:
            child = completion.child
            before = len(child.undo_errors)
            await _undo_all(child, child.done, deadline)
            run.undo_errors.extend(child.undo_errors[before:])
            continue
        elif type(step.call) is model.CommandCall:
            spec = run.command_spec(step.call.command)
            if spec is None or spec.undo is None:
                continue
            call = spec.undo
            inherited = True
        else:
            continue
        scope = {"args": completion.args, "result": completion.value} if inherited else completion.scope
        await _undo(run, step.name, call, scope, completion.index, deadline)


def _seconds(run: "_Run", call: model.Call) -> float:
    """The deadline of each attempt of an undo: its command's declared timeout, else ``UNDO_TIMEOUT``."""
    if type(call) is model.CommandCall:
        spec = run.command_spec(call.command)
        if spec is not None and spec.timeout is not None:
            return spec.timeout
    return UNDO_TIMEOUT


async def _undo(run: "_Run", name: str, call: model.Call, scope: Any, index: tuple[int, ...],
                deadline: Deadline) -> None:
    seconds = _seconds(run, call)
    observer = run.observer
    robot = run.robot
    error: RuntimeFailure | None = None
    for attempt in range(1, UNDO_ATTEMPTS + 1):
        if observer is not None:
            out = run.event("undo.start", name, index)
            out["attempt"] = attempt
            notify(observer, out)
        deadline.arm(seconds)
        try:
            if type(call) is model.CommandCall and robot is not None:  # the common case, without a detour
                args = run.arguments(call, scope, name)
                try:
                    await robot.call(call.command, args, timeout=seconds)
                except (RuntimeFailure, TimeoutError):
                    raise
                except Exception as exc:  # a port or driver bug
                    raise driver_failure(call.command, exc) from exc
            else:
                await run.perform(call, scope, name, seconds)
        except RuntimeFailure as exc:
            error = exc
        except TimeoutError:
            error = _timed_out(name, seconds)
        except asyncio.CancelledError:
            if not deadline.expired():
                if observer is not None:
                    out = run.event("undo.error", name, index)
                    out["error"] = run.cancel_reason(f"undo of {name}").to_json()
                    out["attempt"] = attempt
                    notify(observer, out)
                raise
            error = _timed_out(name, seconds)
        except Exception as exc:  # an expression of the undo call, or a bug below: still only this undo fails
            error = RuntimeFailure(f"undo of {name}: {str(exc) or type(exc).__name__}", "expression")
        else:
            if observer is not None:
                notify(observer, run.event("undo.ok", name, index))
            return
        finally:
            deadline.disarm()
        if observer is not None:
            out = run.event("undo.error", name, index)
            out["error"] = error.to_json()
            out["attempt"] = attempt
            notify(observer, out)
    assert error is not None
    run.undo_errors.append(
        UndoFailure(error, step=name, reactor=run.reactor.name, run=run.run_id, attempts=UNDO_ATTEMPTS)
    )


def _timed_out(name: str, seconds: float) -> RuntimeFailure:
    return RuntimeFailure(f"undo of {name} timed out after {format_duration(seconds)}", "timeout")
