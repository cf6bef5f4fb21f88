"""The robot proxy: the one door between flows and a driver, and the rules it enforces.

``RobotProxy`` implements ``bbflow.runtime.ports.RobotPort`` for one robot
instance:

- commands run only while the robot is ``armed`` (else code ``not_armed``) and
  only in one of their ``allowed`` operational states (else code ``state``);
- a category with limit N has at most N commands at the driver at once; the
  others wait their turn in order (a per-category semaphore). Commands
  without a category are not limited;
- the caller's timeout, else the command's declared one, bounds the whole call,
  waiting for its category included (code ``timeout``);
- arguments are checked against the declared parameters before they reach the
  driver, and results against the declared result type when they come back
  (code ``result``, naming the command and the field);
- anything the driver raises becomes a ``RuntimeFailure`` with code
  ``command`` naming the command;
- ``arm`` and ``disarm`` are commands of every robot. Disarming (asked for,
  or reported by the driver: an emergency stop) cancels every command in
  flight; each of them fails with code ``not_armed``.

Each command runs in a task of its own so that it can be stopped without
cancelling its caller; that task is awaited before ``call`` returns, but not
forever: a command that is told to stop (cancelled) and has not ended
``stop_grace`` seconds later (a driver that swallows ``CancelledError``) is
given up on. It is reported as *stuck* (``stuck`` lists it, ``on_error``
hears of it), the robot goes to ``fault`` (so the run on it halts and nothing
more is commanded) and the driver is asked to disarm. The driver's own
``disarm`` and ``disconnect`` hooks are bounded by the same grace period, and its
``connect`` hook by ``connect_timeout`` (a connection that never answers fails the
start with a ``DriverError`` instead of hanging).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from bbflow.runtime import model
from bbflow.runtime.clock import abandon
from bbflow.runtime.crew import wait_through
from bbflow.runtime.defaults import DEFAULT_CONNECT_TIMEOUT
from bbflow.runtime.driver import (
    CommandFn,
    DriverError,
    DriverFactory,
    DriverHandle,
    bind_commands,
    hook,
)
from bbflow.runtime.driver_check import check_driver
from bbflow.runtime.durations import format_duration
from bbflow.runtime.faults import Faults
from bbflow.runtime.journal.calls import JOURNALED, Journaled
from bbflow.runtime.loopwatch import BLOCKING, watched
from bbflow.runtime.ports import Completed, NotSent, RuntimeFailure, error_text, exited
from bbflow.runtime.types import TypeMismatch, non_finite

Unsubscribe = Callable[[], None]
#: Seconds a command (or a driver hook) has to stop once told to, before it is given up on as stuck.
STOP_GRACE = 2.0
#: The commands a driver's method is running inside, outermost first, as (proxy, category, command, its task): a
#: driver that calls its proxy again (a command made of others) is refused a slot its own callers hold.
_INSIDE: ContextVar[tuple[tuple[RobotProxy, str | None, str, asyncio.Task[Any]], ...]] = ContextVar(
    "bbflow_inside_command", default=())


class _Listeners:
    """Callbacks subscribed to one kind of change, called in subscription order."""

    def __init__(self) -> None:
        self._items: dict[int, Callable[..., None]] = {}
        self._next = 0

    def add(self, callback: Callable[..., None]) -> Unsubscribe:
        key = self._next
        self._next += 1
        self._items[key] = callback

        def unsubscribe() -> None:
            self._items.pop(key, None)

        return unsubscribe

    def fire(self, *args: Any) -> None:
        for callback in list(self._items.values()):
            try:
                callback(*args)
            except Exception as exc:  # one broken listener must not silence the others
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "robot listener failed", "exception": exc}
                )


class RobotProxy:
    """One robot instance, as flows see it. Use ``async with`` or ``start()``/``close()``."""

    def __init__(
        self,
        spec: model.Robot,
        instance: str,
        driver_factory: DriverFactory,
        *,
        options: Mapping[str, Any] | None = None,
        faults: Faults | None = None,
        stop_grace: float = STOP_GRACE,
        blocking: float = BLOCKING,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        if faults is not None:
            faults.validate(spec)
        self.spec = spec
        self.instance = instance
        self._factory = driver_factory
        self._options = dict(options or {})
        self._faults = faults
        self._handle = DriverHandle(spec, instance, self)
        self._driver: Any = None
        self._commands: dict[str, CommandFn] = {}
        self._started = False
        self._closed = False
        self._safety = "disarmed"
        self._state = "idle"
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self.stop_grace = stop_grace
        self.connect_timeout = connect_timeout
        self.blocking = blocking  # seconds a command may hold the event loop before it is reported
        #: each command task's end, or the moment it was given up on (stuck)
        self._settled: dict[asyncio.Task[Any], asyncio.Future[None]] = {}
        #: the commands given up on: they did not stop within ``stop_grace`` (the driver swallowed the cancel)
        self.stuck: list[str] = []
        #: what each command that blocked the event loop (bbflow.runtime.loopwatch) was told
        self.blocked: list[str] = []
        self._stopped: dict[asyncio.Task[Any], str] = {}  # stopped because the robot left armed: safety then
        self._disarming: asyncio.Task[None] | None = None
        self._calls: Counter[str] = Counter()
        self._on_safety = _Listeners()
        self._on_state = _Listeners()
        self._on_event = _Listeners()
        self._on_error = _Listeners()
        self._lost: str | None = None  # why the driver's connection is gone, until reconnected
        self._lost_waiters: list[asyncio.Future[str]] = []

    # --- lifetime ---------------------------------------------------------------

    @property
    def driver(self) -> Any:
        """The driver instance (None before ``start``)."""
        return self._driver

    async def start(self) -> None:
        """Create the driver, bind its commands and connect it. Raises ``DriverError``."""
        if self._started:
            raise RuntimeError(f"robot {self.instance} is already started")
        if isinstance(self._factory, type):
            problems = check_driver(self._factory, self.spec)
            if problems:
                raise DriverError(
                    f"robot {self.instance}: {self._factory.__name__} does not implement "
                    f"{self.spec.name}: " + "; ".join(problems)
                )
        self._handle.attach(asyncio.get_running_loop())
        try:
            driver = self._factory(self._handle, self._options)
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(f"robot {self.instance}: the driver could not be created: "
                              f"{error_text(exc)}") from exc
        except (SystemExit, KeyboardInterrupt) as exc:
            raise DriverError(f"robot {self.instance}: the driver could not be created: {exited(exc)}") from None
        self._commands = bind_commands(driver, self.spec)
        self._driver = driver
        self._started = True
        await self._connect("connect")

    async def _connect(self, what: str) -> None:
        """The driver's ``connect`` hook, given up on (cancelled) after ``connect_timeout``: a connection
        that never answers (a wrong address, no timeout of its own) fails instead of hanging."""
        connect = hook(self._driver, self.spec, "connect")
        if connect is None:
            return
        work = asyncio.ensure_future(connect())
        try:
            ended = await _within(work, self.stop_grace, limit=self.connect_timeout)
        except asyncio.CancelledError:  # Ctrl-C while connecting: the connection attempt stops too
            work.cancel()
            raise
        except Exception as exc:
            raise DriverError(f"robot {self.instance}: the driver could not {what}: "
                              f"{error_text(exc)}") from exc  # (TimeoutError() says nothing)
        if not ended:
            raise DriverError(f"robot {self.instance}: the driver did not {what} within "
                              f"{format_duration(self.connect_timeout)} (connect_timeout in [robot.{self.instance}]); "
                              "given up")

    async def close(self) -> None:
        """Disarm (stopping all motion) if needed, then disconnect the driver."""
        if not self._started or self._closed:
            return
        self._closed = True
        try:
            if self._safety != "disarmed" or self._inflight or self._disarming is not None:
                await self._disarm_and_wait()
        finally:
            disconnect = hook(self._driver, self.spec, "disconnect")
            if disconnect is not None and not await _within(disconnect(), self.stop_grace):
                raise DriverError(f"robot {self.instance}: disconnect did not end within "
                                  f"{format_duration(self.stop_grace)}; given up")

    async def __aenter__(self) -> RobotProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    # --- RobotPort ----------------------------------------------------------------

    @property
    def safety(self) -> str:
        return self._safety

    @property
    def state(self) -> str:
        return self._state

    async def call(self, command: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
        """Run ``command``; see the module docstring for the rules."""
        if not self._started or self._closed:
            raise RuntimeError(f"robot {self.instance} is not running (start it first)")
        if command in ("arm", "disarm"):
            work = self._arm() if command == "arm" else self._disarm_and_wait()
            return await self._bounded(command, work, timeout)
        cmd = self.spec.commands.get(command)
        if cmd is None:
            raise RuntimeFailure(f"{self.spec.name} has no command {command!r}", "command", command=command)
        args = self._conform_args(cmd, kwargs)
        return await self._bounded(command, self._run(cmd, args), timeout if timeout is not None else cmd.timeout)

    async def wait_state(self, states: tuple[str, ...]) -> str:
        unknown = [s for s in states if s not in self.spec.states]
        if unknown:
            raise ValueError(f"{self.spec.name} has no state {', '.join(unknown)}")
        entered: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def changed(_old: str, new: str) -> None:
            if new in states and not entered.done():
                entered.set_result(new)

        unsubscribe = self.on_state(changed)  # subscribe first: no change can slip past the check
        try:
            if self._state in states:
                return self._state
            return await entered
        finally:
            unsubscribe()

    async def wait_event(self, event: str, predicate: Callable[[Any], bool] | None = None) -> Any:
        if event not in self.spec.events:
            raise ValueError(f"{self.spec.name} declares no event {event!r}")
        seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def published(name: str, data: Any) -> None:
            if name != event or seen.done():
                return
            try:
                if predicate is None or predicate(data):
                    seen.set_result(data)
            except Exception as exc:  # the caller's predicate failed: its error, not ours
                seen.set_exception(exc)

        unsubscribe = self.on_event(published)
        try:
            return await seen
        finally:
            unsubscribe()

    def on_safety(self, callback: Callable[[str, str], None]) -> Unsubscribe:
        return self._on_safety.add(callback)

    def on_state(self, callback: Callable[[str, str], None]) -> Unsubscribe:
        return self._on_state.add(callback)

    def on_event(self, callback: Callable[[str, Any], None]) -> Unsubscribe:
        return self._on_event.add(callback)

    def on_error(self, callback: Callable[[str], None]) -> Unsubscribe:
        """Call ``callback(message)`` for every error the driver reports outside a command."""
        return self._on_error.add(callback)

    # --- commands -----------------------------------------------------------------

    async def _bounded(self, command: str, work: Any, timeout: float | None) -> Any:
        if timeout is None:
            return await work
        try:
            async with asyncio.timeout(timeout):
                return await work
        except TimeoutError as exc:
            done = Completed.of(exc.__cause__)
            if done is not None:  # done as the deadline struck: done in time
                return done.value
            raise RuntimeFailure(
                f"{command} timed out after {format_duration(timeout)}", "timeout", command=command
            ) from None

    async def _run(self, cmd: model.Command, args: dict[str, Any]) -> Any:
        self._check_armed(cmd.name)
        self._check_not_own_caller(cmd)
        slot = self._slot(cmd.category)
        task: asyncio.Task[Any] | None = None
        try:
            async with slot if slot is not None else contextlib.nullcontext():
                self._check_armed(cmd.name)
                self._check_allowed(cmd)
                self._calls[cmd.name] += 1
                fault = self._faults.for_call(cmd.name, self._calls[cmd.name]) if self._faults else None
                if fault is not None and fault.delay is not None:
                    await asyncio.sleep(fault.delay)
                    self._check_armed(cmd.name)
                journaled = JOURNALED.get()
                if journaled is not None:  # the intent is committed before the command reaches the driver
                    await journaled.before(cmd.name, args)
                    try:
                        self._check_armed(cmd.name)  # the robot may have left armed meanwhile
                    except RuntimeFailure as refused:
                        journaled.failed(refused)
                        raise
                if fault is not None and fault.error is not None:
                    failure = RuntimeFailure(f"{cmd.name} failed: {fault.error}", "command", command=cmd.name)
                    if journaled is not None:
                        journaled.failed(failure)
                    raise failure
                task = self._start(cmd.name, self._command(cmd.name, dict(args)))
                cancelled: asyncio.CancelledError | None = None
                try:
                    if fault is not None and fault.disarm:
                        await asyncio.sleep(0)  # let the command start moving, then pull the plug
                        await self._disarm_and_wait()
                    await self._wait_stopping(task)
                except asyncio.CancelledError as exc:
                    cancelled = exc  # raised below, once the command's outcome is known
                finally:
                    if not self._settled[task].done():  # the caller was cancelled before it awaited the command
                        self._stop(task)
                        await self._wait_stopping(task)
                    self._inflight.discard(task)
                    self._settled.pop(task, None)
                    stopped = self._stopped.pop(task, None)
                    if journaled is not None and task.cancelled() and stopped is None:
                        journaled.failed(RuntimeFailure(f"{cmd.name} was cancelled", "cancelled", command=cmd.name))
        except asyncio.CancelledError:
            if task is None:  # cancelled before the command reached the driver: nothing moved
                raise asyncio.CancelledError(NotSent()) from None
            raise
        assert task is not None  # (a call that never reached the driver raised above)
        if cancelled is not None:
            raise self._cancelled(cmd, task, stopped, journaled, cancelled)
        if journaled is None:
            return self._outcome(cmd, task, stopped)
        return _settled(journaled, lambda: self._outcome(cmd, task, stopped))

    def _cancelled(self, cmd: model.Command, task: asyncio.Task[Any], stopped: str | None,
                   journaled: Journaled | None, cancelled: asyncio.CancelledError) -> asyncio.CancelledError:
        """What a caller cancelled while ``cmd`` was at the driver raises: a ``CancelledError`` carrying
        the result (``Completed``) when the driver finished the command anyway (it ended in the same moment, or
        could not stop it half-way), so that the motion is undone; else ``cancelled`` itself (cut off in flight:
        the motion may have happened part-way, and is undone too)."""
        if stopped is not None or not task.done() or task.cancelled() or task.exception() is not None:
            return cancelled
        try:
            value = self._outcome(cmd, task, None) if journaled is None else \
                _settled(journaled, lambda: self._outcome(cmd, task, None))
        except RuntimeFailure:  # a bad result: nothing usable to undo it with
            return cancelled
        return asyncio.CancelledError(Completed(value))

    def _check_not_own_caller(self, cmd: model.Command) -> None:
        """Refuse a command the driver calls from inside its own commands when they hold every slot of its
        category: it would wait for its own caller for ever (or fail as a timeout that says nothing of why)."""
        inside = _INSIDE.get()
        if not inside or cmd.category is None:  # (every command comes here: most from outside any command)
            return
        holding = [name for proxy, category, name, task in inside
                   if proxy is self and category == cmd.category and not task.done()]  # (a task it left behind)
        limit = self.spec.limit(cmd.category)
        if len(holding) >= limit:
            raise RuntimeFailure(
                f"{cmd.name} refused: the driver called it from inside its own {holding[-1]}, which holds "
                f"{'the' if limit == 1 else 'every'} {cmd.category} slot of {self.instance} (limit {cmd.category} "
                f"{limit}): it would wait for itself for ever; a driver does a command's work itself",
                "command", command=cmd.name)

    async def _command(self, name: str, args: dict[str, Any]) -> Any:
        """The driver's method, called in the command's task (a call that raises at once fails that task).
        What the driver commands through the proxy meanwhile is part of this command: journaled as it is."""
        task = asyncio.current_task()
        assert task is not None  # (``_start``'s)
        _INSIDE.set((*_INSIDE.get(), (self, self.spec.commands[name].category, name, task)))  # this task's context
        JOURNALED.set(None)
        try:
            return await watched(self._commands[name](args), lambda seconds: self._blocked(name, seconds),
                                 self.blocking)
        except (SystemExit, KeyboardInterrupt) as exc:  # a vendor library's sys.exit(): not the end of the process
            raise RuntimeFailure(f"{name} failed: {exited(exc)}", "command", command=name) from None

    def _blocked(self, name: str, seconds: float) -> None:
        message = (f"{name} held the event loop for {seconds:.1f}s without yielding: nothing else ran meanwhile, "
                   f"not even its timeout; a driver must not block (time.sleep, blocking I/O): await, or run "
                   f"blocking calls in a thread (asyncio.to_thread)")
        self.blocked.append(message)
        self._on_error.fire(message)

    def _start(self, name: str, work: Any) -> asyncio.Task[Any]:
        loop = asyncio.get_running_loop()
        task = loop.create_task(work, name=f"{self.instance}.{name}")
        settled: asyncio.Future[None] = loop.create_future()
        task.add_done_callback(lambda _: _settle(settled))
        self._inflight.add(task)
        self._settled[task] = settled
        return task

    def _stop(self, task: asyncio.Task[Any]) -> None:
        """Cancel a command task; give up on it if it has not ended ``stop_grace`` seconds later."""
        if task.done():
            return
        first = not task.cancelling()
        task.cancel()
        if first:
            asyncio.get_running_loop().call_later(self.stop_grace, self._give_up, task)

    def _give_up(self, task: asyncio.Task[Any]) -> None:
        settled = self._settled.get(task)
        if task.done() or settled is None or settled.done():
            return
        name = task.get_name().removeprefix(f"{self.instance}.")
        self.stuck.append(name)
        abandon(task)
        settled.set_result(None)
        self._driver_safety("fault", f"{name} is stuck: the driver did not stop it within "
                                     f"{format_duration(self.stop_grace)} of being told to")
        if not self._closed:  # and disarm it now (close() would, later): nothing more moves
            disarming = asyncio.get_running_loop().create_task(self._disarm_and_wait())
            disarming.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _wait_stopping(self, task: asyncio.Task[Any]) -> None:
        """Wait for ``task`` to end or be given up on; if the waiter is cancelled, stop the task and
        still wait (at most ``stop_grace``), then re-raise: a command never outlives its caller unnoticed."""
        settled = self._settled[task]
        try:
            await asyncio.wait({settled})
        except asyncio.CancelledError:
            self._stop(task)
            while not settled.done():
                try:
                    await asyncio.wait({settled})
                except asyncio.CancelledError:
                    continue
            raise

    def _outcome(self, cmd: model.Command, task: asyncio.Task[Any], stopped: str | None) -> Any:
        name = cmd.name
        if not task.done():  # given up on: the driver would not stop it
            raise RuntimeFailure(f"{name} is stuck: the driver did not stop it within "
                                 f"{format_duration(self.stop_grace)}; {self.instance} went to fault",
                                 "not_armed", command=name)
        if stopped is not None:  # even if the driver swallowed the cancellation: the motion did not finish
            if not task.cancelled():
                task.exception()  # retrieved: what it says does not matter any more
            why = "went to fault" if stopped == "fault" else "was disarmed"
            raise RuntimeFailure(f"{name} was stopped: {self.instance} {why}", "not_armed", command=name)
        if task.cancelled():
            raise RuntimeFailure(f"{name} failed: the driver cancelled it", "command", command=name)
        exc = task.exception()
        if isinstance(exc, RuntimeFailure):
            raise RuntimeFailure(exc.message, exc.code, command=exc.command or name) from exc
        if exc is not None:
            raise RuntimeFailure(f"{name} failed: {error_text(exc)}", "command", command=name) from exc
        try:
            return cmd.result.conform(task.result())
        except TypeMismatch as mismatch:
            raise RuntimeFailure(f"{name} returned a bad result: {mismatch}", "result", command=name) from None

    def _conform_args(self, cmd: model.Command, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        declared = {p.name for p in cmd.params}
        unknown = sorted(set(kwargs) - declared)
        if unknown:
            raise RuntimeFailure(
                f"{cmd.name}: unknown argument {', '.join(unknown)}", "command", command=cmd.name
            )
        args = {}
        for param in cmd.params:
            if param.name in kwargs:
                try:
                    args[param.name] = param.type.conform(kwargs[param.name], param.name)
                except TypeMismatch as mismatch:
                    raise RuntimeFailure(
                        f"{cmd.name}: bad argument {mismatch}", "command", command=cmd.name
                    ) from None
            elif param.default is not None:
                args[param.name] = param.default({})
            else:
                raise RuntimeFailure(
                    f"{cmd.name}: missing argument {param.name}", "command", command=cmd.name
                )
        where = non_finite(args)
        if where is not None:  # NaN or infinity (a sensor's reading, an overflowing sum): never sent to a robot
            raise RuntimeFailure(
                f"{cmd.name}: bad argument {where}: NaN and infinite numbers are never sent to a robot",
                "command", command=cmd.name,
            )
        return args

    def _slot(self, category: str | None) -> asyncio.Semaphore | None:
        if category is None:
            return None
        if category not in self._slots:
            self._slots[category] = asyncio.Semaphore(self.spec.limit(category))
        return self._slots[category]

    def _check_armed(self, name: str) -> None:
        if self._safety != "armed":
            raise RuntimeFailure(
                f"{name} refused: {self.instance} is {self._safety}, not armed", "not_armed", command=name
            )

    def _check_allowed(self, cmd: model.Command) -> None:
        if self._state not in cmd.allowed:
            raise RuntimeFailure(
                f"{cmd.name} is not allowed while {self.instance} is {self._state} "
                f"(allowed: {', '.join(cmd.allowed)})",
                "state",
                command=cmd.name,
            )

    # --- safety -------------------------------------------------------------------

    async def _arm(self) -> str:
        if self._safety == "armed":
            return "armed"
        if self._safety == "disarming":
            raise RuntimeFailure(f"cannot arm {self.instance} while it is disarming", "state", command="arm")
        arm = hook(self._driver, self.spec, "arm")
        if arm is not None:
            try:
                await arm()
            except BaseException as exc:  # failed or interrupted: it may have got halfway (brakes released)
                problem = await self._disarm_after_failed_arm()
                if not isinstance(exc, Exception):
                    raise
                detail = error_text(exc)
                if problem is not None:
                    detail += f"; disarming after it failed too: {problem}"
                raise RuntimeFailure(f"arm failed: {detail}", "command", command="arm") from exc
        self._set_safety("armed")
        return "armed"

    async def _disarm_after_failed_arm(self) -> str | None:
        """Run the driver's disarm hook after an arm hook that did not finish, even if our caller is cancelled
        meanwhile; if that fails too, the robot goes to ``fault`` and the reason is returned."""
        disarm = hook(self._driver, self.spec, "disarm")
        if disarm is None:
            return None
        work = asyncio.ensure_future(_within(disarm(), self.stop_grace))
        await wait_through(work)
        problem: str | None = None
        error = None if work.cancelled() else work.exception()
        if error is not None:
            problem = error_text(error)
        elif work.cancelled() or not work.result():
            problem = f"the driver's disarm did not end within {format_duration(self.stop_grace)}"
        if problem is not None:
            self._set_safety("fault")
        return problem

    async def _disarm_and_wait(self) -> str:
        """Disarm once, however many ask; the work goes on even if a caller gives up."""
        if self._disarming is None or self._disarming.done():
            if self._safety == "disarmed" and not self._inflight:
                return "disarmed"
            self._disarming = asyncio.get_running_loop().create_task(self._disarm(), name=f"{self.instance}.disarm")
        await asyncio.shield(self._disarming)
        return "disarmed"

    async def _disarm(self) -> None:
        self._set_safety("disarming")
        self._stop_inflight()
        failure: BaseException | None = None
        disarm = hook(self._driver, self.spec, "disarm")
        try:
            if disarm is not None and not await _within(disarm(), self.stop_grace):
                raise DriverError(f"the driver's disarm did not end within {format_duration(self.stop_grace)}")
        except Exception as exc:
            failure = exc
        finally:
            for task in list(self._inflight):
                await self._wait_stopping(task)
        if failure is not None:
            self._set_safety("fault")
            raise RuntimeFailure(
                f"disarm failed: {error_text(failure)}", "command", command="disarm"
            ) from failure
        self._set_safety("disarmed")

    def _stop_inflight(self) -> None:
        for task in list(self._inflight):
            if not task.done():
                self._stopped.setdefault(task, self._safety)
                self._stop(task)

    def _set_safety(self, new: str) -> None:
        old = self._safety
        if new != old:
            self._safety = new
            self._on_safety.fire(old, new)

    # --- reports from the driver (through the handle) ----------------------------------

    def _driver_safety(self, safety: str, reason: str | None) -> None:
        self._set_safety(safety)
        if safety != "armed":
            self._stop_inflight()
        if reason and safety == "fault":
            self._on_error.fire(reason)

    def _driver_state(self, state: str) -> None:
        old = self._state
        if state != old:
            self._state = state
            self._on_state.fire(old, state)

    def _driver_event(self, event: str, data: Any) -> None:
        self._on_event.fire(event, data)

    def _driver_error(self, message: str) -> None:
        self._on_error.fire(message)

    def _driver_lost(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        self._driver_safety("fault", f"connection lost: {reason}")
        for waiter in self._lost_waiters:
            if not waiter.done():
                waiter.set_result(reason)
        self._lost_waiters.clear()

    # --- the connection (supervised by the application) ---------------------------------

    @property
    def connection_lost(self) -> str | None:
        """Why the driver reported its connection lost, until ``reconnect``; else ``None``."""
        return self._lost

    async def wait_lost(self) -> str:
        """Return (the reason) once the driver reports its connection lost."""
        if self._lost is not None:
            return self._lost
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._lost_waiters.append(waiter)
        try:
            return await waiter
        finally:
            if waiter in self._lost_waiters:
                self._lost_waiters.remove(waiter)

    async def reconnect(self) -> None:
        """After a lost connection: ``disconnect`` (errors ignored, and given up on after ``stop_grace``: the
        link is gone anyway), then ``connect`` again. The robot is left ``disarmed``. Raises ``DriverError`` if it
        cannot connect."""
        for task in list(self._inflight):
            await self._wait_stopping(task)
        disconnect = hook(self._driver, self.spec, "disconnect")
        if disconnect is not None:
            with contextlib.suppress(Exception):
                await _within(disconnect(), self.stop_grace)
        await self._connect("reconnect")
        self._lost = None
        self._set_safety("disarmed")


def _settled(journaled: Journaled, outcome: Callable[[], Any]) -> Any:
    """The command's outcome, recorded in the journal as its result."""
    try:
        value = outcome()
    except RuntimeFailure as failure:
        journaled.failed(failure)
        raise
    journaled.succeeded(value)
    return value


def _settle(settled: asyncio.Future[None]) -> None:
    if not settled.done():
        settled.set_result(None)


async def _within(work: Any, grace: float, *, limit: float | None = None) -> bool:
    """Run ``work`` (a coroutine) in a task; if it has not ended within ``limit`` (default ``grace``) seconds,
    cancel it and wait ``grace`` more. False if it was cancelled so, or still runs then (it is abandoned: a
    driver hook that will not end). Its exception, if it ended with one, is raised."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=grace if limit is None else limit)
    if not done:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            abandon(task)
            return False
        if task.cancelled():
            return False
    task.result()
    return True

