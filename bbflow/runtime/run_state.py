"""The state of one reactor run, what a completed step leaves for its undo, and how a run ended.

``RunState`` is plain state with the few rules every part of the executor
shares (the first failure wins, a stopping run starts nothing, step slots);
the parts that act on it are functions in their own modules: body scheduling
(``bbflow.runtime.scheduler``), steps (``bbflow.runtime.steps``), calls shared
by steps and undos (``bbflow.runtime.calls``), rollback
(``bbflow.runtime.rollback``), events (``bbflow.runtime.run_events``) and the
run as a whole (``bbflow.runtime.executor``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal, NamedTuple

import attrs

from bbflow.runtime import model
from bbflow.runtime.crew import Crew
from bbflow.runtime.journal import Journal
from bbflow.runtime.ports import ActionResolver, Observer, RobotPort, RuntimeFailure
from bbflow.runtime.signal_waits import SignalWaits

Status = Literal["ok", "failed", "halted"]


@attrs.frozen
class RunResult:
    """How a run ended.

    ``value`` is the reactor's result (``ok`` only); ``error`` the original
    failure (``failed``) or why the run halted (``halted``, code ``halted``);
    ``undo_errors`` every undo that failed after its last attempt, composed
    reactors' included; ``completed`` the names of the steps that completed,
    in completion order (a step of a ``map`` body once per iteration);
    ``undone`` the steps undone by the rollback, in the order they were undone
    (a halted run may have undone some before it halted).
    """

    run_id: str
    reactor: str
    status: Status
    value: Any = None
    error: RuntimeFailure | None = None
    undo_errors: tuple[UndoFailure, ...] = ()
    completed: tuple[str, ...] = ()
    undone: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


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


class Completion(NamedTuple):
    """A step that completed, or was cut off in flight (``in_doubt``: cancelled while its command or action
    was at the driver, it may have moved part-way; it has no value): what its undo needs."""

    step: model.Step
    scope: dict[str, Any]
    args: dict[str, Any] | None  # a command's keyword arguments (for its default undo)
    value: Any
    child: RunState | None  # a composed reactor's run
    iterations: tuple[int, ...]  # the indices of the map iterations around the step
    undoable: bool  # False when the value came from ``fallback``
    in_doubt: bool = False


class Stop(Exception):
    """Raised where a node would start after the run began to stop (failure or halt)."""


#: why a deadline outside a composed run is cutting it short: the timeout of the step or undo attempt
#: that awaits it (or of one around that), None when the cancellation is not that deadline's
Cut = Callable[[], RuntimeFailure | None]

#: runs a run to its end with the given (raw) inputs: the executor's, given to every run so
#: that composition can start child runs without the parts importing the executor
Runner = Callable[["RunState", Mapping[str, Any]], Coroutine[Any, Any, RunResult]]


class RunState:
    """The state of one run of one reactor (a composed reactor gets a ``RunState`` of its own)."""

    __slots__ = ("program", "reactor", "robot", "observer", "resolver", "run_id", "parent", "runner", "loop",
                 "free", "slot_waiters", "done", "undo_errors", "undone", "failure", "halt", "stopping", "task",
                 "rollback_task", "cancelled_root", "_commands", "cancel_code", "signals", "took_cancel", "journal",
                 "cut")

    def __init__(
        self,
        program: model.Program,
        reactor: str | model.Reactor,
        robot: RobotPort | None,
        observer: Observer | None,
        resolver: ActionResolver,
        run_id: str,
        parent: str | None,
        runner: Runner,
        journal: Journal | None = None,
    ) -> None:
        self.program = program
        #: with a journal, every command of the run is journaled (``bbflow.runtime.journal``)
        self.journal = journal
        #: a name until ``execute`` looks it up
        self.reactor: model.Reactor = reactor  # type: ignore[assignment]
        self.robot = robot
        self.observer = observer
        self.resolver = resolver
        self.run_id = run_id
        self.parent = parent
        self.runner = runner
        self.loop: asyncio.AbstractEventLoop  # set by ``execute``
        #: free step slots (the reactor's ``concurrency``, set by ``execute``) and the bodies waiting for one
        self.free = 0
        self.slot_waiters: list[Crew] = []
        #: completed steps, in completion order, and those cut off in flight where they ended (for the rollback)
        self.done: list[Completion] = []
        self.undo_errors: list[UndoFailure] = []
        #: steps undone by the rollback, in the order they were undone
        self.undone: list[str] = []
        self.failure: RuntimeFailure | None = None
        self.halt: RuntimeFailure | None = None
        #: set with ``failure`` or ``halt``: no node may start any more
        self.stopping = False
        self.task: asyncio.Task[Any] | None = None
        self.rollback_task: asyncio.Task[Any] | None = None
        self.cancelled_root = False
        self._commands: Mapping[str, model.Command] | None = None
        #: the code of a cancel or preemption made through the task registry (``bbflow.runtime.tasks``)
        self.cancel_code: Callable[[], str | None] | None = None
        #: where ``wait_signal`` steps wait (``bbflow.runtime.signal_waits``); composed runs share it
        self.signals: SignalWaits | None = None
        self.took_cancel = False  # the registry's cancellation has been taken back
        #: a composed run's: whether an enclosing attempt's deadline is what cancels it (``calls.cut_by``)
        self.cut: Cut | None = None

    def child(self, reactor: model.Reactor, run_id: str, cut: Cut | None = None) -> RunState:
        """The state of a composed reactor's run, on this run's robot, observer and actions; ``cut``: the
        deadline of the attempt that awaits it, if it has one (those around this run's attempt apply too)."""
        child = RunState(self.program, reactor, self.robot, self.observer, self.resolver, run_id, self.run_id,
                         self.runner, self.journal)
        child.signals = self.signals
        child.cancel_code = self.cancel_code  # its cancel is its root's: says why, never takes it (``take_cancel``)
        outer = self.cut
        child.cut = outer if cut is None else cut if outer is None else (lambda: cut() or outer())
        return child

    def fail(self, failure: RuntimeFailure) -> RuntimeFailure:
        """Record the run's failure (the first one wins) and return the one recorded."""
        if self.failure is None:
            self.failure = failure
            self.stopping = True
        return self.failure

    def stop(self) -> Exception:
        """What to raise where a node would start while the run is stopping."""
        return self.failure if self.failure is not None else Stop()

    def release(self) -> None:
        """A step left its slot: wake the bodies that wait for one."""
        self.free += 1
        if self.slot_waiters:
            waiters, self.slot_waiters = self.slot_waiters, []
            for crew in waiters:
                crew.wake()

    def completed(self) -> tuple[str, ...]:
        return tuple(c.step.name for c in self.done if not c.in_doubt)

    def cancel_reason(self, what: str) -> RuntimeFailure:
        """Why ``what`` (the run, a step or an undo) was cancelled: the halt, else the cancel's code."""
        if self.halt is not None:
            return self.halt
        cut = self.cut() if self.cut is not None else None
        if cut is not None:
            return RuntimeFailure(f"{what} was cancelled: {cut.message}", cut.code)
        code = self.cancel_code() if self.cancel_code is not None else None
        if code == "preempted":
            return RuntimeFailure(f"{what} was cancelled: another run preempted it", code)
        if code == "interrupted":
            return RuntimeFailure(f"{what} was interrupted", code)
        return RuntimeFailure(f"{what} was cancelled", code or "cancelled")

    def take_cancel(self, task: asyncio.Task[Any]) -> None:
        """Take back the one cancellation a cancel or preemption of this run made (``cancel_code``):
        the run fails with that code and returns; any other cancellation goes on after the rollback.
        A composed run leaves it to its root (it fails with the code, and its parent's step is cancelled)."""
        if not self.took_cancel and self.parent is None and self.cancel_code is not None \
                and self.cancel_code() is not None and task.cancelling():
            task.uncancel()
            self.took_cancel = True

    def command_spec(self, command: str) -> model.Command | None:
        """The declaration of one of the robot's commands (for its default undo and timeout)."""
        if self._commands is None:
            spec = self.program.robots.get(self.reactor.robot) if self.reactor.robot else None
            if spec is None and self.robot is not None:
                spec = self.robot.spec
            self._commands = spec.commands if spec is not None else {}
        return self._commands.get(command)

    def undo_call(self, step: model.Step) -> tuple[model.Call, bool] | None:
        """A step's own undo, else its command's default undo, and whether it is inherited (its scope is then
        ``args``/``result``); None for none (a composed reactor's steps are undone by its own run)."""
        undo = step.undo
        if undo is not None:
            return undo.call, undo.inherited
        if type(step.call) is model.CommandCall:
            spec = self.command_spec(step.call.command)
            if spec is not None and spec.undo is not None:
                return spec.undo, True
        return None

    def no_robot(self, command: str) -> RuntimeFailure:
        return RuntimeFailure(f"{self.reactor.name} has no robot to run {command}", "state", command=command)

    def result(self, status: Status, value: Any = None, error: RuntimeFailure | None = None) -> RunResult:
        return RunResult(self.run_id, self.reactor.name, status, value, error, tuple(self.undo_errors),
                         self.completed(), tuple(self.undone))
