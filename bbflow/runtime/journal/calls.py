"""One journaled call: what the robot proxy records around a command sent for a step or an undo.

The executor sets ``JOURNALED`` (a context variable) around a step attempt or
an undo attempt of a journaled run; the proxy, when it is about to hand the
command to the driver (armed, allowed, its category slot taken), awaits
``before`` (the intent is committed), then calls ``succeeded`` or ``failed``.
Without a journal the variable is unset and the proxy does one lookup.

A step's intent carries the undo that recovery would run if the step turned
out *in doubt* (intent without result), evaluated without the step's result:
when the undo's arguments need that result, the intent says so instead
(``hold``) and recovery leaves the run for an operator. The step's result
record carries its undo evaluated with the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from bbflow.runtime import model
from bbflow.runtime.journal.journal import Journal
from bbflow.runtime.ports import RobotPort, RuntimeFailure

#: ``plan(args, value, has_value)`` -> (undo plan or None, why it cannot be computed or None)
Planner = Callable[[Any, Any, bool], "tuple[dict[str, Any] | None, str | None]"]


class Journaled:
    """The journal's side of one command call (one attempt)."""

    __slots__ = ("journal", "run", "kind", "step", "index", "attempt", "plan", "seq", "args", "held")

    def __init__(self, journal: Journal, run: str, kind: str, step: str, index: tuple[int, ...], attempt: int,
                 plan: Planner | None = None) -> None:
        self.journal = journal
        self.run = run
        self.kind = kind  # "step" or "undo"
        self.step = step
        self.index = index
        self.attempt = attempt
        self.plan = plan
        self.seq = 0
        self.args: Any = None
        self.held = False  # the undo could not be evaluated before the result

    async def before(self, target: str, args: Mapping[str, Any]) -> None:
        """Commit the intent; raises ``JournalFailed`` when the journal cannot record it."""
        self.args = args
        undo, hold = self.plan(args, None, False) if self.plan is not None else (None, None)
        self.held = hold is not None
        self.seq = await self.journal.intent(self.run, self.kind, self.step, self.index, self.attempt, target,
                                             args, undo, hold)

    def succeeded(self, value: Any) -> None:
        if self.seq:
            # an undo evaluated without the result does not depend on it: the intent has it already
            undo = self.plan(self.args, value, True)[0] if self.plan is not None and self.held else None
            self.journal.returned(self.seq, True, value, None, undo)

    def failed(self, failure: RuntimeFailure) -> None:
        if self.seq:
            self.journal.returned(self.seq, False, None, failure.to_json())

    def cut_off(self) -> None:
        """The call, recorded as failed when it was cancelled, was cut off at the driver: in doubt."""
        if self.seq:
            self.journal.cut_off(self.seq)


JOURNALED: ContextVar[Journaled | None] = ContextVar("bbflow_journaled_call", default=None)


async def journaled_call(robot: RobotPort, command: str, args: dict[str, Any], timeout: float | None,
                         journaled: Journaled | None) -> Any:
    """``robot.call`` with ``journaled`` (None: no journal) as the journal's side of it: the proxy commits
    its intent before the command reaches the driver, and records how it ended."""
    if journaled is None:
        return await robot.call(command, args, timeout=timeout)
    token = JOURNALED.set(journaled)
    try:
        return await robot.call(command, args, timeout=timeout)
    finally:
        JOURNALED.reset(token)


_MISSING: Any = object()


class _Own(Mapping[str, Any]):
    """A step's scope with its own result set to ``value``, or hidden (``_MISSING``: not known yet)."""

    __slots__ = ("_base", "_name", "_value")

    def __init__(self, base: Mapping[str, Any], name: str, value: Any) -> None:
        self._base, self._name, self._value = base, name, value

    def __getitem__(self, key: str) -> Any:
        if key == self._name:
            if self._value is _MISSING:
                raise KeyError(key)
            return self._value
        return self._base[key]

    def __iter__(self) -> Iterator[str]:
        yield from (k for k in self._base if k != self._name)
        if self._value is not _MISSING:
            yield self._name

    def __len__(self) -> int:
        return sum(1 for _ in self)


def describe_call(call: model.Call, scope: Mapping[str, Any]) -> dict[str, Any] | None:
    """A call with its arguments evaluated, as journaled: ``{"command"|"action"|"reactor": NAME, "args": {...}}``."""
    if isinstance(call, model.CommandCall):
        return {"command": call.command, "args": call.args(scope)}
    if isinstance(call, model.ActionCall):
        return {"action": call.action, "args": call.args(scope)}
    if isinstance(call, model.ReactorCall):
        return {"reactor": call.reactor, "args": call.args(scope)}
    return None  # waiting for a state or an event moves nothing


def planner(chosen: tuple[model.Call, bool] | None, name: str, scope: Mapping[str, Any]) -> Planner | None:
    """How to journal the undo of step ``name``: ``chosen`` is its undo call and whether it is inherited."""
    if chosen is None:
        return None
    call, inherited = chosen

    def plan(args: Any, value: Any, has_value: bool) -> tuple[dict[str, Any] | None, str | None]:
        if inherited:
            where: Mapping[str, Any] = {"args": args, "result": value} if has_value else {"args": args}
        else:
            where = _Own(scope, name, value if has_value else _MISSING)
        try:
            return describe_call(call, where), None
        except Exception as exc:  # needs what it cannot have yet: the step's own result
            if has_value:
                return None, f"its undo could not be evaluated: {str(exc) or type(exc).__name__}"
            return None, f"the undo of {name} needs its result ({type(exc).__name__}: {exc})"

    return plan
