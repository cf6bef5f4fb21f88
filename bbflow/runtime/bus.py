"""The signal bus: delivers envelopes to agents, turns robot callbacks into signals, knows when all is idle.

Every signal reaches every attached agent (the sender included), except:

- the standard robot signals (``robot.safety.changed``, ``robot.state.changed``,
  ``robot.error``, ``robot.event.NAME``): those reach only the agents bound to
  the robot instance named by their source ``/robot/INSTANCE``;
- a signal with a ``subject`` (addressed with ``to``): it reaches only the
  agents bound to that robot instance and the agents bound to no robot
  (coordinators). One from another process, sent to a robot instance no agent
  here is bound to, is for the process that runs that robot: no drop here.

Before its delivery every published signal is offered to the ``wait_signal``
steps waiting for one (``waits``).

With a network bus (``bbflow.runtime.fleet``) a ``Link`` is attached: the
signals this process takes in (standard input) or emits also go out to the
other processes (``Link.send`` leaves out those that stay local), and events
from the other processes come in through ``receive(..., remote=True)``, which
delivers them here only.

``Activity`` counts the work in flight (queued signals, turns, runs,
scheduled signals) so that ``Bus.wait_idle()`` can tell, for
``bbflow run --until-idle``, when nothing is left to do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from bbflow.runtime.door import Door, Refusal
from bbflow.runtime.events import notify
from bbflow.runtime.ports import Observer, RobotPort
from bbflow.runtime.signal_waits import SignalWaits
from bbflow.runtime.signals import (
    ROBOT_EVENT_PREFIX,
    Envelope,
    SignalCatalog,
    is_robot_bound,
    robot_of_source,
    robot_source,
)
from bbflow.runtime.types import TypeMismatch


class Activity:
    """A count of work in flight; idle when it is zero.

    Work is counted so that the count never touches zero while a piece of work
    hands over to the next: a turn's emits are delivered (counted) before the
    turn ends, a run's outcome is queued (counted) before the run ends, and a
    scheduled signal is published before its timer ends.
    """

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    def begin(self) -> None:
        self._count += 1
        self._idle.clear()

    def end(self) -> None:
        if self._count <= 0:
            raise RuntimeError("Activity.end() without a matching begin()")
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self, settle: int = 3) -> None:
        """Return once nothing is in flight and it stays so for ``settle`` loop iterations.

        The settling passes let callbacks already scheduled with ``call_soon``
        (a robot reporting a state change, say) publish their signals first.
        """
        while True:
            await self._idle.wait()
            for _ in range(settle):
                await asyncio.sleep(0)
            if self._count == 0:
                return


class Subscriber(Protocol):
    """What the bus needs of an agent (``bbflow.runtime.agent.AgentServer``)."""

    name: str
    robot_instance: str | None

    def deliver(self, envelope: Envelope) -> None:
        """Take a signal one of its routes matches into the mailbox, and tell the bus when done (``settle``); never blocks."""

    async def room(self) -> None:
        """Return when the mailbox has room for input from outside."""

    def routes(self, signal_type: str) -> bool:
        """Whether one of its routes matches ``signal_type``."""


class Link(Protocol):
    """The way out to other processes (``bbflow.runtime.fleet``)."""

    def send(self, envelope: Envelope) -> bool:
        """Publish ``envelope`` to the other processes; ``False`` when it stays in this one."""


@attrs.define
class _Unsettled:
    """A published signal some agents have not finished with yet."""

    left: int
    handled: bool = False
    reason: str = ""


class Bus:
    """Delivers signals to the attached agents and reports signal events to the observer."""

    def __init__(self, catalog: SignalCatalog, *, observer: Observer | None = None, link: Link | None = None) -> None:
        self.catalog = catalog
        self.observer = observer
        self.link = link
        self.activity = Activity()
        self.dropped = 0  # refused at the door, or handled by no agent
        self.unrouted = 0  # of which handled by no agent
        self._unsettled: dict[int, _Unsettled] = {}  # signals delivered to agents, until each agent is done
        self.door = Door(catalog)  # the door of standard input
        self.waits = SignalWaits()
        self._subscribers: list[Subscriber] = []
        #: asked about each signal from outside before it is taken in: why it cannot be (then it is a drop), or
        #: None (with a journal: ``Journal.refusal``, a signal under the id of one still to be handled)
        self.gate: Callable[[Envelope], str | None] | None = None

    # --- subscribers ---------------------------------------------------------------

    def attach(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        return tuple(self._subscribers)

    # --- publishing ----------------------------------------------------------------

    def publish(self, envelope: Envelope, *, remote: bool = False) -> None:
        """Deliver ``envelope`` to every agent it reaches (no event is reported here).

        A signal of this process also goes out on the link; one that went out is
        no drop here when no agent of this process routes it (another may).
        """
        waited = self.waits.offer(envelope)  # a signal a `wait_signal` step took is no drop
        if not remote and self.link is not None and self.link.send(envelope):
            self._offer(envelope)
            return
        if is_robot_bound(envelope.type):
            instance = robot_of_source(envelope.source)
            targets = [s for s in self._subscribers if instance is not None and s.robot_instance == instance]
            if not targets:
                if not waited:
                    why = f"no agent is bound to robot {instance!r}" if instance else "robot signal without a /robot/INSTANCE source"
                    self._dropped(envelope.type, why)
                return
        else:
            targets = self._addressed(envelope)
        # an agent without a route for the signal simply ignores it; a signal no agent routes is one drop
        routed = [s for s in targets if s.routes(envelope.type)]
        if not routed:
            if not waited and not (remote and self._elsewhere(envelope)):
                self._dropped(envelope.type, self._unrouted(envelope))
            return
        self._unsettled[id(envelope)] = _Unsettled(len(routed), handled=waited)
        for subscriber in routed:
            subscriber.deliver(envelope)

    def settle(self, envelope: Envelope, handled: bool, reason: str = "") -> None:
        """An agent the signal was delivered to is done with it: ``handled`` (a route took it), or not
        (``reason``: no `when` held, its mailbox was full). When every such agent is done and none handled
        it, the signal is one drop, reported once with the last reason."""
        waiting = self._unsettled.get(id(envelope))
        if waiting is None:
            return  # not published here (a fleet notice, a signal that went out on the link)
        waiting.left -= 1
        waiting.handled = waiting.handled or handled
        waiting.reason = reason or waiting.reason
        if waiting.left <= 0:
            del self._unsettled[id(envelope)]
            if not waiting.handled:
                self._dropped(envelope.type, waiting.reason)

    def _dropped(self, signal_type: str, reason: str) -> None:
        """A signal no agent of this process handles: counted and reported once (``unrouted``, as against
        a signal refused at the door)."""
        self.dropped += 1
        self.unrouted += 1
        self.report("signal.dropped", type=signal_type, reason=reason, unrouted=True)

    def _addressed(self, envelope: Envelope) -> list[Subscriber]:
        """The agents a signal reaches: all, or for one with a ``subject`` those bound to that robot
        instance and those bound to no robot."""
        subject = envelope.subject
        if subject is None:
            return self._subscribers
        return [s for s in self._subscribers if s.robot_instance is None or s.robot_instance == subject]

    def _unrouted(self, envelope: Envelope) -> str:
        """Why a signal reaches no agent that routes it: none does, or its ``subject`` left out those that do."""
        subject = envelope.subject
        if subject is not None and any(s.routes(envelope.type) for s in self._subscribers):
            return f"sent to robot {subject!r}: no agent bound to it routes it here, nor does a coordinator"
        return "no agent routes it"

    def _elsewhere(self, envelope: Envelope) -> bool:
        """Whether ``envelope`` is sent ``to`` a robot instance no agent of this process is bound to: one
        from another process then is for the process that runs it, no drop here."""
        subject = envelope.subject
        return subject is not None and all(s.robot_instance != subject for s in self._subscribers)

    def receive(self, envelope: Envelope, *, remote: bool = False) -> Refusal | None:
        """A signal from outside (standard input, a robot, another process when ``remote``): reported as
        ``signal.in``, then published; or, refused by the ``gate``, a drop (returned)."""
        why = self.gate(envelope) if self.gate is not None else None
        if why is not None:
            self.dropped += 1
            self.report("signal.dropped", type=envelope.type, reason=why)
            return Refusal(why, envelope.type)
        self.report("signal.in", type=envelope.type, data=envelope.data, source=envelope.source)
        self.publish(envelope, remote=remote)
        return None

    def notice(self, envelope: Envelope) -> None:
        """A signal about this process's surroundings (fleet membership): reported as ``signal.in`` and
        delivered to the agents that route it; no agent routing it is no drop."""
        self.report("signal.in", type=envelope.type, data=envelope.data, source=envelope.source)
        self.waits.offer(envelope)
        self._offer(envelope)

    def _offer(self, envelope: Envelope) -> None:
        for subscriber in self._addressed(envelope):
            if subscriber.routes(envelope.type):
                subscriber.deliver(envelope)

    async def room(self) -> None:
        """Return when every agent has room for a signal from outside: input waits for this (backpressure)."""
        for subscriber in self._subscribers:
            await subscriber.room()

    def admit(self, raw: Any, door: Door | None = None) -> Envelope | Refusal:
        """Pass a raw signal through ``door`` (default: the door of standard input) and ``receive`` it.

        A drop (a signal refused: undeclared type, bad data, a robot signal not
        from its robot, ...) is counted and reported as ``signal.dropped`` with
        its reason. Input that was not a signal at all is returned as a
        ``Refusal`` without a type, for the caller to report as it sees fit.
        """
        return self.take((door or self.door).admit(raw))

    def take(self, admitted: Envelope | Refusal) -> Envelope | Refusal:
        """What a door made of a raw signal: a drop counted and reported, a signal received (``admit``)."""
        if isinstance(admitted, Refusal):
            if admitted.is_drop:
                self.dropped += 1
                self.report("signal.dropped", type=admitted.type, reason=admitted.reason)
            return admitted
        return self.receive(admitted) or admitted

    def emit(self, envelope: Envelope, agent: str, robot: str | None = None) -> None:
        """A signal emitted by an agent (instance): reported as ``signal.emit`` with its envelope, then published."""
        fields: dict[str, Any] = {"type": envelope.type, "data": envelope.data, "agent": agent}
        if robot is not None:
            fields["robot"] = robot
        fields.update(id=envelope.id, source=envelope.source, signal_time=envelope.time,
                      traceparent=envelope.traceparent)
        if envelope.subject is not None:
            fields["subject"] = envelope.subject
        self.report("signal.emit", **fields)
        self.publish(envelope)

    # --- idle and events -----------------------------------------------------------

    async def wait_idle(self) -> None:
        """Return when no signal is queued, no handler is running, no run is in flight
        and nothing is scheduled."""
        await self.activity.wait_idle()

    def report(self, event: str, **fields: Any) -> None:
        """Give the observer a runtime event (``signal.*`` and ``agent.*``)."""
        if self.observer is not None:
            notify(self.observer, {"event": event, "reactor": None, "step": None, "run": None, "time": _now(), **fields})


def _now() -> float:
    """The loop's monotonic clock, like every runtime event (``bbflow.runtime.events``)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # reported outside a running loop (a signal refused before start-up)
        return time.monotonic()


class RobotSignals:
    """Turns one robot's callbacks into the standard robot signals on a bus.

    ``connect()`` subscribes to the port's ``on_safety``, ``on_state`` and
    ``on_event`` (and to ``on_error(callback(message))`` when the port offers
    one; the ``RobotPort`` protocol does not require it) and returns a function
    that unsubscribes them all. Event data is checked against the robot's own
    declaration of the event; data that does not conform is dropped with a reason.
    """

    def __init__(self, bus: Bus, port: RobotPort) -> None:
        self.bus = bus
        self.port = port
        self.source = robot_source(port.instance)

    def connect(self) -> Callable[[], None]:
        unsubscribers = [
            self.port.on_safety(self.safety_changed),
            self.port.on_state(self.state_changed),
            self.port.on_event(self.event),
        ]
        on_error = getattr(self.port, "on_error", None)
        if callable(on_error):
            unsubscribers.append(on_error(self.error))

        def disconnect() -> None:
            for unsubscribe in unsubscribers:
                unsubscribe()

        return disconnect

    def safety_changed(self, old: str, new: str) -> None:
        self._send("robot.safety.changed", {"from": old, "to": new})

    def state_changed(self, old: str, new: str) -> None:
        self._send("robot.state.changed", {"from": old, "to": new})

    def error(self, message: str) -> None:
        self._send("robot.error", {"message": message})

    def event(self, name: str, data: Any) -> None:
        signal_type = ROBOT_EVENT_PREFIX + name
        spec = self.port.spec.events.get(name)
        if spec is None:
            self.bus.dropped += 1
            self.bus.report("signal.dropped", type=signal_type, reason=f"{self.port.spec.name} declares no event {name!r}")
            return
        if spec.payload is not None:
            try:
                data = spec.payload.conform(data, "data")
            except TypeMismatch as exc:
                self.bus.dropped += 1
                self.bus.report("signal.dropped", type=signal_type, reason=f"bad data: {exc}")
                return
        else:
            data = None
        self._send(signal_type, data)

    def _send(self, signal_type: str, data: Any) -> None:
        self.bus.receive(Envelope(type=signal_type, source=self.source, data=data))
