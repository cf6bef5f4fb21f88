"""The reactor executor: runs a ``model.Reactor`` as a saga (LANGUAGE.md section 7).

``run_reactor`` conforms the inputs, then runs the reactor's body: a node
starts when every node of its body it depends on has completed or been
skipped, at most ``concurrency`` steps of the run are in flight at once, and
each step attempt has its own deadline, retries and fallback. On a failure
nothing new starts, the steps in flight are cancelled and awaited, and every
completed step that has an undo is undone in reverse order of completion (see
``bbflow.runtime.rollback``). If the robot leaves ``armed`` the run halts:
everything in flight is cancelled and nothing is undone.

Structured concurrency: every task a run creates ends before the run returns
(``bbflow.runtime.crew``). A step runs in the task of the body that schedules
it when nothing else of that body can run meanwhile (a plain chain of steps
creates no task at all); otherwise in a child task.

The user-facing description of all of this is docs/runtime.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal

import attrs

from bbflow.runtime import model
from bbflow.runtime.actions import invoke, resolve_action
from bbflow.runtime.crew import Crew
from bbflow.runtime.deadline import Deadline
from bbflow.runtime.durations import format_duration
from bbflow.runtime.events import jsonable, notify
from bbflow.runtime.ids import uuid7
from bbflow.runtime.linemap import NOTE_PREFIX, add_flow_note
from bbflow.runtime.ports import ActionResolver, Observer, RobotPort, RuntimeFailure
from bbflow.runtime.reactor_plan import LET, STEP, SWITCH, BodyPlan, plan_for
from bbflow.runtime.rollback import Completion, UndoFailure, driver_failure, rollback
from bbflow.runtime.types import Optional as OptionalType
from bbflow.runtime.types import TypeMismatch

__all__ = ["RunResult", "UndoFailure", "run_reactor"]

Status = Literal["ok", "failed", "halted"]


@attrs.frozen
class RunResult:
    """How a run ended.

    ``value`` is the reactor's result (``ok`` only); ``error`` the original
    failure (``failed``) or why the run halted (``halted``, code ``halted``);
    ``undo_errors`` every undo that failed after its last attempt, composed
    reactors' included; ``completed`` the names of the steps that completed,
    in completion order (a step of a ``map`` body once per iteration).
    """

    run_id: str
    reactor: str
    status: Status
    value: Any = None
    error: RuntimeFailure | None = None
    undo_errors: tuple[UndoFailure, ...] = ()
    completed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_reactor(
    program: model.Program,
    reactor: str | model.Reactor,
    inputs: Mapping[str, Any],
    *,
    robot: RobotPort | None = None,
    observer: Observer | None = None,
    actions: ActionResolver | None = None,
    run_id: str | None = None,
) -> Coroutine[Any, Any, RunResult]:
    """Run ``reactor`` (a declaration or its qualified or unambiguous short name) to its end.

    Await it like a coroutine function: it returns the run's coroutine (one
    frame less per run in flight) and, as with a coroutine function, nothing
    is looked up, checked or raised until that is awaited. Then it raises
    ``RuntimeFailure`` with code ``input`` (before ``run.start``) when
    ``inputs`` do not conform to the parameters, ``ValueError`` when the
    reactor needs a robot and none is given or its model cannot run, and
    ``asyncio.CancelledError`` when the awaiting task is cancelled (after the
    rollback). Every other outcome is a ``RunResult``.
    """
    run = _Run(program, reactor, robot, observer, actions or resolve_action, run_id or uuid7(), None)
    return run.execute(inputs)


def conform_inputs(reactor: model.Reactor, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs conformed to the parameters' types, defaults applied; ``RuntimeFailure("input")`` if not."""
    names = {p.name for p in reactor.params}
    unknown = [k for k in inputs if k not in names]
    if unknown:
        listed = ", ".join(repr(k) for k in unknown)
        raise RuntimeFailure(f"{reactor.name} has no parameter {listed}", "input")
    out: dict[str, Any] = {}
    for param in reactor.params:
        if param.name in inputs:
            raw = inputs[param.name]
        elif param.default is not None:
            raw = param.default({})
        elif isinstance(param.type, OptionalType):
            raw = None
        else:
            raise RuntimeFailure(f"{reactor.name}: missing input {param.name!r}", "input")
        try:
            out[param.name] = param.type.conform(raw, param.name)
        except TypeMismatch as exc:
            raise RuntimeFailure(f"{reactor.name}: input {exc}", "input") from None
    return out


class _Stop(Exception):
    """Raised where a node would start after the run began to stop (failure or halt)."""


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


def _failure(exc: BaseException, code: str, what: str) -> RuntimeFailure:
    """``exc`` as a failure; raised in generated code, it names the ``.flow`` line (and gets the note)."""
    if isinstance(exc, RuntimeFailure):
        return exc
    detail = str(exc) or type(exc).__name__
    where = add_flow_note(exc)
    if where is None:
        return RuntimeFailure(f"{what}: {detail}", code)
    failure = RuntimeFailure(f"{what}: {detail} (at {where})", code)
    failure.add_note(NOTE_PREFIX + where)
    return failure


def _timed_out(name: str, timeout: float | None) -> RuntimeFailure:
    return RuntimeFailure(f"{name} timed out after {format_duration(timeout or 0.0)}", "timeout")


def _backoff(retry: model.Retry, failed_attempt: int) -> float:
    """Delay before the attempt after ``failed_attempt`` (1-based): D, 2D, 4D, ... capped."""
    if retry.backoff <= 0:
        return 0.0
    cap = retry.max_backoff if retry.max_backoff is not None else 10 * retry.backoff
    return min(retry.backoff * 2 ** (failed_attempt - 1), cap)


class _Run:
    """The state of one run of one reactor (a composed reactor gets a ``_Run`` of its own)."""

    __slots__ = ("program", "reactor", "robot", "observer", "resolver", "run_id", "parent", "loop", "free",
                 "slot_waiters", "done", "undo_errors", "failure", "halt", "stopping", "task", "rollback_task",
                 "cancelled_root", "_commands")

    def __init__(
        self,
        program: model.Program,
        reactor: str | model.Reactor,
        robot: RobotPort | None,
        observer: Observer | None,
        resolver: ActionResolver,
        run_id: str,
        parent: str | None,
    ) -> None:
        self.program = program
        #: a name until ``execute`` looks it up
        self.reactor: model.Reactor = reactor  # type: ignore[assignment]
        self.robot = robot
        self.observer = observer
        self.resolver = resolver
        self.run_id = run_id
        self.parent = parent
        self.loop: asyncio.AbstractEventLoop  # set by ``execute``
        #: free step slots (the reactor's ``concurrency``, set by ``execute``) and the bodies waiting for one
        self.free = 0
        self.slot_waiters: list[Crew] = []
        #: completed steps, in completion order
        self.done: list[Completion] = []
        self.undo_errors: list[UndoFailure] = []
        self.failure: RuntimeFailure | None = None
        self.halt: RuntimeFailure | None = None
        #: set with ``failure`` or ``halt``: no node may start any more
        self.stopping = False
        self.task: asyncio.Task[Any] | None = None
        self.rollback_task: asyncio.Task[Any] | None = None
        self.cancelled_root = False
        self._commands: Mapping[str, model.Command] | None = None

    # --- events -------------------------------------------------------------------

    def event(self, event: str, step: str | None, index: tuple[int, ...]) -> dict[str, Any]:
        """An event's common fields; the caller adds its own and ``notify``s the observer (one dict per event)."""
        out: dict[str, Any] = {
            "event": event,
            "reactor": self.reactor.name,
            "step": step,
            "run": self.run_id,
            "time": self.loop.time(),
        }
        if self.parent is not None:
            out["parent"] = self.parent
        if index:
            out["index"] = list(index)
        return out

    def emit(self, event: str, step: str | None, index: tuple[int, ...], extra: dict[str, Any] | None) -> None:
        """``event`` with ``extra`` fields, sent (for the rare events; steps and undos build theirs in place)."""
        out = self.event(event, step, index)
        if extra:
            out.update(extra)
        notify(self.observer, out)  # type: ignore[arg-type]

    # --- the run as a whole ---------------------------------------------------------

    def fail(self, failure: RuntimeFailure) -> RuntimeFailure:
        """Record the run's failure (the first one wins) and return the one recorded."""
        if self.failure is None:
            self.failure = failure
            self.stopping = True
        return self.failure

    def on_safety(self, old: str, new: str) -> None:
        if new == "armed" or self.halt is not None:
            return
        self.halt = RuntimeFailure(f"{self.reactor.name} halted: the robot left armed ({old} -> {new})", "halted")
        self.stopping = True
        if self.rollback_task is not None:
            self.rollback_task.cancel()
        elif self.task is not None:
            self.cancelled_root = True
            self.task.cancel()

    async def execute(self, raw_inputs: Mapping[str, Any]) -> RunResult:
        reactor = self.reactor
        if not isinstance(reactor, model.Reactor):
            self.reactor = reactor = self.program.find("reactors", reactor)
        if reactor.robot is not None and self.robot is None and self.parent is None:
            raise ValueError(f"reactor {reactor.name} runs on {reactor.robot}: pass robot=")
        self.loop = asyncio.get_running_loop()
        self.free = max(1, reactor.concurrency)
        inputs = conform_inputs(reactor, raw_inputs)
        plan = plan_for(self.reactor)
        task = asyncio.current_task()
        assert task is not None, "run_reactor must be awaited in a task"
        self.task = task
        baseline = task.cancelling()
        if self.observer is not None:
            self.emit("run.start", None, (), {"inputs": jsonable(inputs)})
        robot = self.robot
        unsubscribe: Callable[[], None] | None = robot.on_safety(self.on_safety) if robot is not None else None
        cancelled = False
        deadline = Deadline(self.loop)  # for the steps that run in this task
        try:
            try:
                # ``inputs`` is a fresh dict (conformed): it becomes the body's scope
                limit = self.reactor.timeout
                if limit is None:
                    value = await self.body(plan, inputs, (), deadline)
                else:
                    try:
                        async with asyncio.timeout(limit):
                            value = await self.body(plan, inputs, (), deadline)
                    except TimeoutError:
                        raise self.fail(RuntimeFailure(
                            f"{self.reactor.name} did not finish within its timeout of {format_duration(limit)}",
                            "timeout",
                        )) from None
            except asyncio.CancelledError:
                if self.halt is not None:
                    return await self.halted(baseline, delivered=True)
                cancelled = True
                error = self.fail(RuntimeFailure(f"{self.reactor.name} was cancelled", "cancelled"))
            except Exception as exc:
                if self.halt is not None:
                    return await self.halted(baseline, delivered=False)
                error = self.failure if self.failure is not None else self.fail(_failure(exc, "internal", "executor"))
            else:
                if unsubscribe is not None:
                    unsubscribe()
                    unsubscribe = None
                if self.observer is not None:
                    self.emit("run.ok", None, (), {"result": jsonable(value)})
                return RunResult(self.run_id, self.reactor.name, "ok", value, None, tuple(self.undo_errors),
                                 self.completed())
            if await self.shielded_rollback():
                cancelled = True
            if self.halt is not None:
                return await self.halted(baseline, delivered=False)
            if unsubscribe is not None:
                unsubscribe()
                unsubscribe = None
            if self.observer is not None:
                self.emit("run.failed", None, (), {
                    "error": error.to_json(),
                    "undo_errors": [u.to_json() for u in self.undo_errors],
                })
            if cancelled:
                raise asyncio.CancelledError
            return RunResult(self.run_id, self.reactor.name, "failed", None, error, tuple(self.undo_errors),
                             self.completed())
        finally:
            deadline.close()
            if unsubscribe is not None:
                unsubscribe()

    async def shielded_rollback(self) -> bool:
        """Roll back in a task of its own that cancelling the run cannot cut short.

        Returns whether the run's task was cancelled meanwhile (the caller
        re-raises once the rollback is done). A halt cancels the rollback task.
        """
        if not self.done:
            return False
        task = self.loop.create_task(rollback(self, self.done))
        self.rollback_task = task
        interrupted = False
        if self.halt is not None:  # halted between the failure and here
            task.cancel()
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError:
                interrupted = True
        self.rollback_task = None
        if not task.cancelled():
            task.result()  # an executor bug in the rollback must not go unnoticed
        return interrupted

    async def halted(self, baseline: int, *, delivered: bool) -> RunResult:
        """Finish a halted run: nothing is undone. Re-raises a cancellation that was not ours."""
        task = self.task
        assert task is not None and self.halt is not None
        if self.cancelled_root:
            if not delivered:  # our cancellation may still be on its way: take it here
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    pass
            task.uncancel()
        external = task.cancelling() > baseline
        if self.observer is not None:
            self.emit("run.halted", None, (), {"completed": list(self.completed()), "error": self.halt.to_json()})
        if external:
            raise asyncio.CancelledError
        return RunResult(self.run_id, self.reactor.name, "halted", None, self.halt, tuple(self.undo_errors),
                         self.completed())

    def completed(self) -> tuple[str, ...]:
        return tuple(c.step.name for c in self.done)

    def cancel_reason(self, what: str) -> RuntimeFailure:
        """Why ``what`` (a step or an undo) was cancelled, for its error event: the halt, else a cancellation."""
        return self.halt if self.halt is not None else RuntimeFailure(f"{what} was cancelled", "cancelled")

    # --- bodies ---------------------------------------------------------------------

    def stop(self) -> Exception:
        """What to raise where a node would start while the run is stopping."""
        return self.failure if self.failure is not None else _Stop()

    async def body(self, plan: BodyPlan, scope: dict[str, Any], index: tuple[int, ...], deadline: Deadline) -> Any:
        """Run every node of a body (each when its dependencies are done), then its end.

        ``deadline`` serves the steps that run in this task (not in a child task).
        """
        nodes = plan.nodes
        if nodes:
            kinds = plan.kinds
            dependents = plan.dependents
            waiting = list(plan.indegree)
            # nodes ready to start, first come first started: ``ready[head:]`` (a list, not a deque:
            # a chain never holds more than one)
            ready = list(plan.roots)
            head = 0
            remaining = len(nodes)
            crew: Crew | None = None
            try:
                while True:
                    blocked: list[int] = []  # steps that found no free slot
                    while head < len(ready):
                        if self.stopping:
                            raise self.stop()
                        i = ready[head]
                        head += 1
                        kind = kinds[i]
                        if kind == LET:
                            self.let(nodes[i], scope)  # type: ignore[arg-type]
                        else:
                            if kind == STEP:
                                if self.free <= 0:
                                    blocked.append(i)
                                    continue
                                self.free -= 1
                            if head < len(ready) or blocked or (crew is not None and crew.running):
                                if crew is None:
                                    crew = Crew(self.loop)
                                crew.spawn(self.node(kind, nodes[i], plan.subplans[i], scope, index), i)
                                continue
                            # nothing else of this body can start before this node ends: no task needed
                            if kind == STEP:
                                try:
                                    await self.step(nodes[i], scope, index, deadline)  # type: ignore[arg-type]
                                finally:
                                    self.release()
                            elif kind == SWITCH:
                                await self.switch(nodes[i], plan.subplans[i], scope, index,  # type: ignore[arg-type]
                                                  deadline)
                            else:
                                await self.map(nodes[i], plan.subplans[i], scope, index,  # type: ignore[arg-type]
                                               deadline)
                        remaining -= 1
                        for j in dependents[i]:
                            waiting[j] -= 1
                            if not waiting[j]:
                                ready.append(j)
                    if not remaining:
                        break
                    if crew is None:
                        crew = Crew(self.loop)
                    ready.clear()
                    head = 0
                    if blocked:
                        ready.extend(blocked)
                        self.slot_waiters.append(crew)
                    await crew.wait()
                    for task in crew.finished:
                        i = crew.running.pop(task)
                        if task.cancelled():
                            raise self.fail(RuntimeFailure(f"{nodes[i].name} was cancelled", "cancelled"))
                        exc = task.exception()
                        if exc is not None:
                            raise exc
                        remaining -= 1
                        for j in dependents[i]:
                            waiting[j] -= 1
                            if not waiting[j]:
                                ready.append(j)
                    crew.finished.clear()
            finally:
                if crew is not None:
                    if crew in self.slot_waiters:
                        self.slot_waiters.remove(crew)
                    await crew.close()
        end = plan.body.end
        if end is None:
            return None
        if isinstance(end, model.Fail):
            raise self.fail(RuntimeFailure(end.message, "fail"))
        try:
            return end.expr(scope)
        except Exception as exc:
            raise self.fail(_failure(exc, "expression", "return")) from None

    def release(self) -> None:
        """A step left its slot: wake the bodies that wait for one."""
        self.free += 1
        if self.slot_waiters:
            waiters, self.slot_waiters = self.slot_waiters, []
            for crew in waiters:
                crew.wake()

    async def node(self, kind: int, node: Any, subplan: Any, scope: dict[str, Any], index: tuple[int, ...]) -> None:
        """A node in a task of its own."""
        deadline = Deadline(self.loop)
        try:
            if kind == STEP:
                try:
                    await self.step(node, scope, index, deadline)
                finally:
                    self.release()
            elif self.stopping:
                raise self.stop()
            elif kind == SWITCH:
                await self.switch(node, subplan, scope, index, deadline)
            else:
                await self.map(node, subplan, scope, index, deadline)
        finally:
            deadline.close()

    async def detached_body(self, plan: BodyPlan, scope: dict[str, Any], index: tuple[int, ...]) -> Any:
        """A body in a task of its own (an iteration of a concurrent ``map``)."""
        deadline = Deadline(self.loop)
        try:
            return await self.body(plan, scope, index, deadline)
        finally:
            deadline.close()

    def let(self, node: model.Let, scope: dict[str, Any]) -> None:
        try:
            scope[node.name] = node.expr(scope)
        except Exception as exc:
            raise self.fail(_failure(exc, "expression", node.name)) from None

    async def switch(self, node: model.Switch, plans: tuple[BodyPlan | None, ...], scope: dict[str, Any],
                     index: tuple[int, ...], deadline: Deadline) -> None:
        try:
            subject = node.subject(scope)
        except Exception as exc:
            raise self.fail(_failure(exc, "expression", node.name)) from None
        chosen = plans[-1]
        for case, plan in zip(node.cases, plans):
            if subject in case.values:
                chosen = plan
                break
        if chosen is None:
            raise self.fail(RuntimeFailure(
                f"switch {node.name}: no case matches {subject!r} and there is no default", "expression"))
        scope[node.name] = await self.body(chosen, dict(scope), index, deadline)

    async def map(self, node: model.Map, plan: BodyPlan, scope: dict[str, Any], index: tuple[int, ...],
                  deadline: Deadline) -> None:
        try:
            items = list(node.over(scope))
        except Exception as exc:
            raise self.fail(_failure(exc, "expression", node.name)) from None
        results: list[Any] = [None] * len(items)
        item = node.item

        def iteration_scope(element: Any) -> dict[str, Any]:
            inner = dict(scope)
            inner[item] = element
            return inner

        if node.concurrency <= 1 or len(items) <= 1:
            for k, element in enumerate(items):
                if self.stopping:
                    raise self.stop()
                results[k] = await self.body(plan, iteration_scope(element), index + (k,), deadline)
        else:
            crew = Crew(self.loop)
            upcoming = 0
            try:
                while upcoming < len(items) or crew.running:
                    while upcoming < len(items) and len(crew.running) < node.concurrency:
                        if self.stopping:
                            raise self.stop()
                        crew.spawn(self.detached_body(plan, iteration_scope(items[upcoming]), index + (upcoming,)),
                                   upcoming)
                        upcoming += 1
                    await crew.wait()
                    for task in crew.finished:
                        k = crew.running.pop(task)
                        if task.cancelled():
                            raise self.fail(RuntimeFailure(f"{node.name}[{k}] was cancelled", "cancelled"))
                        exc = task.exception()
                        if exc is not None:
                            raise exc
                        results[k] = task.result()
                    crew.finished.clear()
            finally:
                await crew.close()
        scope[node.name] = results

    # --- steps ----------------------------------------------------------------------

    async def step(self, step: model.Step, scope: dict[str, Any], index: tuple[int, ...], deadline: Deadline) -> None:
        """One step: guard, attempts with deadline and backoff, fallback; records its completion.

        ``deadline`` is the one of the task the step runs in (each attempt arms it).
        """
        if self.stopping:  # spawned before the run began to stop, started after
            raise self.stop()
        name = step.name
        observer = self.observer
        if step.when is not None:
            try:
                go = step.when(scope)
            except Exception as exc:
                raise self.fail(_failure(exc, "expression", f"{name}: when")) from None
            if not go:
                scope[name] = None
                if observer is not None:
                    notify(observer, self.event("step.skip", name, index))
                return
        call = step.call
        timeout = step.timeout
        retry = step.retry
        robot = self.robot
        last = 1 + retry.attempts if retry is not None else 1
        attempt = 1
        while True:
            if observer is not None:
                out = self.event("step.start", name, index)
                out["attempt"] = attempt
                notify(observer, out)
            args: dict[str, Any] | None = None
            child: _Run | None = None
            if timeout is not None:
                deadline.arm(timeout)
            try:
                if type(call) is model.CommandCall:
                    args = self.arguments(call, scope, name)
                    if robot is None:
                        raise self.no_robot(call.command)
                    try:
                        value = await robot.call(call.command, args, timeout=timeout)
                    except (RuntimeFailure, TimeoutError):
                        raise
                    except Exception as exc:  # a port or driver bug still fails only this attempt
                        raise driver_failure(call.command, exc) from exc
                elif type(call) is model.ReactorCall:
                    value, child = await self.compose(call, scope, name)
                else:
                    value = await self.perform(call, scope, name)
            except RuntimeFailure as exc:
                error = exc
            except TimeoutError:
                error = _timed_out(name, timeout)
            except asyncio.CancelledError:
                if timeout is None or not deadline.expired():
                    if observer is not None:
                        out = self.event("step.error", name, index)
                        out["error"] = self.cancel_reason(name).to_json()
                        out["attempt"] = attempt
                        notify(observer, out)
                    raise
                error = _timed_out(name, timeout)
            else:
                scope[name] = value
                if args is not None and not self.undo_uses_args(step):
                    args = None  # only a command's default undo reads them: do not keep them for nothing
                self.done.append(Completion(step, scope, args, value, child, index, True))
                if observer is not None:
                    out = self.event("step.ok", name, index)
                    out["result"] = jsonable(value)
                    notify(observer, out)
                return
            finally:
                if timeout is not None:
                    deadline.disarm()
            if observer is not None:
                out = self.event("step.error", name, index)
                out["error"] = error.to_json()
                out["attempt"] = attempt
                notify(observer, out)
            if attempt < last and not self.stopping:
                delay = _backoff(retry, attempt)  # type: ignore[arg-type]
                attempt += 1
                if observer is not None:
                    out = self.event("step.retry", name, index)
                    out["attempt"] = attempt
                    out["delay"] = delay
                    notify(observer, out)
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.stopping:
                    raise self.stop()
                continue
            if step.fallback is not None and not self.stopping:
                try:
                    value = step.fallback(scope)
                except Exception as exc:
                    raise self.fail(_failure(exc, "expression", f"{name}: fallback")) from None
                scope[name] = value
                self.done.append(Completion(step, scope, None, value, None, index, False))
                if observer is not None:
                    out = self.event("step.ok", name, index)
                    out["result"] = jsonable(value)
                    out["fallback"] = True
                    notify(observer, out)
                return
            raise self.fail(error)

    def undo_uses_args(self, step: model.Step) -> bool:
        """Whether the undo of a completed command step reads the call's arguments (``args``).

        Only an inherited undo does: the command's default undo, or one marked
        ``inherited`` in the model; an own undo sees the step's scope instead.
        """
        if step.irreversible is not None:
            return False
        undo = step.undo
        if undo is not None:
            return undo.inherited
        spec = self.command_spec(step.call.command)  # type: ignore[union-attr]
        return spec is not None and spec.undo is not None

    # --- calls (shared by steps and undos) ---------------------------------------------

    def command_spec(self, command: str) -> model.Command | None:
        """The declaration of one of the robot's commands (for its default undo and timeout)."""
        if self._commands is None:
            spec = self.program.robots.get(self.reactor.robot) if self.reactor.robot else None
            if spec is None and self.robot is not None:
                spec = self.robot.spec
            self._commands = spec.commands if spec is not None else {}
        return self._commands.get(command)

    def arguments(self, call: model.CommandCall | model.ActionCall | model.ReactorCall, scope: Mapping[str, Any],
                  name: str) -> dict[str, Any]:
        """A call's keyword arguments; an error in them fails the attempt (code ``expression``)."""
        try:
            return call.args(scope)
        except Exception as exc:
            raise _failure(exc, "expression", f"{name}: arguments") from None

    def no_robot(self, command: str) -> RuntimeFailure:
        return RuntimeFailure(f"{self.reactor.name} has no robot to run {command}", "state", command=command)

    async def command(self, command: str, args: dict[str, Any], timeout: float | None) -> Any:
        robot = self.robot
        if robot is None:
            raise self.no_robot(command)
        try:
            return await robot.call(command, args, timeout=timeout)
        except RuntimeFailure:
            raise
        except Exception as exc:  # a port or driver bug still fails only this attempt
            raise driver_failure(command, exc) from exc

    async def compose(self, call: model.ReactorCall, scope: Mapping[str, Any], name: str) -> tuple[Any, "_Run"]:
        """Run a composed reactor as a child run; its completed steps stay with it for a later undo."""
        args = self.arguments(call, scope, name)
        reactor = self.program.reactors.get(call.reactor) or self.program.find("reactors", call.reactor)
        child = _Run(self.program, reactor, self.robot, self.observer, self.resolver, uuid7(), self.run_id)
        result = await child.execute(args)
        # undo errors of the child's own rollback belong to this run's story too
        self.undo_errors.extend(result.undo_errors)
        if result.status == "ok":
            return result.value, child
        assert result.error is not None
        raise result.error

    async def perform(self, call: model.Call, scope: Mapping[str, Any], name: str, timeout: float | None = None) -> Any:
        """Any call: the way undos run (steps take faster paths for commands and composition)."""
        if isinstance(call, model.ActionCall):
            return await self.action(call, scope, name)
        if isinstance(call, model.CommandCall):
            args = self.arguments(call, scope, name)
            return await self.command(call.command, args, timeout)
        if isinstance(call, model.ReactorCall):
            value, _ = await self.compose(call, scope, name)
            return value
        robot = self.robot
        if robot is None:
            raise RuntimeFailure(f"{self.reactor.name} has no robot to wait on", "state")
        try:
            if isinstance(call, model.WaitState):
                return await robot.wait_state(call.states)
            return await self.wait_event(robot, call, scope, name)
        except RuntimeFailure:
            raise
        except Exception as exc:
            raise _failure(exc, "command", name) from exc

    async def wait_event(self, robot: RobotPort, call: model.WaitEvent, scope: Mapping[str, Any], name: str) -> Any:
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
            raise _failure(problems[0], "expression", f"{name}: where")
        return data

    async def action(self, call: model.ActionCall, scope: Mapping[str, Any], name: str) -> Any:
        decl = self.program.actions.get(call.action) or self.program.find("actions", call.action)
        args = self.arguments(call, scope, name)
        try:
            fn = self.resolver(decl.target)
            value = await invoke(fn, args)
        except RuntimeFailure:
            raise
        except Exception as exc:
            raise _failure(exc, "action", f"action {decl.name}") from exc
        if decl.result is not None:
            try:
                value = decl.result.conform(value)
            except TypeMismatch as exc:
                raise RuntimeFailure(f"action {decl.name} returned a bad value: {exc}", "result") from None
        return value
