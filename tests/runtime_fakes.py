"""A scriptable fake robot (the whole ``RobotPort`` protocol) and hand-built models for executor tests.

``FakeRobot`` records every command call (start, end, outcome, virtual time),
takes ``duration`` per command, and misbehaves on cue: ``robot.cue("move_to",
call=3, error="collision")``, ``delay=...``, ``disarm=True`` (drops to
disarmed half-way through the call), ``exception=ValueError(...)`` (a driver
bug), ``hang=True`` (never answers). It passes cancellation through like the
real proxy and publishes configured events after successful commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
from arm_spec import ARM, POSE

from bbflow.runtime import model
from bbflow.runtime.bus import Bus
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.door import Door, Refusal
from bbflow.runtime.events import Recorder, fanout
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.signals import Envelope, SignalRejected
from bbflow.runtime.types import ANY

_UNSET = object()  # a cue without a result of its own


@attrs.define
class Cue:
    command: str
    call: int | None = None  # 1-based call number of that command; None: every call
    match: dict[str, Any] | None = None  # only calls with these keyword arguments
    error: str | None = None
    delay: float | None = None
    disarm: bool = False
    exception: BaseException | None = None
    hang: bool = False
    result: Any = _UNSET


@attrs.define
class CallRecord:
    command: str
    kwargs: dict[str, Any]
    number: int  # 1-based among calls of this command
    start: float
    end: float | None = None
    outcome: str = "running"  # ok, error, cancelled
    timeout: float | None = None


class FakeRobot:
    """Implements ``bbflow.runtime.ports.RobotPort`` in memory, on the running loop's clock."""

    def __init__(
        self,
        spec: model.Robot,
        *,
        instance: str = "arm",
        safety: str = "armed",
        duration: float = 0.02,
        results: dict[str, Any] | None = None,
        after: dict[str, tuple[str, Any, float]] | None = None,
    ) -> None:
        self.spec = spec
        self.instance = instance
        self._safety = safety
        self._state = "idle"
        self.duration = duration
        #: command -> its result, or a callable(kwargs) -> result; default: echo the first argument
        self.results = dict(results or {})
        #: command -> (event, data, delay): publish after each successful call
        self.after = dict(after or {})
        self.cues: list[Cue] = []
        self.calls: list[CallRecord] = []
        self._counts: dict[str, int] = {}
        self._safety_cbs: list[Callable[[str, str], None]] = []
        self._state_cbs: list[Callable[[str, str], None]] = []
        self._event_cbs: list[Callable[[str, Any], None]] = []
        self._state_waiters: list[tuple[tuple[str, ...], asyncio.Future[str]]] = []
        self._event_waiters: list[tuple[str, Callable[[Any], bool] | None, asyncio.Future[Any]]] = []
        self._timers: list[asyncio.TimerHandle] = []
        #: (time, old, new) for every safety change
        self.safety_changes: list[tuple[float, str, str]] = []

    # --- scripting ------------------------------------------------------------------

    def cue(self, command: str, **how: Any) -> FakeRobot:
        self.cues.append(Cue(command, **how))
        return self

    def commands(self, outcome: str | None = None) -> list[str]:
        """Names of the commands called (that ended with ``outcome``), in call order."""
        return [c.command for c in self.calls if outcome is None or c.outcome == outcome]

    def tags(self, command: str, outcome: str | None = None) -> list[Any]:
        """The ``tag`` argument of each call of ``command`` (that ended with ``outcome``)."""
        return [c.kwargs.get("tag") for c in self.calls
                if c.command == command and (outcome is None or c.outcome == outcome)]

    def max_in_flight(self, command: str | None = None) -> int:
        """The largest number of calls (of ``command``) that were running at the same time."""
        edges = []
        for c in self.calls:
            if command is None or c.command == command:
                edges.append((c.start, 1))
                edges.append((c.end if c.end is not None else float("inf"), -1))
        best = now = 0
        for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start at the same time
            now += delta
            best = max(best, now)
        return best

    def running(self) -> list[CallRecord]:
        return [c for c in self.calls if c.outcome == "running"]

    # --- RobotPort --------------------------------------------------------------------

    @property
    def safety(self) -> str:
        return self._safety

    @property
    def state(self) -> str:
        return self._state

    def set_safety(self, new: str) -> None:
        old, self._safety = self._safety, new
        if old != new:
            self.safety_changes.append((asyncio.get_running_loop().time(), old, new))
            for cb in list(self._safety_cbs):
                cb(old, new)

    def set_state(self, new: str) -> None:
        old, self._state = self._state, new
        if old == new:
            return
        for cb in list(self._state_cbs):
            cb(old, new)
        for states, fut in list(self._state_waiters):
            if new in states and not fut.done():
                fut.set_result(new)

    def publish(self, event: str, data: Any) -> None:
        for cb in list(self._event_cbs):
            cb(event, data)
        for name, predicate, fut in list(self._event_waiters):
            if name == event and not fut.done() and (predicate is None or predicate(data)):
                fut.set_result(data)

    async def call(self, command: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
        loop = asyncio.get_running_loop()
        number = self._counts[command] = self._counts.get(command, 0) + 1
        record = CallRecord(command, dict(kwargs), number, loop.time(), timeout=timeout)
        self.calls.append(record)
        cue = next((c for c in self.cues if c.command == command and c.call in (None, number)
                    and (c.match is None or all(kwargs.get(k) == v for k, v in c.match.items()))), None)
        try:
            if self._safety != "armed" and command not in ("arm", "disarm"):
                raise RuntimeFailure(f"{command}: the robot is {self._safety}", "not_armed", command=command)
            duration = cue.delay if cue is not None and cue.delay is not None else self.duration
            if cue is not None and cue.hang:
                await loop.create_future()
            if cue is not None and cue.disarm:
                await asyncio.sleep(duration / 2)
                self.set_safety("disarmed")
                await asyncio.sleep(duration / 2)
                raise RuntimeFailure(f"{command}: stopped, the robot was disarmed", "not_armed", command=command)
            if duration:
                await asyncio.sleep(duration)
            if cue is not None and cue.exception is not None:
                raise cue.exception
            if cue is not None and cue.error is not None:
                raise RuntimeFailure(f"{command}: {cue.error}", "command", command=command)
            value = self._result(command, kwargs, cue)
        except asyncio.CancelledError:
            record.outcome, record.end = "cancelled", loop.time()
            raise
        except BaseException:
            record.outcome, record.end = "error", loop.time()
            raise
        record.outcome, record.end = "ok", loop.time()
        if command in self.after:
            event, data, delay = self.after[command]
            self._timers.append(loop.call_later(delay, self.publish, event, data))
        return value

    def _result(self, command: str, kwargs: dict[str, Any], cue: Cue | None) -> Any:
        if cue is not None and cue.result is not _UNSET:
            return cue.result
        if command in self.results:
            result = self.results[command]
            return result(kwargs) if callable(result) else result
        if kwargs:
            return next(iter(kwargs.values()))
        spec = self.spec.commands.get(command)
        return spec.result.zero() if spec is not None else None

    async def wait_state(self, states: tuple[str, ...]) -> str:
        if self._state in states:
            return self._state
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        entry = (states, fut)
        self._state_waiters.append(entry)
        try:
            return await fut
        finally:
            self._state_waiters.remove(entry)

    async def wait_event(self, event: str, predicate: Callable[[Any], bool] | None = None) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (event, predicate, fut)
        self._event_waiters.append(entry)
        try:
            return await fut
        finally:
            self._event_waiters.remove(entry)

    def on_safety(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return _subscribe(self._safety_cbs, callback)

    def on_state(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return _subscribe(self._state_cbs, callback)

    def on_event(self, callback: Callable[[str, Any], None]) -> Callable[[], None]:
        return _subscribe(self._event_cbs, callback)

    def subscribers(self) -> int:
        """How many safety listeners are registered (a finished run must leave none)."""
        return len(self._safety_cbs)


def _subscribe(listeners: list[Any], callback: Any) -> Callable[[], None]:
    listeners.append(callback)

    def unsubscribe() -> None:
        if callback in listeners:
            listeners.remove(callback)

    return unsubscribe


# --- the PickAndPlace reactor of the conformance cases, on the Arm of tests/arm_spec.py --------


def move_to(target: model.Expr) -> model.CommandCall:
    return model.CommandCall("move_to", lambda s: {"target": target(s), "speed": 0.5})


def pick_and_place(**options: Any) -> model.Reactor:
    """``reactor PickAndPlace(pick: Pose, place: Pose) -> Pose on Arm`` of the conformance cases."""
    S = model.Step
    body = model.Body(
        (
            S("ready", model.WaitState(("idle",)), timeout=5.0),
            S("approach", move_to(lambda s: s["pick"]), deps=("ready",), timeout=10.0,
              retry=model.Retry(2, 0.05), undo=model.Undo(model.CommandCall("home", lambda s: {}))),
            S("grip", model.CommandCall("close_gripper", lambda s: {"force": 15.0}), deps=("approach",)),
            S("gripped", model.WaitEvent("force", lambda s: s["gripped"]["newtons"] > 5.0), deps=("grip",),
              timeout=2.0),
            S("lift", move_to(lambda s: {"x": s["pick"]["x"], "y": s["pick"]["y"], "z": s["pick"]["z"] + 0.1}),
              deps=("gripped", "pick"), timeout=10.0, undo=model.Undo(move_to(lambda s: s["pick"]))),
            S("placed", move_to(lambda s: s["place"]), deps=("lift", "place"), timeout=10.0,
              undo=model.Undo(move_to(lambda s: s["lift"]))),
            S("release", model.CommandCall("open_gripper", lambda s: {}), deps=("placed",),
              irreversible="the part is placed"),
        ),
        model.Return(lambda s: s["placed"]),
    )
    fields: dict[str, Any] = dict(
        name="PickAndPlace",
        qualname="cell.PickAndPlace",
        params=(model.Param("pick", POSE), model.Param("place", POSE)),
        result=POSE,
        robot="cell.Arm",
        body=body,
    )
    fields.update(options)
    return model.Reactor(**fields)


def program(*reactors: model.Reactor, robot: model.Robot | None = None,
            actions: tuple[model.Action, ...] = ()) -> model.Program:
    prog = model.Program()
    prog.add(robot or ARM)
    for decl in (*reactors, *actions):
        prog.add(decl)
    return prog


def arm(**options: Any) -> FakeRobot:
    """A fake arm that publishes ``force`` 10 ms after each successful ``close_gripper``."""
    options.setdefault("after", {"close_gripper": ("force", {"newtons": 12.0}, 0.01)})
    return FakeRobot(ARM, **options)


PICK = {"x": 0.2, "y": 0.0, "z": 0.1}
PLACE = {"x": 0.0, "y": 0.3, "z": 0.1}


# --- a generic robot for scheduling tests: ``op(tag)`` and ``undo(tag)`` -------------------------


def ops_spec(undo_timeout: float | None = None) -> model.Robot:
    tag = (model.Param("tag", ANY),)
    commands = {
        "op": model.Command("op", tag, ANY),
        "undo": model.Command("undo", tag, ANY, timeout=undo_timeout),
        "auto": model.Command("auto", tag, ANY, undo=model.CommandCall("undo", lambda s: {"tag": s["args"]["tag"]})),
    }
    return model.Robot("Ops", "t.Ops", ("idle",), (), commands, {})


def op(name: str, *deps: str, tag: Any = None, undo: bool = True, command: str = "op", **options: Any) -> model.Step:
    """A step ``NAME = op(tag: NAME) after DEPS undo undo(tag: NAME)``."""
    the_tag = name if tag is None else tag
    return model.Step(
        name,
        model.CommandCall(command, lambda s: {"tag": the_tag}),
        deps=deps,
        undo=model.Undo(model.CommandCall("undo", lambda s: {"tag": name})) if undo else None,
        **options,
    )


def reactor(*nodes: model.Node, end: model.Return | model.Fail | None = None, name: str = "R",
            params: tuple[model.Param, ...] = (), **options: Any) -> model.Reactor:
    return model.Reactor(name, f"t.{name}", params, ANY if isinstance(end, model.Return) else None, "t.Ops",
                         model.Body(tuple(nodes), end), **options)


def ops(**options: Any) -> FakeRobot:
    options.setdefault("duration", 0.01)
    return FakeRobot(options.pop("spec", None) or ops_spec(), **options)


async def execute(reactor: model.Reactor, robot: FakeRobot | None, inputs: dict[str, Any] | None = None, *,
                  prog: model.Program | None = None, **kw: Any) -> tuple[Any, Recorder]:
    """Run to the end with a recorder; checks that the run left no task and no safety listener behind."""
    recorder = Recorder()
    if prog is None:
        prog = program(reactor, robot=robot.spec if robot is not None else ops_spec())
    observer = fanout(recorder, kw.pop("observer", None))
    result = await run_reactor(prog, reactor, inputs or {}, robot=robot, observer=observer, **kw)
    assert asyncio.all_tasks() == {asyncio.current_task()}, "a run left a task behind"
    if robot is not None:
        assert robot.subscribers() == 0, "a run left a safety listener behind"
    return result, recorder


def run(reactor: model.Reactor, robot: FakeRobot | None, inputs: dict[str, Any] | None = None,
        **kw: Any) -> tuple[Any, Recorder]:
    return run_virtual(execute(reactor, robot, inputs, **kw))


def steps_of(recorder: Recorder, event: str) -> list[str | None]:
    """The ``step`` of each ``event``, in order."""
    return [e["step"] for e in recorder.events if e["event"] == event]


def receive_json(bus: Bus, obj: Any, *, source: str = "/stdin") -> Envelope | None:
    """``bus.admit`` a parsed structured-form signal through a door of ``source``: a drop gives ``None``, a
    non-signal raises ``SignalRejected``."""
    admitted = bus.admit(obj, Door(bus.catalog, source=source))
    if isinstance(admitted, Refusal):
        if not admitted.is_drop:
            raise SignalRejected(admitted.reason)
        return None
    return admitted
