"""One task per robot: the hold, the queue, preemption and cancel.

Every run that may move a robot goes through one ``Tasks`` object of the
runtime: an agent's ``run`` (a reactor, or a command: a task of one step),
``bbflow run --reactor``, and whatever starts or cancels runs from outside
(the control plane, the journal's recovery). Its public shape:

``await tasks.run(work, name=..., robot=..., run_id=..., owner=..., preempt=...)``
    Runs ``work(ticket)`` (a coroutine function; for a reactor, a call of
    ``run_reactor`` with ``cancel_code=ticket.cancel_code``) as the task of
    ``robot`` (a robot instance name; ``None`` for a run that moves no robot:
    it is registered, so it can be cancelled, but holds nothing). While another
    run holds the robot the new one waits in the robot's FIFO queue (event
    ``run.queued`` with its 1-based ``position``); it starts when the robot is
    free. The hold lasts until ``work`` returns, rollback included, so two runs
    on one robot never interleave; a composed reactor runs inside its parent's
    work and needs no hold of its own. ``work`` runs in the caller's task,
    which is what ``cancel`` cancels (see ``cancel``). Returns what ``work``
    returns.
    Raises ``RuntimeFailure``: code ``busy`` when the robot's queue is full
    (nothing moved), or the cancel code when the run was cancelled before it
    started (it never starts); in both cases a ``run.failed`` event is
    reported. If the caller's own task is cancelled, the work is cancelled,
    awaited (it rolls back) and the cancellation goes on.

``preempt=True``
    The run that holds the robot is cancelled with code ``preempted`` (it
    rolls back like a failure) and the new run starts as soon as it ends,
    ahead of the queue (preempting runs among themselves first come first
    served). A preempting run is never refused as ``busy``: an emergency stop
    must not wait for room.

``tasks.cancel(run_id, code="cancelled") -> bool``
    Cancels one run, queued (it never starts) or running (its task is
    cancelled once; the executor, given ``cancel_code=ticket.cancel_code``,
    takes that cancellation back, rolls the run back, or halts it if the robot
    leaves ``armed``, and returns the run failed with ``code``; for a command,
    ``run`` raises ``RuntimeFailure`` with ``code``, or returns the result of
    one the driver completed in that moment). The first cancel of a run
    decides its code; later ones change nothing. False when no such run is
    queued or running.

``tasks.cancel_owned(owner, name, code="cancelled") -> int``
    Cancels every run of ``name`` that ``owner`` (an agent instance) started;
    what ``cancel REACTOR`` does.

``tasks.runs()``, ``tasks.queue_depth(robot)``
    The runs queued and running (``Ticket``: ``run_id name robot owner state
    code``), for the control plane's state and metrics.

A robot's queue holds ``capacity`` runs (``[robot.NAME] queue``, default 16),
not counting the run that holds it. Queue operations are O(1): a cancelled
queued run stays in the queue, marked, and is skipped when its turn comes.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar, cast

from bbflow.runtime.defaults import DEFAULT_QUEUE
from bbflow.runtime.events import notify
from bbflow.runtime.ids import uuid7
from bbflow.runtime.ports import Completed, Observer, RuntimeFailure

__all__ = ["DEFAULT_QUEUE", "RobotHold", "Tasks", "Ticket", "TicketState"]

#: how a run ended by a cancel is described in its error message, by code
_CANCELLED = {"cancelled": "cancelled", "preempted": "preempted by another run", "interrupted": "interrupted"}

T = TypeVar("T")


class TicketState(str, enum.Enum):
    QUEUED = "queued"  # waiting for the robot
    GRANTED = "granted"  # the robot is its own, the work has not started yet
    RUNNING = "running"
    DONE = "done"  # ended, or never started


class Ticket:
    """One run as the task registry sees it."""

    __slots__ = ("run_id", "name", "robot", "owner", "preempt", "kind", "state", "code", "task", "waiter")

    def __init__(self, run_id: str, name: str, robot: str | None, owner: object, preempt: bool, kind: str) -> None:
        self.run_id = run_id
        self.name = name
        self.robot = robot
        self.owner = owner
        self.preempt = preempt
        self.kind = kind  # "reactor" or "command": the field that names it in events
        self.state = TicketState.QUEUED
        #: why the run was cancelled ("cancelled", "preempted", ...), None while it was not
        self.code: str | None = None
        self.task: asyncio.Task[Any] | None = None
        self.waiter: asyncio.Future[None] | None = None

    def cancel_code(self) -> str | None:
        """For the executor: the code of a cancel made through ``Tasks`` (None: not ours)."""
        return self.code

    def failure(self, started: bool) -> RuntimeFailure:
        code = self.code or "cancelled"
        when = "" if started else " before it started"
        return RuntimeFailure(f"{self.name} was {_CANCELLED.get(code, code)}{when}", code)


class RobotHold:
    """The hold of one robot instance: the run that holds it and the runs waiting for it."""

    def __init__(self, instance: str, capacity: int) -> None:
        self.instance = instance
        self.capacity = capacity
        self.holder: Ticket | None = None
        self._queue: deque[Ticket] = deque()  # may hold withdrawn tickets, skipped when reached
        self._urgent: deque[Ticket] = deque()  # preempting runs, ahead of the queue
        self.waiting = 0  # live tickets in ``_queue``
        self.urgent = 0  # live tickets in ``_urgent``

    @property
    def depth(self) -> int:
        """Runs waiting for the robot."""
        return self.waiting + self.urgent

    def take(self, ticket: Ticket) -> int:
        """Give the robot to ``ticket`` now (returns 0), or queue it (returns its 1-based position).

        Raises ``RuntimeFailure`` (``busy``) when the queue is full.
        """
        if self.holder is None and not self.depth:
            self.holder = ticket
            ticket.state = TicketState.GRANTED
            return 0
        if ticket.preempt:
            self._urgent.append(ticket)
            self.urgent += 1
            return self.urgent
        if self.waiting >= self.capacity:
            raise RuntimeFailure(
                f"robot {self.instance} is busy: {self.waiting} runs are queued (queue = {self.capacity})", "busy")
        self._queue.append(ticket)
        self.waiting += 1
        return self.urgent + self.waiting

    def withdraw(self, ticket: Ticket) -> None:
        """A queued ticket leaves the queue (cancelled); it is skipped when its turn comes."""
        if ticket.state is TicketState.QUEUED:
            ticket.state = TicketState.DONE
            if ticket.preempt:
                self.urgent -= 1
            else:
                self.waiting -= 1

    def release(self, ticket: Ticket) -> None:
        """``ticket`` ends: the robot goes to the next live ticket, urgent ones first."""
        if self.holder is not ticket:
            return
        self.holder = None
        for queue in (self._urgent, self._queue):
            while queue:
                nxt = queue.popleft()
                if nxt.state is not TicketState.QUEUED:
                    continue
                if queue is self._urgent:
                    self.urgent -= 1
                else:
                    self.waiting -= 1
                self.holder = nxt
                nxt.state = TicketState.GRANTED
                assert nxt.waiter is not None
                nxt.waiter.set_result(None)
                return


class Tasks:
    """The task registry of one runtime: a ``RobotHold`` per robot instance, every live run by id."""

    def __init__(self, *, capacities: Mapping[str, int] | None = None, observer: Observer | None = None) -> None:
        self.capacities = dict(capacities or {})
        self.observer = observer
        self._holds: dict[str, RobotHold] = {}
        self._live: dict[str, Ticket] = {}

    def hold(self, robot: str) -> RobotHold:
        found = self._holds.get(robot)
        if found is None:
            found = self._holds[robot] = RobotHold(robot, self.capacities.get(robot, DEFAULT_QUEUE))
        return found

    # --- running ---------------------------------------------------------------------

    async def run(
        self,
        work: Callable[[Ticket], Awaitable[T]],
        *,
        name: str,
        robot: str | None,
        run_id: str | None = None,
        owner: object = None,
        preempt: bool = False,
        kind: str = "reactor",
    ) -> T:
        """Run ``work`` as a task of ``robot`` (see the module's docstring)."""
        ticket = Ticket(run_id or uuid7(), name, robot, owner, preempt, kind)
        self._live[ticket.run_id] = ticket
        hold = self.hold(robot) if robot is not None else None
        try:
            if hold is not None:
                await self._acquire(hold, ticket)
            else:
                ticket.state = TicketState.GRANTED
            if ticket.code is not None:  # cancelled between its grant and here: it never starts
                raise ticket.failure(False)
            return await self._work(work, ticket)
        except RuntimeFailure as failure:
            if ticket.state is not TicketState.RUNNING:
                self._report("run.failed", ticket, error=failure.to_json(), undo_errors=[])
            raise
        finally:
            ticket.state = TicketState.DONE
            self._live.pop(ticket.run_id, None)
            if hold is not None:
                hold.release(ticket)

    async def _acquire(self, hold: RobotHold, ticket: Ticket) -> None:
        if ticket.preempt and hold.holder is not None:
            self.cancel(hold.holder.run_id, "preempted")
        position = hold.take(ticket)
        if not position:
            return
        ticket.waiter = asyncio.get_running_loop().create_future()
        self._report("run.queued", ticket, position=position)
        try:
            await ticket.waiter
        except asyncio.CancelledError:
            hold.withdraw(ticket)  # a granted ticket is released by ``run``
            raise

    async def _work(self, work: Callable[[Ticket], Awaitable[T]], ticket: Ticket) -> T:
        """``work`` in the caller's task; a cancel through ``cancel`` is a failure, any other goes on.

        ``cancel`` cancels the task only while the ticket is running, that is while the task is
        suspended inside ``work`` (it is marked done, synchronously, the moment ``work`` returns),
        so the cancellation is always delivered inside ``work``. A reactor's executor takes it back
        itself (``cancel_code``); for other work it is taken back here, and a command that the driver
        completed in the moment it was cancelled (``Completed``) is done: the motion happened and is the
        run's result, as the journal records it (a cancel or preemption that comes too late undoes nothing).
        """
        task = asyncio.current_task()
        assert task is not None, "Tasks.run must be awaited in a task"
        baseline = task.cancelling()
        ticket.state = TicketState.RUNNING
        ticket.task = task
        try:
            return await work(ticket)
        except asyncio.CancelledError as exc:
            if ticket.code is None or ticket.kind == "reactor":
                raise
            task.uncancel()
            if task.cancelling() > baseline:
                raise  # cancelled from outside too
            done = Completed.of(exc)
            if done is not None:
                return cast(T, done.value)
            raise ticket.failure(True) from None

    # --- cancelling -------------------------------------------------------------------

    def cancel(self, run_id: str, code: str = "cancelled") -> bool:
        """Cancel a queued or running run (see the module's docstring)."""
        ticket = self._live.get(run_id)
        if ticket is None or ticket.state is TicketState.DONE:
            return False
        if ticket.code is not None:
            return True  # already on its way out, with the first reason
        ticket.code = code
        if ticket.state is TicketState.QUEUED:
            assert ticket.robot is not None and ticket.waiter is not None
            self.hold(ticket.robot).withdraw(ticket)
            ticket.waiter.set_exception(ticket.failure(False))
        elif ticket.state is TicketState.RUNNING and ticket.task is not None:
            ticket.task.cancel()
        return True  # GRANTED: ``run`` sees the code before the work starts

    def cancel_owned(self, owner: object, name: str, code: str = "cancelled") -> int:
        """Cancel every run of ``name`` that ``owner`` started; how many."""
        mine = [t.run_id for t in self._live.values() if t.owner is owner and t.name == name]
        return sum(self.cancel(run_id, code) for run_id in mine)

    # --- looking -----------------------------------------------------------------------

    def runs(self) -> Iterator[Ticket]:
        """The runs queued or running, oldest first."""
        return iter(list(self._live.values()))

    def queue_depth(self, robot: str) -> int:
        hold = self._holds.get(robot)
        return hold.depth if hold is not None else 0

    def _report(self, event: str, ticket: Ticket, **fields: Any) -> None:
        if self.observer is None:
            return
        out: dict[str, Any] = {"event": event, "reactor": ticket.name if ticket.kind == "reactor" else None,
                               "step": None, "run": ticket.run_id, "time": asyncio.get_running_loop().time()}
        if ticket.kind != "reactor":
            out[ticket.kind] = ticket.name
        if ticket.robot is not None:
            out["robot"] = ticket.robot
        out.update(fields)
        notify(self.observer, out)

