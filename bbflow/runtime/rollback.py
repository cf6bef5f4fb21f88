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
from bbflow.runtime.deadline import within
from bbflow.runtime.durations import format_duration
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


async def rollback(run: "_Run", done: Sequence[Completion]) -> None:
    """Undo ``done`` (in completion order) newest first; failures are recorded on ``run``."""
    for completion in reversed(done):
        if not completion.undoable or completion.step.irreversible is not None:
            continue
        step = completion.step
        undo = step.undo
        if undo is None:
            if completion.child is not None:
                child = completion.child
                before = len(child.undo_errors)
                await rollback(child, child.done)
                run.undo_errors.extend(child.undo_errors[before:])
                continue
            if type(step.call) is not model.CommandCall:
                continue
            spec = run.command_spec(step.call.command)
            if spec is None or spec.undo is None:
                continue
            undo = model.Undo(spec.undo, inherited=True)
        scope = {"args": completion.args, "result": completion.value} if undo.inherited else completion.scope
        await _undo(run, step.name, undo.call, scope, completion.index)


def _deadline(run: "_Run", call: model.Call) -> float:
    if type(call) is model.CommandCall:
        spec = run.command_spec(call.command)
        if spec is not None and spec.timeout is not None:
            return spec.timeout
    return UNDO_TIMEOUT


async def _undo(run: "_Run", name: str, call: model.Call, scope: Any, index: tuple[int, ...]) -> None:
    deadline = _deadline(run, call)
    observing = run.observer is not None
    error = RuntimeFailure("undo was not attempted", "internal")
    for attempt in range(1, UNDO_ATTEMPTS + 1):
        if observing:
            run.emit("undo.start", name, index, {"attempt": attempt})
        try:
            await within(run.perform(call, scope, name, deadline), deadline, run.loop)
        except RuntimeFailure as exc:
            error = exc
        except TimeoutError:
            error = RuntimeFailure(f"undo of {name} timed out after {format_duration(deadline)}", "timeout")
        except asyncio.CancelledError:
            if observing:
                reason = run.cancel_reason(f"undo of {name}")
                run.emit("undo.error", name, index, {"error": reason.to_json(), "attempt": attempt})
            raise
        except Exception as exc:  # an expression of the undo call, or a bug below: still only this undo fails
            error = RuntimeFailure(f"undo of {name}: {str(exc) or type(exc).__name__}", "expression")
        else:
            if observing:
                run.emit("undo.ok", name, index, None)
            return
        if observing:
            run.emit("undo.error", name, index, {"error": error.to_json(), "attempt": attempt})
    run.undo_errors.append(
        UndoFailure(error, step=name, reactor=run.reactor.name, run=run.run_id, attempts=UNDO_ATTEMPTS)
    )
