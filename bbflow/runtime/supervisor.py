"""OTP-style supervision: children restarted by strategy, within a restart intensity.

A ``Supervisor`` runs its children (async callables, in order) as tasks it
owns. When a child ends, its ``restart`` policy decides whether it is
restarted (``permanent``: always; ``transient``: only after a failure;
``temporary``: never), and the supervisor's strategy decides what else restarts:

- ``one_for_one``: only that child;
- ``one_for_all``: all children (the others are stopped in reverse start order,
  then all are started again in order);
- ``rest_for_one``: that child and the children started after it.

More than ``max_restarts`` restarts within ``period`` seconds (loop time)
means the trouble is not transient: the supervisor stops every child and
gives up by raising ``GaveUp``. A supervisor is itself a child (``run`` is an
async callable), so a tree escalates a give-up to its parent, which counts
it as a failure of that child. The root's ``on_give_up`` hook is where the
application makes the cell safe (``disarm_all``: disarm every robot) before
``bbflow run`` exits with the reason.

Children never outlive their supervisor: when it is cancelled or gives up,
it cancels and awaits them all.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

import attrs

from bbflow.runtime.crew import wait_through
from bbflow.runtime.events import notify
from bbflow.runtime.ports import Observer, RobotPort, RuntimeFailure


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


@attrs.frozen(slots=True)
class Child:
    """A supervised child: ``run()`` is started anew on every (re)start."""

    name: str
    run: Callable[[], Awaitable[Any]]
    restart: Restart = Restart.PERMANENT


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def service_child(name: str, service: Service, restart: Restart = Restart.PERMANENT) -> Child:
    """A child for a service with ``start``/``stop``: started, kept until stopped, then stopped.

    A failing ``start`` is a failure of the child; ``stop`` runs whenever the
    child is stopped (shielded from the cancellation that stops it).
    """

    async def run() -> None:
        await service.start()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            await asyncio.shield(service.stop())

    return Child(name, run, restart)


class GaveUp(Exception):
    """A supervisor exceeded its restart intensity and stopped all its children."""

    def __init__(self, supervisor: str, child: str, error: BaseException | None, restarts: int, period: float) -> None:
        self.supervisor = supervisor
        self.child = child
        self.error = error
        cause = f"failed: {describe(error)}" if error is not None else "exited"
        self.reason = (
            f"supervisor {supervisor!r} gave up: child {child!r} {cause} "
            f"({restarts} restarts within {period:g}s)"
        )
        super().__init__(self.reason)


def describe(error: BaseException) -> str:
    """A one-line account of a failure, unwrapping exception groups (TaskGroup failures)."""
    if isinstance(error, GaveUp):
        return error.reason
    if isinstance(error, RuntimeFailure):
        return error.message
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(e) for e in error.exceptions)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Supervisor:
    """Supervises ``children`` with a strategy and a restart intensity (see the module doc)."""

    def __init__(
        self,
        name: str,
        children: Sequence[Child],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
        on_give_up: Callable[[GaveUp], Awaitable[None] | None] | None = None,
        observer: Observer | None = None,
    ) -> None:
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate child names in supervisor {name!r}: {names}")
        self.name = name
        self.children = tuple(children)
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.period = period
        self.on_give_up = on_give_up
        self.observer = observer
        self.restarts = 0  # over the supervisor's life
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._recent: deque[float] = deque()

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    async def run(self) -> None:
        """Supervise until cancelled, until every child has ended for good, or until giving up.

        Each call starts afresh (a restarted supervisor forgets earlier restarts).
        """
        self._recent.clear()
        try:
            for child in self.children:
                self._start(child)
            while self._tasks:
                done, _ = await asyncio.wait(self._tasks.values(), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    name = task.get_name()
                    if self._tasks.get(name) is not task:
                        continue  # already stopped by an earlier restart in this round
                    del self._tasks[name]
                    error = None if task.cancelled() else task.exception()
                    await self._child_ended(self.child(name), error)
        except GaveUp as gave_up:
            await self._stop(self._running_in_reverse())
            if self.on_give_up is not None:
                hook = self.on_give_up(gave_up)
                if inspect.isawaitable(hook):
                    await asyncio.shield(hook)
            raise
        finally:
            await self._stop(self._running_in_reverse())

    async def _child_ended(self, child: Child, error: BaseException | None) -> None:
        if error is None and child.restart is not Restart.PERMANENT:
            return
        if child.restart is Restart.TEMPORARY:
            assert error is not None  # a temporary child that exits normally returned above
            self._report("supervisor.child_failed", child=child.name, error=describe(error))
            return
        self._count_restart(child, error)
        self._report("supervisor.restart", child=child.name, error=None if error is None else describe(error))
        names = [c.name for c in self.children]
        if self.strategy is Strategy.ONE_FOR_ONE:
            again = [child]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            again = list(self.children)
        else:
            again = list(self.children[names.index(child.name) :])
        # Stop the others in reverse start order, then start them all again in order.
        await self._stop([c.name for c in reversed(again) if c.name in self._tasks])
        for c in again:
            self._start(c)

    def _count_restart(self, child: Child, error: BaseException | None) -> None:
        now = asyncio.get_running_loop().time()
        self._recent.append(now)
        while self._recent and self._recent[0] <= now - self.period:
            self._recent.popleft()
        if len(self._recent) > self.max_restarts:
            gave_up = GaveUp(self.name, child.name, error, len(self._recent) - 1, self.period)
            self._report("supervisor.gave_up", child=child.name, reason=gave_up.reason)
            raise gave_up
        self.restarts += 1

    def _running_in_reverse(self) -> list[str]:
        return [c.name for c in reversed(self.children) if c.name in self._tasks]

    def _start(self, child: Child) -> None:
        self._tasks[child.name] = asyncio.create_task(_as_coroutine(child.run), name=child.name)

    async def _stop(self, names: Iterable[str]) -> None:
        """Cancel and await the named children, one at a time, in the given order."""
        interrupted = False
        for name in names:
            task = self._tasks.pop(name, None)
            if task is None:
                continue
            task.cancel()
            # Wait for the child to finish its cleanup (a run rolling back) even if we
            # are cancelled meanwhile: a child must never outlive its supervisor.
            if await wait_through(task):
                interrupted = True
            error = None if task.cancelled() else task.exception()
            if error is not None:
                self._report("supervisor.child_failed", child=name, error=describe(error))
        if interrupted:
            raise asyncio.CancelledError

    def _report(self, event: str, **fields: Any) -> None:
        if self.observer is not None:
            loop_time = asyncio.get_running_loop().time()
            notify(
                self.observer,
                {"event": event, "reactor": None, "step": None, "run": None, "time": loop_time, "supervisor": self.name, **fields},
            )


async def _as_coroutine(run: Callable[[], Awaitable[Any]]) -> Any:
    return await run()


async def disarm_all(robots: Iterable[RobotPort]) -> list[str]:
    """The safe stop: ask every robot to disarm; returns the errors (a robot that
    cannot be disarmed is reported, and the others are still disarmed)."""
    errors = []
    for robot in robots:
        try:
            await robot.call("disarm", {})
        except Exception as exc:  # RuntimeFailure or a driver bug: report it, disarm the rest
            errors.append(f"{robot.instance}: {describe(exc)}")
    return errors
