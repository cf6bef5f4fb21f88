"""The seams between runtime parts: the robot port, runtime errors, event observers.

The executor and the agents talk to a robot only through ``RobotPort`` (the
robot proxy in ``bbflow.runtime.proxy`` implements it; tests may fake it).
Every runtime event is a ``dict`` given to an ``Observer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bbflow.runtime import model

#: Receives every runtime event: {"event", "reactor", "step", "run", "time", ...}.
Observer = Callable[[dict[str, Any]], None]

SAFETY_STATES = ("disarmed", "armed", "disarming", "fault")


class RuntimeFailure(Exception):
    """A failure of a step, undo or handler, with a stable short ``code``.

    Codes: ``command`` (the driver reported an error), ``timeout``,
    ``action`` (an action raised), ``expression`` (evaluating an expression
    failed), ``result`` (a driver or action returned a value of the wrong
    type), ``not_armed``, ``state`` (command not allowed in the robot's state),
    ``fail`` (a ``fail`` statement), ``cancelled``, ``halted``, ``input``,
    ``in_doubt`` (the undo of a step cut off in flight needs the result it never got),
    ``internal`` (a bug in bbflow itself, reported rather than raised).
    """

    def __init__(self, message: str, code: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.command = command

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.command is not None:
            out["command"] = self.command
        return out


def error_text(exc: BaseException) -> str:
    """What an exception says, for the message of a failed step, undo, handler or driver call: its text
    without Python's class name in front (``division by zero``), as a reactor's and an agent's errors both
    read; the class name alone when it has no text, and in front of a ``KeyError``'s, which is the bare key."""
    text = str(exc)
    if not text:
        return type(exc).__name__
    return f"KeyError: {text}" if isinstance(exc, KeyError) else text


def exited(exc: BaseException, who: str = "driver") -> str:
    """How a ``SystemExit`` or ``KeyboardInterrupt`` that a driver's or an action's code raised is named in
    messages: it fails that call (a vendor library's ``sys.exit()``), never the process."""
    article = "an" if who[0] in "aeiou" else "a"
    return (f"the {who} raised {type(exc).__name__}{f'({exc})' if str(exc) else ''} "
            f"({article} {who} fails by raising an Exception)")


class Completed:
    """Carried by the ``CancelledError`` of a caller whose command completed at the driver anyway (it
    ended in the same moment, or the driver could not stop it half-way): ``value`` is its conformed
    result. The motion happened, so the step that made it counts as completed and is undone; the
    cancellation goes on as any other. A plain ``CancelledError`` (not a subclass), so that
    ``asyncio.timeout`` still recognises it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    @staticmethod
    def of(exc: BaseException | None) -> Completed | None:
        """The ``Completed`` that ``exc`` (a ``CancelledError``) carries, if any."""
        args = exc.args if isinstance(exc, asyncio.CancelledError) else ()
        return args[0] if len(args) == 1 and isinstance(args[0], Completed) else None


class NotSent:
    """Carried by the ``CancelledError`` of a caller cancelled before its command (or action) reached the
    driver (waiting for its category's slot, or for its intent to be journaled): nothing moved. A caller
    cancelled without it, or without ``Completed``, was cut off *in flight*: the command may have moved
    part-way, and the step that made it is undone like one that completed (docs/runtime.md)."""

    __slots__ = ()

    @staticmethod
    def of(exc: BaseException | None) -> bool:
        """Whether ``exc`` (a ``CancelledError``) says its command never reached the driver."""
        args = exc.args if isinstance(exc, asyncio.CancelledError) else ()
        return len(args) == 1 and isinstance(args[0], NotSent)


class RobotPort(Protocol):
    """What the executor and agents need of one robot instance."""

    spec: model.Robot
    instance: str  # the instance name from bbflow.toml ("arm")

    @property
    def safety(self) -> str:
        """One of SAFETY_STATES."""

    @property
    def state(self) -> str:
        """The operational state ("idle", "busy", ...)."""

    async def call(self, command: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
        """Run a command (``arm``/``disarm`` included); returns its validated result.

        Raises ``RuntimeFailure`` (codes ``command``, ``timeout``, ``not_armed``,
        ``state``, ``result``). Cancellation of the awaiting task is passed on
        to the driver.
        """

    async def wait_state(self, states: tuple[str, ...]) -> str:
        """Return at once if in one of ``states``, else when the robot enters one.

        Subscribes before it checks, so a change between the two is never missed.
        """

    async def wait_event(self, event: str, predicate: Callable[[Any], bool] | None = None) -> Any:
        """The data of the first ``event`` published after the call (that satisfies ``predicate``)."""

    def on_safety(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call ``callback(old, new)`` on every safety change; returns an unsubscribe function."""

    def on_state(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call ``callback(old, new)`` on every operational state change."""

    def on_event(self, callback: Callable[[str, Any], None]) -> Callable[[], None]:
        """Call ``callback(event_name, data)`` for every event the driver publishes."""


#: Resolves an action's "module:function" target to a callable (sync or async).
ActionResolver = Callable[[str], Callable[..., Any | Awaitable[Any]]]
