"""Calls shared by steps and undos: arguments, commands, actions, waits, composed reactors; failures.

A call that goes wrong raises a ``RuntimeFailure`` for the attempt that made
it: a driver's or action's exception becomes one (code ``command`` or
``action``), an error in generated code names its ``.flow`` line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bbflow.runtime import model
from bbflow.runtime.actions import invoke
from bbflow.runtime.deadline import Deadline
from bbflow.runtime.durations import format_duration
from bbflow.runtime.ids import uuid7
from bbflow.runtime.journal.calls import Journaled
from bbflow.runtime.linemap import NOTE_PREFIX, add_flow_note
from bbflow.runtime.ports import ActionResolver, Completed, NotSent, RobotPort, RuntimeFailure, error_text, exited
from bbflow.runtime.run_state import Cut, RunState
from bbflow.runtime.types import TypeMismatch, finite


def failure(exc: BaseException, code: str, what: str) -> RuntimeFailure:
    """``exc`` as a failure; raised in generated code, it names the ``.flow`` line (and gets the note)."""
    if isinstance(exc, RuntimeFailure):
        return exc
    detail = error_text(exc)
    where = add_flow_note(exc)
    if where is None:
        return RuntimeFailure(f"{what}: {detail}", code)
    out = RuntimeFailure(f"{what}: {detail} (at {where})", code)
    out.add_note(NOTE_PREFIX + where)
    return out


def driver_failure(command: str, exc: BaseException) -> RuntimeFailure:
    """A port or driver that raised something other than ``RuntimeFailure``: the attempt fails (code ``command``)."""
    return RuntimeFailure(f"{command}: {error_text(exc)}", "command", command=command)


def timed_out(what: str, seconds: float | None) -> RuntimeFailure:
    """An attempt (of a step, or ``undo of <step>``) that ran out of time."""
    return RuntimeFailure(f"{what} timed out after {format_duration(seconds or 0.0)}", "timeout")


def cut_by(deadline: Deadline, what: str, seconds: float) -> Cut:
    """The ``Cut`` of a composed run awaited under ``deadline`` (the attempt of step or undo ``what``)."""
    return lambda: timed_out(what, seconds) if deadline.striking() else None


class _With(Mapping[str, Any]):
    """A scope plus one more name (the event a ``wait_event`` step is looking at)."""

    __slots__ = ("_base", "_name", "_value")

    def __init__(self, base: Mapping[str, Any], name: str, value: Any) -> None:
        self._base, self._name, self._value = base, name, value

    def __getitem__(self, key: str) -> Any:
        return self._value if key == self._name else self._base[key]

    def __iter__(self) -> Any:
        yield from self._base
        if self._name not in self._base:
            yield self._name

    def __len__(self) -> int:
        return len(self._base) + (self._name not in self._base)


def arguments(call: model.CommandCall | model.ActionCall | model.ReactorCall, scope: Mapping[str, Any],
              name: str) -> dict[str, Any]:
    """A call's keyword arguments; an error in them fails the attempt (code ``expression``)."""
    try:
        return call.args(scope)
    except Exception as exc:
        raise failure(exc, "expression", f"{name}: arguments") from None


async def command(run: RunState, command: str, args: dict[str, Any], timeout: float | None) -> Any:
    robot = run.robot
    if robot is None:
        raise run.no_robot(command)
    try:
        return await robot.call(command, args, timeout=timeout)
    except RuntimeFailure:
        raise
    except Exception as exc:  # a port or driver bug still fails only this attempt
        raise driver_failure(command, exc) from exc


async def compose(run: RunState, call: model.ReactorCall, scope: Mapping[str, Any],
                  name: str, cut: Cut | None = None) -> tuple[Any, RunState]:
    """Run a composed reactor as a child run; its completed steps stay with it for a later undo.
    ``cut``: the deadline of the attempt that awaits it (``cut_by``)."""
    args = arguments(call, scope, name)
    reactor = run.program.reactors.get(call.reactor) or run.program.find("reactors", call.reactor)
    child = run.child(reactor, uuid7(), cut)
    try:
        result = await run.runner(child, args)
    finally:  # undo errors of the child's own rollback belong to this run's story too, a cancelled child's too
        run.undo_errors.extend(child.undo_errors)
    if result.status == "ok":
        return result.value, child
    assert result.error is not None
    raise result.error


async def perform(run: RunState, call: model.Call, scope: Mapping[str, Any], name: str,
                  timeout: float | None = None, cut: Cut | None = None) -> Any:
    """Any call: the way undos run (steps take faster paths for commands and composition)."""
    if isinstance(call, model.ActionCall):
        return await action(run, call, scope, name)
    if isinstance(call, model.CommandCall):
        args = arguments(call, scope, name)
        return await command(run, call.command, args, timeout)
    if isinstance(call, model.ReactorCall):
        value, _ = await compose(run, call, scope, name, cut)
        return value
    if isinstance(call, model.WaitSignal):
        return await wait_signal(run, call, scope, name)
    robot = run.robot
    if robot is None:
        raise RuntimeFailure(f"{run.reactor.name} has no robot to wait on", "state")
    try:
        if isinstance(call, model.WaitState):
            return await robot.wait_state(call.states)
        return await wait_event(robot, call, scope, name)
    except RuntimeFailure:
        raise
    except Exception as exc:
        raise failure(exc, "command", name) from exc


async def wait_event(robot: RobotPort, call: model.WaitEvent, scope: Mapping[str, Any], name: str) -> Any:
    where = call.where
    if where is None:
        return await robot.wait_event(call.event, None)
    problems: list[Exception] = []

    def matches(data: Any) -> bool:
        try:
            return bool(where(_With(scope, name, data)))
        except Exception as exc:  # reported as this attempt's failure, not inside the port
            problems.append(exc)
            return True

    data = await robot.wait_event(call.event, matches)
    if problems:
        raise failure(problems[0], "expression", f"{name}: where")
    return data


async def wait_signal(run: RunState, call: model.WaitSignal, scope: Mapping[str, Any], name: str) -> Any:
    """The envelope of the first signal of the type that enters the runtime from now on and passes ``where``."""
    if run.signals is None:
        raise RuntimeFailure(f"{name}: no signals reach this run (wait_signal({call.signal}))", "state")
    where = call.where
    predicate = None if where is None else (lambda binding: bool(where(_With(scope, name, binding))))
    try:
        return await run.signals.wait(call.signal, predicate,
                                      robot=run.robot.instance if run.robot is not None else None)
    except RuntimeFailure:
        raise
    except Exception as exc:  # the `where` failed
        raise failure(exc, "expression", f"{name}: where") from None


async def action(run: RunState, call: model.ActionCall, scope: Mapping[str, Any], name: str,
                 journaled: Journaled | None = None) -> Any:
    """An action call; with ``journaled`` (a step or an undo that has effects to record), its intent is
    committed before the action is called and its outcome recorded after, as for a command."""
    decl = run.program.actions.get(call.action) or run.program.find("actions", call.action)
    args = arguments(call, scope, name)
    if journaled is not None:
        try:
            await journaled.before(f"action:{decl.name}", args)
        except asyncio.CancelledError:  # before the action was called: nothing moved
            raise asyncio.CancelledError(NotSent()) from None
    try:
        value = await call_action(run.resolver, decl, args)
    except RuntimeFailure as exc:
        if journaled is not None:
            journaled.failed(exc)
        raise
    except asyncio.CancelledError as exc:  # how it ended is recorded too, as the proxy does for a command
        if journaled is not None:
            done = Completed.of(exc)
            if done is not None:
                journaled.succeeded(done.value)
            else:
                journaled.failed(RuntimeFailure(f"action {decl.name} was cancelled", "cancelled"))
        raise
    if journaled is not None:
        journaled.succeeded(value)
    return value


async def call_action(resolver: ActionResolver, decl: model.Action, args: dict[str, Any]) -> Any:
    """Call action ``decl`` (for a step, an undo, or an agent's ``run``): an exception it raises fails with
    code ``action``; its value is conformed to the declared type (``none`` when it declares none: what a
    Python function returns besides is dropped), and a wrong one, or one holding a NaN or an infinite float,
    which no flow's value may, fails with code ``result``. Cancelled, it raises the cancellation, carrying
    the conformed value (``Completed``) if the action finished anyway."""
    try:
        value = await invoke(resolver(decl.target), args)
    except RuntimeFailure:
        raise
    except asyncio.CancelledError as exc:
        done = Completed.of(exc)
        if done is None:
            raise
        try:
            value = _conformed(decl, done.value)
        except RuntimeFailure:  # a bad value: nothing usable to undo it with
            raise exc from None
        raise asyncio.CancelledError(Completed(value)) from None
    except Exception as exc:
        raise failure(exc, "action", f"action {decl.name}") from exc
    except (SystemExit, KeyboardInterrupt) as exc:  # a vendor library's sys.exit(): not the end of the process
        raise RuntimeFailure(f"action {decl.name}: {exited(exc, 'action')}", "action") from None
    return _conformed(decl, value)


def _conformed(decl: model.Action, value: Any) -> Any:
    if decl.result is None:
        return None
    try:
        return finite(decl.result.conform(value))
    except TypeMismatch as exc:
        raise RuntimeFailure(f"action {decl.name} returned a bad value: {exc}", "result") from None
