"""The driver API: what a Python class must look like to drive a robot.

A driver implements one robot interface (``robot Arm { ... }``)::

    class MyArm(Driver):
        async def move_to(self, target, speed):    # one async method per command,
            ...                                    # declared parameters as keywords
            return pose                            # a value of the declared result type

It is constructed as ``DriverClass(handle, options)``: ``handle`` is a
``DriverHandle`` (the interface, and the way back: operational state, safety,
events, errors); ``options`` is the robot's table from ``bbflow.toml``.
Optional hooks, each an ``async def`` without arguments: ``connect`` (after
construction, before any command), ``arm``, ``disarm`` (must stop all motion)
and ``disconnect`` (at shutdown). A hook whose name is also a command of the
interface is the command, not a hook.

A command is cancelled by cancelling the task that runs it: the driver sees
``asyncio.CancelledError`` where it awaits and must stop that motion.

A *generic* driver (the simulated robot, a bridge to another middleware)
instead defines ``async def run_command(self, name, kwargs)`` and receives
every command through it.

See docs/drivers.md for the walk-through.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol

from bbflow.runtime import model
from bbflow.runtime.ports import SAFETY_STATES, exited
from bbflow.runtime.types import TypeMismatch

#: The method through which a generic driver receives every command.
GENERIC_METHOD = "run_command"
#: Optional lifecycle hooks, in the order the proxy may call them.
HOOKS = ("connect", "arm", "disarm", "disconnect")

CommandFn = Callable[[dict[str, Any]], Coroutine[Any, Any, Any]]
DriverFactory = Callable[["DriverHandle", dict[str, Any]], Any]


class DriverError(Exception):
    """A driver cannot be loaded, created or bound to its interface (before anything moves)."""


class Driver:
    """Optional base class: keeps ``handle`` and ``options``. Drivers may equally be plain classes."""

    def __init__(self, handle: DriverHandle, options: Mapping[str, Any]) -> None:
        self.handle = handle
        self.options = options


class HandleSink(Protocol):
    """The receiving side of a handle (the robot proxy)."""

    @property
    def safety(self) -> str: ...

    @property
    def state(self) -> str: ...

    def _driver_event(self, event: str, data: Any) -> None: ...

    def _driver_state(self, state: str) -> None: ...

    def _driver_safety(self, safety: str, reason: str | None) -> None: ...

    def _driver_error(self, message: str) -> None: ...

    def _driver_lost(self, reason: str) -> None: ...


class DriverHandle:
    """How a driver talks back: publish events, report operational state, safety and errors.

    Every report is checked against the interface at once (a bad one raises
    ``ValueError`` in the driver, next to the bug). Reports may come from the
    event loop's thread or, for drivers with their own threads (middleware
    callbacks), from any other thread: they are then handed to the loop.
    """

    def __init__(self, robot: model.Robot, instance: str, sink: HandleSink) -> None:
        self.robot = robot
        self.instance = instance
        self._sink = sink
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the loop the proxy runs on (called by the proxy when it starts)."""
        self._loop = loop
        self._thread = threading.get_ident()

    @property
    def safety(self) -> str:
        return self._sink.safety

    @property
    def state(self) -> str:
        return self._sink.state

    def publish(self, event: str, data: Any = None) -> None:
        """Publish ``event`` (declared by the interface) with its payload."""
        decl = self.robot.events.get(event)
        if decl is None:
            known = ", ".join(sorted(self.robot.events)) or "none"
            raise ValueError(f"{self.robot.name} declares no event {event!r} (declared: {known})")
        if decl.payload is None:
            if data is not None:
                raise ValueError(f"event {event} has no payload, got {data!r}")
        else:
            try:
                data = decl.payload.conform(data)
            except TypeMismatch as exc:
                raise ValueError(f"event {event}: bad payload: {exc}") from None
        self._deliver(self._sink._driver_event, event, data)

    def set_state(self, state: str) -> None:
        """Report the operational state (one of the interface's ``states``)."""
        if state not in self.robot.states:
            raise ValueError(
                f"{self.robot.name} has no state {state!r} (states: {', '.join(self.robot.states)})"
            )
        self._deliver(self._sink._driver_state, state)

    def report_safety(self, safety: str, reason: str | None = None) -> None:
        """Report a safety change the robot made by itself (emergency stop, fault, pendant)."""
        if safety not in SAFETY_STATES:
            raise ValueError(f"unknown safety state {safety!r} (one of {', '.join(SAFETY_STATES)})")
        self._deliver(self._sink._driver_safety, safety, reason)

    def report_error(self, message: str) -> None:
        """Report a robot error that is not the failure of a command (``robot.error``)."""
        self._deliver(self._sink._driver_error, str(message))

    def connection_lost(self, reason: str) -> None:
        """Report that the link to the robot is gone (a dropped socket, a crashed controller process).

        The robot goes to ``fault`` (its commands stop, runs on it halt); the
        runtime's supervisor then reconnects it (``disconnect``, then ``connect``
        again) within the ``[supervision]`` limits, or stops everything safely.
        """
        self._deliver(self._sink._driver_lost, str(reason))

    def _deliver(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and threading.get_ident() != self._thread and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)
        else:
            fn(*args)


def is_generic(driver_or_class: Any) -> bool:
    """True for a driver that receives every command through ``run_command``."""
    return callable(getattr(driver_or_class, GENERIC_METHOD, None))


def hook(driver: Any, robot: model.Robot, name: str) -> Callable[[], Awaitable[Any]] | None:
    """The driver's lifecycle hook ``name``, or None (absent, or a command of that name)."""
    if name in robot.commands:
        return None
    fn = getattr(driver, name, None)
    return (lambda: _no_exit(fn)) if callable(fn) else None


async def _no_exit(fn: Callable[[], Awaitable[Any]]) -> Any:
    """A hook whose ``sys.exit()`` fails it (``DriverError``): raised in a task, it would stop the event loop,
    and ``bbflow run`` with it, as if interrupted."""
    try:
        return await fn()
    except (SystemExit, KeyboardInterrupt) as exc:
        raise DriverError(exited(exc)) from None


def bind_commands(driver: Any, robot: model.Robot) -> dict[str, CommandFn]:
    """One callable ``(kwargs) -> awaitable result`` per command of ``robot``.

    Raises ``DriverError`` naming every command the driver lacks.
    """
    if is_generic(driver):
        run = getattr(driver, GENERIC_METHOD)
        return {name: _generic(run, name) for name in robot.commands}
    bound: dict[str, CommandFn] = {}
    missing = []
    for name in robot.commands:
        method = getattr(driver, name, None)
        if not callable(method) or not inspect.iscoroutinefunction(method):
            missing.append(name)
        else:
            bound[name] = _named(method)
    if missing:
        raise DriverError(
            f"{type(driver).__name__} does not implement {robot.name}: "
            f"no async method for {', '.join(missing)}"
        )
    return bound


def _generic(run: Callable[[str, dict[str, Any]], Coroutine[Any, Any, Any]], name: str) -> CommandFn:
    return lambda kwargs: run(name, kwargs)


def _named(method: Callable[..., Coroutine[Any, Any, Any]]) -> CommandFn:
    return lambda kwargs: method(**kwargs)
