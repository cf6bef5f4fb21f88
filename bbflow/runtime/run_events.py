"""The events of a reactor run: one function builds and sends each kind (names in ``events.RUN_EVENTS``).

Every event has ``event``, ``reactor``, ``step`` (None for the run's own
events), ``run`` and ``time``; ``parent`` for a composed reactor's run and
``index`` inside ``map`` iterations; then the fields of its kind (see
docs/runtime.md). Nothing is built when the run has no observer.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

from bbflow.runtime.events import jsonable, notify
from bbflow.runtime.ports import Observer, RuntimeFailure
from bbflow.runtime.run_state import RunState

#: The W3C ``traceparent`` of the signal whose turn started the runs of this context (an agent's run
#: task sets it): a top-level run's ``run.start`` carries it, so that the run's trace hangs off the signal.
TRACEPARENT: ContextVar[str | None] = ContextVar("bbflow_traceparent", default=None)


def _event(run: RunState, event: str, step: str | None, index: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event": event,
        "reactor": run.reactor.name,
        "step": step,
        "run": run.run_id,
        "time": run.loop.time(),
    }
    if run.parent is not None:
        out["parent"] = run.parent
    if index:
        out["index"] = list(index)
    return out


# --- the run ------------------------------------------------------------------------------


def run_start(run: RunState, inputs: dict[str, Any]) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "run.start", None, ())
        out["inputs"] = jsonable(inputs)
        if run.robot is not None:
            out["robot"] = run.robot.instance  # the robot instance the run holds (its parent's, when composed)
        if run.parent is None and (traceparent := TRACEPARENT.get()) is not None:
            out["traceparent"] = traceparent
        notify(observer, out)


def run_ok(run: RunState, value: Any) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "run.ok", None, ())
        out["result"] = jsonable(value)
        notify(observer, out)


def run_failed(run: RunState, error: RuntimeFailure) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "run.failed", None, ())
        out["error"] = error.to_json()
        out["undo_errors"] = [u.to_json() for u in run.undo_errors]
        notify(observer, out)


def run_halted(run: RunState, halt: RuntimeFailure) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "run.halted", None, ())
        out["completed"] = list(run.completed())
        out["undone"] = list(run.undone)
        out["undo_errors"] = [u.to_json() for u in run.undo_errors]
        out["error"] = halt.to_json()
        notify(observer, out)


def command_event(observer: Observer | None, event: str, run: str, command: str, robot: str, **fields: Any) -> None:
    """An event of an agent's command run (a run of one step): ``command`` instead of ``reactor``; its
    ``run.start`` carries the turn's ``traceparent`` as a reactor run's does."""
    if observer is None:
        return
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {"event": event, "reactor": None, "step": None, "run": run, "time": loop.time(),
                           "command": command, "robot": robot, **fields}
    if event == "run.start" and (traceparent := TRACEPARENT.get()) is not None:
        out["traceparent"] = traceparent
    notify(observer, out)


# --- steps --------------------------------------------------------------------------------


def step_skip(run: RunState, step: str, index: tuple[int, ...]) -> None:
    if (observer := run.observer) is not None:
        notify(observer, _event(run, "step.skip", step, index))


def step_start(run: RunState, step: str, index: tuple[int, ...], attempt: int) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "step.start", step, index)
        out["attempt"] = attempt
        notify(observer, out)


def step_ok(run: RunState, step: str, index: tuple[int, ...], value: Any, *, fallback: bool = False) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "step.ok", step, index)
        out["result"] = jsonable(value)
        if fallback:
            out["fallback"] = True
        notify(observer, out)


def step_error(run: RunState, step: str, index: tuple[int, ...], error: RuntimeFailure, attempt: int, *,
               in_doubt: bool = False) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "step.error", step, index)
        out["error"] = error.to_json()
        out["attempt"] = attempt
        if in_doubt:  # cut off in flight: its command (or action) was at the driver and may have moved
            out["in_doubt"] = True
        notify(observer, out)


def step_retry(run: RunState, step: str, index: tuple[int, ...], attempt: int, delay: float) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "step.retry", step, index)
        out["attempt"] = attempt
        out["delay"] = delay
        notify(observer, out)


# --- undos --------------------------------------------------------------------------------


def undo_start(run: RunState, step: str, index: tuple[int, ...], attempt: int, *, in_doubt: bool = False) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "undo.start", step, index)
        out["attempt"] = attempt
        if in_doubt:  # the undo of a step cut off in flight
            out["in_doubt"] = True
        notify(observer, out)


def undo_ok(run: RunState, step: str, index: tuple[int, ...], attempt: int) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "undo.ok", step, index)
        out["attempt"] = attempt
        notify(observer, out)


def undo_error(run: RunState, step: str, index: tuple[int, ...], error: RuntimeFailure, attempt: int) -> None:
    if (observer := run.observer) is not None:
        out = _event(run, "undo.error", step, index)
        out["error"] = error.to_json()
        out["attempt"] = attempt
        notify(observer, out)
