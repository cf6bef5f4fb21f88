"""The agent server: one agent's mailbox, state and turns.

An agent handles one item of its mailbox at a time (a *turn*), so its state
is never raced. An item is a signal or the outcome of a ``run`` it started.

- A signal turn runs the first route, in dispatch order, whose ``when`` holds
  (single-handler semantics); if none does, the agent tells the bus, which
  reports the signal dropped once if no other agent handled it either.
- A turn is a transaction: it works on a copy of the state taken at its start,
  and collects its emits, schedules and runs. If any statement fails (an
  expression raises, a ``set`` value has the wrong type, an ``emit`` carries bad
  data), the copy is thrown away, nothing is sent or started, ``agent.error``
  is reported, and the agent goes on with the next item.
- ``run CALL`` never blocks the agent: the call runs as a child task of the
  agent (cancelled, and so rolled back, if the agent stops) and its outcome
  comes back as a turn of its own running ``then`` (``result`` in scope) or
  ``else`` (``error`` = ``{message, code}``), with the binding of the route
  that started it.
- One agent definition runs as one ``AgentServer`` per robot instance it is
  bound to (``[agent.NAME] robots = [...]``): each has its own state and
  mailbox, ``instance`` in its expressions, source ``/agent/NAME/INSTANCE``,
  and ``"robot": INSTANCE`` in its events.
- Every signal a turn emits or schedules gets a fresh id and time, the
  agent's source, the ``subject`` given by ``to``, and a ``traceparent`` in
  the trace of the signal the turn handles (a new trace when it had none).
- ``run`` goes through the runtime's task registry (``bbflow.runtime.tasks``)
  with a run id the agent chooses, so that ``cancel REACTOR`` can cancel every
  run of REACTOR this instance started, queued or running, even one whose
  task has not begun yet.
- The mailbox is bounded (default 10,000 signals); a signal that finds it full
  is counted (and a drop if no other agent handles it). Run outcomes are never dropped: they are
  few (one per run in flight) and the agent's state depends on them. Input
  from outside waits for ``room()`` (the mailbox at most half full) before it
  is delivered, so input never overflows a mailbox: it is read as agents take it.
  With a journal, it also waits while the journal's writer has too many
  records not yet committed (a disk slower than the input), so neither the
  mailbox nor the journal's queue grows with the input.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeGuard

import attrs

from bbflow.runtime import executor, model
from bbflow.runtime.actions import resolve_action
from bbflow.runtime.bus import Bus
from bbflow.runtime.calls import call_action
from bbflow.runtime.events import jsonable
from bbflow.runtime.ids import uuid7
from bbflow.runtime.journal import ORIGIN, Journal, Journaled, Origin, journaled_call, planner
from bbflow.runtime.journal.agents import AgentJournal
from bbflow.runtime.linemap import add_flow_note
from bbflow.runtime.ports import ActionResolver, Completed, NotSent, Observer, RobotPort, RuntimeFailure, error_text
from bbflow.runtime.rollback import undo_command_cut_off
from bbflow.runtime.router import Router
from bbflow.runtime.run_events import TRACEPARENT, command_event
from bbflow.runtime.signal_waits import SignalWaits
from bbflow.runtime.signals import Envelope, SignalRejected, child_traceparent, now_rfc3339
from bbflow.runtime.tasks import Tasks
from bbflow.runtime.types import TypeMismatch

DEFAULT_MAILBOX = 10_000
#: Turns in a row before the server lets other tasks of the loop run.
YIELD_EVERY = 16

#: Runs the CALL of a ``run`` statement with its evaluated arguments and returns
#: its value; raises ``RuntimeFailure`` when it fails (a halted reactor: code ``halted``).
#: Called with keywords ``owner`` (the agent instance), ``run_id`` and ``preempt``.
RunCall = Callable[..., Awaitable[Any]]


@attrs.frozen(slots=True)
class Outcome:
    """How a run started by a route ended; handled as a turn of its own."""

    route: model.Route
    binding: dict[str, Any] | None  # the envelope binding of the route that started the run
    run: model.Run
    ok: bool
    value: Any  # the result, or {"message", "code"}
    traceparent: str | None = None  # of the signal whose turn started the run
    run_id: str | None = None  # with a journal: the run's id (its outcome turn is journaled as taken)


@attrs.define
class AgentStats:
    received: int = 0  # signals taken into the mailbox
    handled: int = 0  # signal turns that ran a route
    dropped_overflow: int = 0
    dropped_unmatched: int = 0  # no pattern matched, or no `when` held
    errors: int = 0  # failed handlers (agent.error)
    runs_started: int = 0
    runs_in_flight: int = 0
    crashes: int = 0  # the server itself failed (restarted by its supervisor)


class Mailbox:
    """A FIFO of signals and run outcomes; only signals count against the capacity."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.feed_limit = max(1, capacity // 2)  # input from outside waits while this many signals are queued
        self._items: deque[Envelope | Outcome] = deque()
        self._signals = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, envelope: Envelope) -> bool:
        if self._signals >= self.capacity:
            return False
        self._signals += 1
        if self._signals >= self.feed_limit:
            self._room.clear()
        self._put(envelope)
        return True

    async def room(self) -> None:
        """Return once fewer than ``feed_limit`` signals are queued."""
        while self._signals >= self.feed_limit:
            self._room.clear()
            await self._room.wait()

    def put_outcome(self, outcome: Outcome) -> None:
        self._put(outcome)

    def _put(self, item: Envelope | Outcome) -> None:
        self._items.append(item)
        self._ready.set()

    async def get(self) -> Envelope | Outcome:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, Envelope):
            self._signals -= 1
            if self._signals < self.feed_limit:
                self._room.set()
        return item


class HandlerError(Exception):
    """A statement of a handler failed; the turn is rolled back."""

    def __init__(self, message: str, code: str = "expression", line: int = 0) -> None:
        super().__init__(message)
        self.failure = RuntimeFailure(message, code)
        self.line = line


@attrs.define
class _Effects:
    """What a turn sends and starts once it has succeeded."""

    emits: list[Envelope] = attrs.Factory(list)
    schedules: list[tuple[float, Envelope]] = attrs.Factory(list)
    #: runs to start (with their arguments) and reactors to cancel (``None``), in statement order
    tasks: list[tuple[model.Run | model.Cancel, dict[str, Any] | None]] = attrs.Factory(list)


class AgentServer:
    """Runs one agent: ``serve()`` processes its mailbox until cancelled.

    The bus delivers signals with ``deliver``. ``serve`` starts from the
    initial state each time it is called, so a supervisor that restarts a
    crashed server restarts the agent afresh; signals still queued are kept.
    """

    def __init__(
        self,
        spec: model.Agent,
        bus: Bus,
        *,
        runner: RunCall | None = None,
        robot_instance: str | None = None,
        mailbox_size: int = DEFAULT_MAILBOX,
        tasks: Tasks | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.bus = bus
        self.runner = runner
        self.robot_instance = robot_instance
        self.tasks = tasks
        self.router = Router(spec.routes)
        self.mailbox = Mailbox(mailbox_size)
        self.stats = AgentStats()
        self.last_signal: str | None = None
        self._fields = {f.name: f for f in spec.state}
        self._source = f"/agent/{spec.name}" + (f"/{robot_instance}" if robot_instance else "")
        #: what every event of this instance says about it
        self._who: dict[str, Any] = {"agent": spec.name}
        if robot_instance:
            self._who["robot"] = robot_instance
        self._implicit = {"instance": robot_instance or ""}
        #: runs in flight by run id -> the reactor's qualname (commands and actions: None)
        self._runs: dict[str, str | None] = {}
        self._precancelled: set[str] = set()
        self._group: asyncio.TaskGroup | None = None
        self.state: dict[str, Any] = self.initial_state()
        #: the journal's side of this agent instance, and what it restores when ``serve`` first starts
        self.journal = AgentJournal(journal, self.key) if journal is not None else None
        self._resume: list[tuple[str, Envelope, float]] | None = None
        bus.attach(self)

    @property
    def key(self) -> str:
        """The agent instance as journaled and in run origins: ``Picker``, or ``Picker/left``."""
        return f"{self.name}/{self.robot_instance}" if self.robot_instance else self.name
    def initial_state(self) -> dict[str, Any]:
        return {f.name: f.type.conform(f.default({}), f.name) for f in self.spec.state}

    @property
    def queue_depth(self) -> int:
        return len(self.mailbox)

    async def room(self) -> None:
        """Return when the mailbox can take input from outside, and the journal (if any) has room for what
        it writes (backpressure for ``Bus.room``)."""
        await self.mailbox.room()
        if self.journal is not None:
            await self.journal.room()

    # --- intake (called by the bus) ------------------------------------------------

    def routes(self, signal_type: str) -> bool:
        return self.router.matches(signal_type)

    def deliver(self, envelope: Envelope) -> None:
        if not self.router.matches(envelope.type):
            return  # not for this agent: ignored, not a drop (the bus drops what no agent routes)
        if not self.mailbox.offer(envelope):
            self.stats.dropped_overflow += 1
            self.bus.settle(envelope, False, f"the mailbox of {self.name} is full ({self.mailbox.capacity})")
            return
        self.stats.received += 1
        self.bus.activity.begin()
        if self.journal is not None:
            self.journal.accepted(envelope)

    # --- after a crash (with a journal) -------------------------------------------------

    def recover(self, outcomes: list[tuple[dict[str, Any], bool, Any]]) -> None:
        """Take up where the journal left off, before any new signal: state, the outcome turns of its runs
        that ended (or that recovery rolled back or held: ``else`` with code ``recovered``) while their
        turn was never journaled, pending signals, schedules.

        ``outcomes``: (origin, ok, result or error) of those runs.
        """
        assert self.journal is not None
        state = self.journal.restore()
        if state is not None:
            self.state = self._restored(state)
        for origin, ok, value in outcomes:
            route = next((r for r in self.spec.routes if r.pattern == origin.get("route")), None)
            run = _find_run(route.body, origin.get("line", 0)) if route is not None else None
            if route is None or run is None or (run.then if ok else run.else_) is None:
                continue
            self.mailbox.put_outcome(Outcome(route, origin.get("binding"), run, ok, value, None, origin.get("run")))
            self.bus.activity.begin()
        for envelope in self.journal.pending():
            try:
                data = self.bus.catalog.conform(envelope.type, envelope.data)
            except SignalRejected as exc:  # the program changed since: the signal no longer fits
                self.bus.report("signal.dropped", type=envelope.type, agent=self.name, reason=exc.reason)
                self.journal.turned(self.state, envelope)
                continue
            self.deliver(attrs.evolve(envelope, data=data))
        self._resume = self.journal.schedules()

    def _restored(self, journaled: dict[str, Any]) -> dict[str, Any]:
        """The journaled state, field by field; a field that no longer fits its type starts afresh."""
        state = self.initial_state()
        for name, field in self._fields.items():
            if name in journaled:
                try:
                    state[name] = field.type.conform(journaled[name], name)
                except TypeMismatch:
                    pass
        return state

    # --- the server loop -----------------------------------------------------------

    async def serve(self) -> None:
        """Handle the mailbox one item at a time until cancelled.

        Runs and scheduled signals are children of this task: when it stops
        (cancelled, or crashed by a bug) they are cancelled and awaited.
        """
        if self._resume is None:
            self.state = self.initial_state()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                if self._resume is not None:  # the first start after a recovery: keep the restored state
                    for key, envelope, delay in self._resume:
                        self._schedule(delay, envelope, key)
                    self._resume = None
                turns = 0
                while True:
                    item = await self.mailbox.get()
                    started = self.stats.runs_started
                    try:
                        self.turn(item)
                    finally:
                        self.bus.activity.end()
                    # A turn never awaits, and a full mailbox never makes `get` wait.
                    # Yield after a turn that started runs, so that they begin (and
                    # report run.start) before the next turn, as they would had the
                    # signals come apart; and every few turns, so that a flood of
                    # signals cannot starve the drivers and runs sharing the loop.
                    turns += 1
                    if self.stats.runs_started != started or turns % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.stats.crashes += 1
            raise
        finally:
            self._group = None

    def turn(self, item: Envelope | Outcome) -> None:
        """Handle one mailbox item (synchronously: a turn never awaits)."""
        if self.journal is None:
            if isinstance(item, Envelope):
                self._signal_turn(item)
            else:
                self._outcome_turn(item)
            return
        self.journal.begin_turn()
        try:
            if isinstance(item, Envelope):
                self._signal_turn(item)
            else:
                self._outcome_turn(item)
        finally:  # committed as one: what the turn sent, scheduled and started, its state, what it took
            if isinstance(item, Envelope):
                self.journal.turned(self.state, item)
            else:
                self.journal.turned(self.state, None, item.run_id)

    def _signal_turn(self, envelope: Envelope) -> None:
        self.last_signal = envelope.type
        binding = envelope.binding()
        for route in self.router.lookup(envelope.type):
            extras = {route.bind: binding} if route.bind else {}
            if route.when is not None:
                try:
                    holds = route.when({**self._implicit, **self.state, **extras})
                except Exception as exc:
                    self._failed(route, HandlerError(f"when: {error_text(exc)}{_located(exc)}", line=route.line))
                    self.bus.settle(envelope, True)  # taken, and failed: an agent.error, not a drop
                    return
                if not holds:
                    continue
            self.stats.handled += 1
            self.bus.report("signal.routed", type=envelope.type, **self._who, route=route.pattern)
            self.bus.settle(envelope, True)
            self._transaction(route, binding, route.body, extras, envelope.traceparent)
            return
        self.stats.dropped_unmatched += 1
        self.bus.settle(envelope, False, "no route's `when` holds")

    def _outcome_turn(self, outcome: Outcome) -> None:
        body = outcome.run.then if outcome.ok else outcome.run.else_
        if body is None:
            return
        route = outcome.route
        extras: dict[str, Any] = {route.bind: outcome.binding} if route.bind else {}
        extras["result" if outcome.ok else "error"] = outcome.value
        self._transaction(route, outcome.binding, body, extras, outcome.traceparent)

    def _transaction(
        self, route: model.Route, binding: dict[str, Any] | None, body: tuple[model.Stmt, ...], extras: dict[str, Any],
        traceparent: str | None = None,
    ) -> None:
        # A shallow copy is enough: `set` replaces a field's value, never mutates it,
        # and values are conformed copies (records and lists are rebuilt by `conform`).
        working = dict(self.state)
        scope = {**self._implicit, **working, **extras}
        effects = _Effects()
        try:
            self._execute(body, scope, working, extras, effects)
        except HandlerError as exc:
            self._failed(route, exc)
            return
        self.state = working
        if traceparent is None and (effects.emits or effects.schedules):
            traceparent = child_traceparent(None)  # the turn starts a trace: its signals share it
        for envelope in effects.emits:
            self.bus.emit(attrs.evolve(envelope, traceparent=child_traceparent(traceparent)), self.name,
                          self.robot_instance)
        for delay, envelope in effects.schedules:
            self._schedule(delay, attrs.evolve(envelope, traceparent=child_traceparent(traceparent)))
        for task, args in effects.tasks:
            if isinstance(task, model.Cancel):
                self._cancel(task.reactor)
            else:
                assert args is not None
                self._start_run(route, binding, task, args, traceparent)

    def _execute(
        self,
        body: tuple[model.Stmt, ...],
        scope: dict[str, Any],
        working: dict[str, Any],
        extras: Mapping[str, Any],
        effects: _Effects,
    ) -> None:
        for stmt in body:
            if isinstance(stmt, model.Set):
                field = self._fields.get(stmt.field)
                if field is None:
                    raise HandlerError(f"set {stmt.field}: {self.name} has no state field {stmt.field!r}", line=stmt.line)
                value = _evaluate(stmt.expr, scope, stmt.line, f"set {stmt.field}")
                if stmt.key is not None:
                    key = _evaluate(stmt.key, scope, stmt.line, f"set {stmt.field}[...]")
                    value = _replaced(working[stmt.field], key, value, stmt)
                try:
                    value = field.type.conform(value, stmt.field)
                except TypeMismatch as exc:
                    raise HandlerError(f"set {stmt.field}: {exc}", line=stmt.line) from None
                working[stmt.field] = value
                if stmt.field not in extras:
                    scope[stmt.field] = value
            elif isinstance(stmt, model.Emit):
                effects.emits.append(self._envelope(stmt, scope, "emit"))
            elif isinstance(stmt, model.Schedule):
                delay = _evaluate(stmt.delay, scope, stmt.line, f"schedule {stmt.type} in") \
                    if callable(stmt.delay) else stmt.delay
                effects.schedules.append((delay, self._envelope(stmt, scope, "schedule")))
            elif isinstance(stmt, model.Run):
                args = _evaluate(stmt.call.args, scope, stmt.line, "run") if _has_args(stmt.call) else {}
                if self.runner is None:
                    raise HandlerError(f"run: agent {self.name} has no runner", line=stmt.line)
                effects.tasks.append((stmt, dict(args)))
            elif isinstance(stmt, model.Cancel):
                effects.tasks.append((stmt, None))
            elif isinstance(stmt, model.If):
                cond = _evaluate(stmt.cond, scope, stmt.line, "if")
                self._execute(stmt.then if cond else stmt.else_, scope, working, extras, effects)
            else:  # pragma: no cover - guarded by the model's types
                raise HandlerError(f"unknown statement {stmt!r}", line=getattr(stmt, "line", 0))

    def _envelope(self, stmt: model.Emit | model.Schedule, scope: Mapping[str, Any], what: str) -> Envelope:
        """The signal an ``emit`` or ``schedule`` sends (its time and trace are set when it is sent)."""
        data = self._payload(stmt.type, stmt.data, scope, stmt.line, what)
        subject = None
        if stmt.to is not None:
            subject = _evaluate(stmt.to, scope, stmt.line, f"{what} {stmt.type} to")
            if not isinstance(subject, str) or not subject:
                raise HandlerError(f"{what} {stmt.type} to: expected a robot instance name, found {subject!r}",
                                   line=stmt.line)
        return Envelope(type=stmt.type, source=self._source, data=data, subject=subject)

    def _payload(self, signal_type: str, expr: model.Expr | None, scope: Mapping[str, Any], line: int, what: str) -> Any:
        data = None if expr is None else _evaluate(expr, scope, line, f"{what} {signal_type}")
        try:
            return self.bus.catalog.conform(signal_type, data)
        except SignalRejected as exc:
            raise HandlerError(f"{what} {signal_type}: {exc.reason}", line=line) from None

    # --- children: runs and scheduled signals --------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        if self._group is None:
            raise RuntimeError(f"agent {self.name} is not being served")
        self._group.create_task(coro)  # type: ignore[arg-type]

    def _schedule(self, delay: float, envelope: Envelope, key: str | None = None) -> None:
        if self.journal is not None and key is None:
            key = self.journal.scheduled(envelope, delay)
        self.bus.activity.begin()
        self._spawn(self._fire_later(delay, envelope, key))

    async def _fire_later(self, delay: float, envelope: Envelope, key: str | None = None) -> None:
        try:
            await asyncio.sleep(delay)
            # a fresh id and the time it is sent
            sent = attrs.evolve(envelope, id=uuid7(), time=now_rfc3339())
            if self.journal is None or key is None:
                self.bus.emit(sent, self.name, self.robot_instance)
            else:  # the deliveries and the end of the schedule are journaled as one
                self.journal.begin_turn()
                try:
                    self.bus.emit(sent, self.name, self.robot_instance)
                    self.journal.fired(key)
                finally:
                    self.journal.end_atomic()
        finally:
            self.bus.activity.end()

    def _start_run(self, route: model.Route, binding: dict[str, Any] | None, run: model.Run, args: dict[str, Any],
                   traceparent: str | None = None) -> None:
        self.stats.runs_started += 1
        self.stats.runs_in_flight += 1
        self.bus.activity.begin()
        run_id = uuid7()
        self._runs[run_id] = run.call.reactor if isinstance(run.call, model.ReactorCall) else None
        if self.journal is not None and isinstance(run.call, (model.ReactorCall, model.CommandCall)):
            # recorded with the turn that starts it: after a crash, the run is either known or never started
            called = run.call.reactor if isinstance(run.call, model.ReactorCall) else run.call.command
            self.journal.run_allotted(called.rsplit(".", 1)[-1], args, self._origin(route, binding, run, run_id))
        self._spawn(self._run_child(route, binding, run, args, run_id, traceparent))

    def _origin(self, route: model.Route, binding: dict[str, Any] | None, run: model.Run, run_id: str) -> Origin:
        return Origin(self.robot_instance, self.key, route.pattern, run.line, binding, run_id)

    def _cancel(self, reactor: str) -> None:
        """``cancel REACTOR``: every run of it this instance started, queued or running."""
        for run_id, name in list(self._runs.items()):
            if name != reactor:
                continue
            if self.tasks is None or not self.tasks.cancel(run_id):
                self._precancelled.add(run_id)  # its task has not reached the registry yet

    async def _run_child(self, route: model.Route, binding: dict[str, Any] | None, run: model.Run,
                         args: dict[str, Any], run_id: str, traceparent: str | None) -> None:
        ORIGIN.set(self._origin(route, binding, run, run_id))
        TRACEPARENT.set(traceparent)
        try:
            assert self.runner is not None  # checked when the turn ran
            try:
                if run_id in self._precancelled:
                    raise self._never_started(run.call, run_id)
                value, ok = await self.runner(run.call, args, owner=self, run_id=run_id, preempt=run.preempt), True
            except RuntimeFailure as failure:
                value, ok = {"message": failure.message, "code": failure.code}, False
            except Exception as exc:  # a bug below the runner must not take the agent down
                value, ok = {"message": error_text(exc), "code": "internal"}, False
            if (run.then if ok else run.else_) is not None:
                self.mailbox.put_outcome(Outcome(route, binding, run, ok, value, traceparent, run_id))
                self.bus.activity.begin()  # the outcome turn, counted before the run ends
        finally:
            self._runs.pop(run_id, None)
            self._precancelled.discard(run_id)
            self.stats.runs_in_flight -= 1
            self.bus.activity.end()

    def _never_started(self, call: model.Call, run_id: str) -> RuntimeFailure:
        """A run cancelled before its task reached the registry: reported as the registry would."""
        name = _call_name(call)
        failure = RuntimeFailure(f"{name} was cancelled before it started", "cancelled")
        named = {"reactor": name} if isinstance(call, model.ReactorCall) else {"command": name}
        robot = {"robot": self.robot_instance} if self.robot_instance else {}
        self.bus.report("run.failed", **named, run=run_id, **robot, error=failure.to_json(), undo_errors=[])
        return failure

    # --- reporting -----------------------------------------------------------------

    def _failed(self, route: model.Route, exc: HandlerError) -> None:
        self.stats.errors += 1
        self.bus.report("agent.error", **self._who, route=route.pattern, error=exc.failure.to_json(), line=exc.line)


def _find_run(body: tuple[model.Stmt, ...], line: int) -> model.Run | None:
    """The ``run`` statement at ``line`` in a handler body (nested in ``if``, ``then`` and ``else`` too)."""
    for stmt in body:
        if isinstance(stmt, model.Run):
            if stmt.line == line:
                return stmt
            inner = [stmt.then or (), stmt.else_ or ()]
        elif isinstance(stmt, model.If):
            inner = [stmt.then, stmt.else_]
        else:
            continue
        for nested in inner:
            found = _find_run(nested, line)
            if found is not None:
                return found
    return None


def _replaced(current: Any, key: Any, value: Any, stmt: model.Set) -> Any:
    """A copy of a list field with element ``key`` replaced (an index in range), or of a map field with ``key``
    set: the state is never mutated in place, so a failed handler leaves it as it was."""
    if isinstance(current, list):
        if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key < len(current):
            raise HandlerError(f"set {stmt.field}[{key!r}]: index out of range for a list of {len(current)}",
                               line=stmt.line)
        return [*current[:key], value, *current[key + 1:]]
    if isinstance(current, dict):
        if not isinstance(key, str):  # a key from an `any` value: a list or a record would crash the agent
            raise HandlerError(f"set {stmt.field}[{key!r}]: a map key must be a str, not {type(key).__name__}",
                               line=stmt.line)
        return {**current, key: value}
    raise HandlerError(f"set {stmt.field}[...]: {stmt.field} is neither a list nor a map", line=stmt.line)


def _evaluate(expr: model.Expr, scope: Mapping[str, Any], line: int, what: str) -> Any:
    try:
        return expr(scope)
    except Exception as exc:
        raise HandlerError(f"{what}: {error_text(exc)}{_located(exc)}", line=line) from None


def _located(exc: BaseException) -> str:
    """`` (at file.flow:LINE)`` for an exception raised in generated code (which also gets the note), else ``""``."""
    where = add_flow_note(exc)
    return f" (at {where})" if where is not None else ""


def _call_name(call: model.Call) -> str:
    for attr in ("reactor", "command", "action"):
        name = getattr(call, attr, None)
        if isinstance(name, str):
            return name.rsplit(".", 1)[-1]
    return type(call).__name__


def _has_args(call: model.Call) -> TypeGuard[model.CommandCall | model.ActionCall | model.ReactorCall]:
    return isinstance(call, (model.CommandCall, model.ActionCall, model.ReactorCall))


# --- running the CALL of a `run` ---------------------------------------------------

#: ``run_reactor(program, reactor, inputs, *, robot, observer, actions)`` -> RunResult
ReactorRunner = Callable[..., Awaitable[Any]]


class CallRunner:
    """Runs the CALL of an agent's ``run``: a reactor, a robot command or an action.

    A reactor runs through ``run_reactor`` (by default ``bbflow.runtime.executor``'s); its
    ``RunResult`` becomes the value (status ``ok``) or a ``RuntimeFailure``
    (``failed``: the run's error; ``halted``: code ``halted``).

    With ``tasks`` (the runtime's task registry), a reactor run and a command
    are tasks of the agent's robot (one at a time, queued, preemptible,
    cancellable); a reactor that moves no robot is registered (so it can be
    cancelled) and holds nothing. ``signals`` serves ``wait_signal`` steps.
    """

    def __init__(
        self,
        program: model.Program,
        *,
        run_reactor: ReactorRunner = executor.run_reactor,
        robot: RobotPort | None = None,
        actions: ActionResolver = resolve_action,
        observer: Observer | None = None,
        tasks: Tasks | None = None,
        signals: SignalWaits | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.program = program
        self.run_reactor = run_reactor
        self.robot = robot
        self.actions = actions
        self.observer = observer
        self.tasks = tasks
        self.signals = signals
        self.journal = journal

    async def __call__(self, call: model.Call, args: dict[str, Any], *, owner: object = None,
                       run_id: str | None = None, preempt: bool = False) -> Any:
        if isinstance(call, model.ReactorCall):
            reactor = self.program.find("reactors", call.reactor)
            journaled: dict[str, Any] = {} if self.journal is None else {"journal": self.journal}
            if self.tasks is None:
                result = await self.run_reactor(
                    self.program, reactor, args, robot=self.robot, observer=self.observer, actions=self.actions,
                    **journaled, **({"run_id": run_id} if self.journal is not None else {}))
            else:
                held = self.robot.instance if reactor.robot is not None and self.robot is not None else None
                result = await self.tasks.run(
                    lambda ticket: self.run_reactor(
                        self.program, reactor, args, robot=self.robot, observer=self.observer, actions=self.actions,
                        run_id=ticket.run_id, cancel_code=ticket.cancel_code, signals=self.signals, **journaled),
                    name=reactor.name, robot=held, run_id=run_id, owner=owner, preempt=preempt)
            if result.status == "ok":
                return result.value
            if result.status == "halted":
                message = result.error.message if result.error is not None else "the robot left armed"
                raise RuntimeFailure(message, "halted")
            if result.error is not None:
                raise result.error
            raise RuntimeFailure(f"{reactor.name} failed", "fail")
        if isinstance(call, model.ActionCall):
            return await call_action(self.actions, self.program.find("actions", call.action), args)
        robot = self._robot(call)
        if isinstance(call, model.CommandCall):
            command = robot.spec.commands.get(call.command)
            timeout = command.timeout if command else None
            if self.tasks is None:
                return await self._command(robot, call.command, args, timeout, command, run_id)
            return await self.tasks.run(lambda ticket: self._command(robot, call.command, args, timeout, command,
                                                                     run_id, ticket.cancel_code),
                                        name=call.command, robot=robot.instance, run_id=run_id, owner=owner,
                                        preempt=preempt, kind="command")
        if isinstance(call, model.WaitState):
            return await robot.wait_state(call.states)
        if isinstance(call, model.WaitEvent):
            return await robot.wait_event(call.event)
        raise RuntimeFailure("wait_signal is a step of a reactor, not something an agent runs", "state")

    async def _command(self, robot: RobotPort, name: str, args: dict[str, Any], timeout: float | None,
                       command: model.Command | None, run_id: str | None,
                       cancel_code: Callable[[], str | None] | None = None) -> Any:
        """A command run by an agent: a run of one step, named after the command. Its events are a run's
        (``run.start``, then ``run.ok`` or ``run.failed``, with ``command`` instead of ``reactor``); with a
        journal it is journaled as a run and ended there however it ends (a cancelled one too: it is not a run
        cut off by a crash)."""
        run = run_id or uuid7()
        journaled: Journaled | None = None
        if self.journal is not None:
            self.journal.run_started(run, name, args, ORIGIN.get())
        command_event(self.observer, "run.start", run, name, robot.instance, inputs=jsonable(args))
        try:
            if self.journal is not None:
                chosen = (command.undo, True) if command is not None and command.undo is not None else None
                journaled = Journaled(self.journal, run, "step", name, (), 1, planner(chosen, name, {}))
            value = await journaled_call(robot, name, args, timeout, journaled)
        except RuntimeFailure as failure:
            self._command_failed(run, name, robot, failure)
            raise
        except asyncio.CancelledError as exc:
            done = Completed.of(exc)
            if done is not None:  # the driver finished it anyway
                self._command_ok(run, name, robot, done.value)
            else:
                code = (cancel_code() if cancel_code is not None else None) or "cancelled"
                undo_errors: tuple[RuntimeFailure, ...] = ()
                if not NotSent.of(exc) and command is not None and command.undo is not None \
                        and robot.safety == "armed":  # cut off at the driver: it may have moved part-way
                    if journaled is not None:
                        journaled.cut_off()
                    undo_errors = await undo_command_cut_off(robot, name, args, run_id=run, observer=self.observer,
                                                             journal=self.journal, runner=executor.execute)
                self._command_failed(run, name, robot, RuntimeFailure(f"{name} was cancelled", code), undo_errors)
            raise
        self._command_ok(run, name, robot, value)
        return value

    def _command_ok(self, run: str, name: str, robot: RobotPort, value: Any) -> None:
        result = jsonable(value)
        if self.journal is not None:
            self.journal.run_ended(run, "ok", result=result)
        command_event(self.observer, "run.ok", run, name, robot.instance, result=result)

    def _command_failed(self, run: str, name: str, robot: RobotPort, failure: RuntimeFailure,
                        undo_errors: tuple[RuntimeFailure, ...] = ()) -> None:
        errors = [u.to_json() for u in undo_errors]
        if self.journal is not None:
            self.journal.run_ended(run, "failed", error=failure.to_json(), undo_errors=errors)
        command_event(self.observer, "run.failed", run, name, robot.instance, error=failure.to_json(),
                      undo_errors=errors)

    def _robot(self, call: model.Call) -> RobotPort:
        if self.robot is None:
            raise RuntimeFailure(f"{type(call).__name__} needs a robot and the agent is bound to none", "state")
        return self.robot
