"""``bbflow run``: put a compiled program on its robots and see it through.

``run_app`` is the whole command after compilation: plan (``run_plan``:
everything checked before anything moves), open the events file, then one
``Session`` on an event loop with SIGINT/SIGTERM handlers, a live view on a
terminal or plain lines otherwise, and a one-line summary at the end. It
returns the exit status:

=====  ============================================================
0      success (the reactor's run succeeded; the agents went idle)
1      the run failed and was rolled back (every undo succeeded)
2      usage error: bad options, inputs, faults file, driver; nothing moved
3      the run halted (a robot left ``armed``; the rollback stopped there), a
       command the driver would not stop (stuck), supervision gave up (safe
       stop: every robot disarmed), or a driver failed to disarm at shutdown
4      the run failed and was rolled back, but an undo failed: the robot may not
       be in a safe state (also after an interrupt)
130    interrupted (SIGINT, SIGTERM or SIGHUP): runs rolled back while armed
=====  ============================================================

A ``Session`` starts the robots' drivers, arms them as planned, then either
runs the reactor, or serves the agents under supervision (root -> agents ->
one child per agent) while signals from an input stream are fed to the bus.
However it ends, every robot is closed (disarmed) before ``run`` returns.
A first interrupt cancels the work: runs roll back while the robots are
armed. A second one is the big red button: every robot is disarmed at once
(a rollback in progress then halts). When the supervision root gives up, every
robot is disarmed (safe stop) and the session halts (exit status 3) with the reason.

The supervision tree of the agents: ``root`` (no restarts: its give-up is the
safe stop) over ``robots`` (one child per robot's driver connection: a lost
connection is reconnected), ``bus`` (with a network bus: its Zenoh session; a
lost session is opened again) and ``agents`` (one child per agent), all with
the ``[supervision]`` strategy and limits of bbflow.toml.

This module runs on ``bbflow.runtime`` only; the compiler has already made the
program.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
from collections.abc import AsyncIterable, Callable, Iterator
from typing import IO, Any, Protocol

import attrs
from rich.console import Console

from bbflow.project import Project
from bbflow.runtime import jsonout, model
from bbflow.runtime.agent import AgentServer, CallRunner
from bbflow.runtime.bus import Bus, RobotSignals
from bbflow.runtime.clock import run_real, run_virtual
from bbflow.runtime.crew import wait_through
from bbflow.runtime.door import LineTooLong, Refusal
from bbflow.runtime.driver import DriverError
from bbflow.runtime.drivers import open_robot
from bbflow.runtime.durations import format_duration
from bbflow.runtime.events import JsonLinesWriter, fanout, notify, warn_log_lost
from bbflow.runtime.executor import RunResult, run_reactor
from bbflow.runtime.faults import FaultsError
from bbflow.runtime.fleet import (
    AlreadyRun,
    BusOpenError,
    MissingExtra,
    hold_claims,
    join_bus,
    process_name,
    self_announcement,
    waited_signals,
)
from bbflow.runtime.journal import (
    ORIGIN,
    Journal,
    JournalError,
    Origin,
    cut_off_elsewhere,
    hold_without_journal,
    journal_config,
    process_journal,
)
from bbflow.runtime.journal.recovery import Recovered, Recovery
from bbflow.runtime.liveview import Board, LiveView, PlainLog, compact, outcome_text, undone_text
from bbflow.runtime.ports import Observer, RuntimeFailure
from bbflow.runtime.proxy import STOP_GRACE, RobotProxy
from bbflow.runtime.run_plan import RobotPlan, RunOptions, RunPlan, UsageError, plan_run
from bbflow.runtime.signals import SignalCatalog
from bbflow.runtime.stdin import InputLines, Line
from bbflow.runtime.supervisor import Child, GaveUp, Strategy, Supervisor, describe, disarm_all
from bbflow.runtime.tasks import Tasks
from bbflow.terminal import printable

__all__ = ["Attachment", "Outcome", "Session", "Status", "interrupting_signals", "run_app"]


class Status(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    HALTED = 3
    UNDO_ERRORS = 4
    INTERRUPTED = 130


@attrs.frozen
class Outcome:
    status: Status
    summary: str  # one line
    result: Any = None  # the reactor's result (status OK)
    has_result: bool = False


Note = Callable[[str], None]
#: Input lines fed in a row before the feeder lets the other tasks of the loop run.
FAIRNESS = 64
#: Seconds a driver may take to connect or arm before bbflow run says it is still waiting.
SLOW_START = 5.0


class Attachment(Protocol):
    """Something served beside a session (the control plane): an observer of every event,
    started before the session's work and stopped after it."""

    def __call__(self, event: dict[str, Any]) -> None: ...

    async def start(self, session: Session) -> None: ...

    async def stop(self) -> None: ...


class Session:
    """One ``bbflow run``: robots, then the reactor or the agents, then the robots closed again."""

    def __init__(
        self,
        plan: RunPlan,
        *,
        observer: Observer | None = None,
        board: Board | None = None,
        lines: AsyncIterable[Line] | None = None,
        note: Note | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.plan = plan
        self.board = board if board is not None else Board(plan.program)
        self.journal = journal
        self.observer = fanout(journal.observe if journal is not None else None, observer, self.board)
        self.lines = lines
        self.note: Note = note or (lambda text: None)
        self.robots: list[RobotProxy] = []
        self.bus: Bus | None = None  # while agents are served
        self.servers: tuple[AgentServer, ...] = ()
        self.root: Supervisor | None = None  # the supervision tree's root, while it runs
        #: every run that may move a robot goes through here: one task per robot, the queues, cancel
        self.tasks = Tasks(capacities={rp.instance: rp.queue for rp in plan.robots}, observer=self.observer)
        self.interrupts = 0
        self.signalled = False  # set by the signal itself (``signalled``), before the loop gets to ``interrupt``
        self.gave_up: GaveUp | None = None
        #: another process's claim on the robot of a reactor run, seen while it ran: the robot was disarmed
        self.taken: AlreadyRun | None = None
        self.disarm_errors: list[str] = []
        #: robots that closing left not disarmed (the driver's disarm failed), with why
        self.unsafe: list[str] = []
        self._work: asyncio.Task[Outcome] | None = None
        self._emergency: asyncio.Task[list[str]] | None = None
        self._started: list[RobotProxy] = []
        self._link: Any = None  # the fleet bus link (bbflow.runtime.fleet), when the bus is networked
        self.process = process_name()  # this process in the fleet (fleet.peer.up's process)
        #: what recovery did at start (an agent's recovered runs get their `else`)
        self.recovered: list[Recovered] = []
        self.journal_failure: Exception | None = None
        self.outcomes: list[tuple[str, str, bool, Any, dict[str, Any]]] = []
        self._started_ever: list[RobotProxy] = []  # _started is emptied by _close

    # --- the whole session -----------------------------------------------------------------

    async def run(self) -> Outcome:
        """Run to the end; robots are closed (disarmed) before this returns, whatever happens."""
        self._work = asyncio.get_running_loop().create_task(self._main(), name="bbflow-run")
        cancelled = False
        try:
            # our caller giving up stops the work, and the robots are still cleaned up
            cancelled = await wait_through(self._work, on_cancel=self.interrupt)
        finally:
            try:
                await self._close()
            finally:
                if self._link is not None:  # the robots' claims on the bus go once they are closed
                    await _wait_through(asyncio.ensure_future(self._link.close()))
        if cancelled:
            raise asyncio.CancelledError
        if self.journal_failure is not None:
            return Outcome(Status.FAILED, f"stopped: {self.journal_failure}")
        outcome = self._interrupted() if self._work.cancelled() else self._work.result()
        for proxy in self._started_ever:
            for message in proxy.blocked:
                self.note(f"robot {proxy.instance}: {message}")
        return self._unsafe(self._stuck(outcome))

    def _unsafe(self, outcome: Outcome) -> Outcome:
        """A robot left not disarmed at shutdown (its driver's disarm failed) halts the session (exit 3)."""
        if not self.unsafe:
            return outcome
        status = outcome.status if outcome.status in (Status.USAGE, Status.HALTED, Status.UNDO_ERRORS) \
            else Status.HALTED
        return Outcome(status, f"{outcome.summary}; not disarmed at shutdown (the robot may not be safe): "
                               + "; ".join(self.unsafe))

    def _stuck(self, outcome: Outcome) -> Outcome:
        """A command the driver would not stop halts the session (exit 3), whatever else happened."""
        stuck = [f"{proxy.instance}.{name}" for proxy in self._started_ever for name in proxy.stuck]
        if not stuck:
            return outcome
        grace = format_duration(self._started_ever[0].stop_grace)
        return Outcome(Status.HALTED, f"halted: {', '.join(stuck)} stuck (the driver did not stop within {grace} "
                                      f"of being told to; the robot was put in fault and disarmed); "
                                      + outcome.summary)

    @property
    def stopping(self) -> bool:
        """Interrupted, or stopped by a failed journal write: the work is ending and takes no new signal."""
        return self.interrupts > 0 or self.journal_failure is not None

    def interrupt(self) -> None:
        """SIGINT/SIGTERM: first cancel the work (runs roll back), then disarm every robot at once."""
        self.interrupts += 1
        if self.interrupts == 1:
            if self._work is not None and not self._work.done():
                self.note("interrupted: stopping; runs roll back while armed (interrupt again to disarm now)")
                for ticket in self.tasks.runs():  # their error code says why: interrupted
                    self.tasks.cancel(ticket.run_id, "interrupted")
                self._work.cancel()
        elif self._emergency is None and self._started:
            self.note("interrupted again: disarming every robot now")
            self._emergency = asyncio.get_running_loop().create_task(disarm_all(self._started))

    def signalled_now(self, signum: int, frame: object) -> None:
        """The Python-level handler of SIGINT/SIGTERM: runs as soon as the signal comes, even while code blocks the
        loop (a driver's import or connect), which handles the signal (``interrupt``) only once that code returns."""
        self.signalled = True

    def _unless_signalled(self) -> None:
        """Before a robot moves (armed, recovered, given work): a signal the loop has not handled yet stops here."""
        if self.signalled:
            raise asyncio.CancelledError

    async def _main(self) -> Outcome:
        if self.plan.bus.networked and (self.plan.agents or self.plan.robots):  # a reactor run claims its robot
            try:  # before any robot is opened: another process on the bus may run one of them, or a coordinator
                self._link = await join_bus(self.plan.bus, process=self.process,
                                            robots=[r.instance for r in self.plan.robots],
                                            agents=list(dict.fromkeys(a.spec.name for a in self.plan.agents)),
                                            coordinators=[a.spec.name for a in self.plan.agents if a.robot is None],
                                            note=self.note)
            except MissingExtra as exc:  # before anything moves: a missing extra is a usage error
                return Outcome(Status.USAGE, f"error: {exc}")
            except BusOpenError as exc:
                return Outcome(Status.USAGE, f"error: bus: {exc}")
        if self.journal is not None:  # on a backlog: seconds to prune, every run read; before any robot is armed
            await self.journal.tidy(self.note)
            self.outcomes = self.journal.unhandled_outcomes()  # before recovery ends more runs
        try:
            await self._open()
        except (DriverError, FaultsError) as exc:
            return Outcome(Status.USAGE, f"error: {exc}")
        except RuntimeFailure as failure:
            return Outcome(Status.FAILED, f"failed before any work: {failure.message}")
        self._unless_signalled()
        if self.journal is not None:
            self.journal.start(asyncio.get_running_loop(), on_failure=self._journal_failed)
            self.recovered = await Recovery(
                self.journal, self.plan.program, {p.instance: p for p in self.robots}, observer=self.observer,
                note=self.note, agents=_agent_instances(self.plan), known=self.plan.project_robots,
            ).run(hold=self.journal.config.recovery == "hold")
            held = [r for r in self.recovered if r.action == "held"]
            if held:
                self.note(f"{len(held)} unfinished run(s) held for an operator: see `bbflow runs`")
            self._unless_signalled()
        if self.plan.reactor is not None:
            return await self._reactor(self.plan.reactor)
        return await self._agents()

    async def _open(self) -> None:
        for rp in self.plan.robots:
            self.robots.append(open_robot(rp.instance, rp.spec, rp.table, driver=rp.driver, faults=rp.faults))
        for proxy in self.robots:
            with self._slow(proxy, "connect"):
                await proxy.start()
            self._started.append(proxy)
            self._started_ever.append(proxy)
            self._report_changes(proxy)
        self.board.robots = tuple(self.robots)
        for rp, proxy in zip(self.plan.robots, self.robots):
            self._unless_signalled()
            if rp.arm:
                try:
                    with self._slow(proxy, "arm"):
                        await proxy.call("arm", {})
                except RuntimeFailure as failure:
                    raise RuntimeFailure(f"robot {rp.instance}: {failure.message}", failure.code) from None
            elif not rp.simulated:
                self.note(f"robot {rp.instance} is not armed (a real robot is armed only with --arm or arm = true)")

    @contextlib.contextmanager
    def _slow(self, proxy: RobotProxy, what: str) -> Iterator[None]:
        """Say so when a driver takes long to connect or arm (a connection without a timeout hangs silently)."""
        limit = f", given up at {format_duration(proxy.connect_timeout)}" if what == "connect" else ""
        timer = asyncio.get_running_loop().call_later(
            SLOW_START, self.note, f"robot {proxy.instance}: still waiting for its driver to {what} "
                                   f"({format_duration(SLOW_START)} so far{limit}; Ctrl-C stops)")
        try:
            yield
        finally:
            timer.cancel()

    def _report_changes(self, proxy: RobotProxy) -> None:
        """``robot.safety`` and ``robot.state`` events (``robot``, ``from``, ``to``) for the event log."""
        observer = self.observer
        if observer is None:
            return
        loop = asyncio.get_running_loop()

        def report(event: str, old: str, new: str) -> None:
            notify(observer, {"event": event, "reactor": None, "step": None, "run": None, "time": loop.time(),
                              "robot": proxy.instance, "from": old, "to": new})

        proxy.on_safety(lambda old, new: report("robot.safety", old, new))
        proxy.on_state(lambda old, new: report("robot.state", old, new))

    async def _close(self) -> None:
        """Let an emergency disarm finish, then close every started robot (disarming it)."""
        if self._emergency is not None:
            await _wait_through(self._emergency)
            if not self._emergency.cancelled():
                self.disarm_errors += self._emergency.result()
        interrupted = False
        for proxy in reversed(self._started):  # one robot that will not close must not keep the others open
            closing = asyncio.ensure_future(proxy.close())
            interrupted |= await wait_through(closing)
            error = None if closing.cancelled() else closing.exception()
            if error is not None and proxy.safety != "disarmed":
                self.unsafe.append(f"{proxy.instance}: {describe(error)}")
            elif error is not None:  # disarmed, but the driver's disconnect failed: worth saying, not alarming
                self.note(f"robot {proxy.instance}: disarmed, but its driver did not disconnect: {describe(error)}")
        self._started.clear()
        if interrupted:
            raise asyncio.CancelledError

    # --- operator controls (the control plane) ------------------------------------------------

    def robot(self, instance: str) -> RobotProxy:
        """The started robot ``instance``; ``KeyError`` if there is none."""
        proxy = self._proxy(instance)
        if proxy is None or proxy not in self._started:
            raise KeyError(instance)
        return proxy

    def cancel_run(self, run_id: str) -> None:
        """Cancel the top-level run ``run_id`` (``bbflow.runtime.tasks``): a queued run never starts, a
        running one rolls back while the robot is armed; it fails with code ``cancelled``, and an agent's
        run comes back to its agent as an ``else`` turn. ``KeyError`` if no such run is queued or running.
        """
        if not self.tasks.cancel(run_id):
            raise KeyError(run_id)

    def _journal_failed(self, failure: Exception) -> None:
        """A journal write failed: nothing more may move; stop the work (runs fail, robots are closed)."""
        self.note(f"stopping: {failure}")
        self.journal_failure = failure
        if self._work is not None and not self._work.done():
            self._work.cancel()

    def _proxy(self, instance: str | None) -> RobotProxy | None:
        return next((p for p in self.robots if p.instance == instance), None) if instance else None

    # --- a reactor ---------------------------------------------------------------------------

    async def _reactor(self, reactor: model.Reactor) -> Outcome:
        program = self.plan.program
        robot = self._proxy(self.plan.reactor_robot)
        ORIGIN.set(Origin(robot=self.plan.reactor_robot))
        # a reactor with `wait_signal` steps reads signals from the input meanwhile
        bus = Bus(SignalCatalog.from_program(program), observer=self.observer) if self.lines is not None else None
        feeding = asyncio.get_running_loop().create_task(self._read(bus)) if bus is not None else None
        guard = asyncio.get_running_loop().create_task(self._hold_claim(self._link)) if self._link is not None else None
        try:
            result = await self.tasks.run(
                lambda ticket: run_reactor(program, reactor, self.plan.inputs, robot=robot, observer=self.observer,
                                           run_id=ticket.run_id, cancel_code=ticket.cancel_code,
                                           signals=bus.waits if bus is not None else None, journal=self.journal),
                name=reactor.name, robot=robot.instance if robot is not None and reactor.robot else None)
        except RuntimeFailure as failure:  # cancelled before it started (by the control plane)
            return Outcome(Status.FAILED, f"{reactor.name} failed: {failure.message}; nothing moved")
        finally:
            for task in (feeding, guard):
                if task is not None:
                    if task is feeding or self.taken is None:  # a safe stop begun is seen through
                        task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        outcome = reactor_outcome(result, reactor)
        if self.taken is not None:
            errors = f"; disarm errors: {'; '.join(self.disarm_errors)}" if self.disarm_errors else ""
            return Outcome(Status.HALTED, f"safe stop, robots disarmed: bus: {self.taken}{errors}; {outcome.summary}")
        return outcome

    async def _hold_claim(self, link: Any) -> None:
        """While a reactor runs: another process's claim on its robot, seen now (a process this one reached
        only later, or one that took it while this one's session was lost), stops it safely, as the agents'
        supervisor does: the robot is disarmed, and the run halts."""
        self.taken = await hold_claims(link, self.note)
        self.note(f"bus: {self.taken}: disarming every robot")
        self.disarm_errors += await disarm_all(self._started)

    # --- agents ------------------------------------------------------------------------------

    async def _agents(self) -> Outcome:
        program = self.plan.program
        bus = self.bus = Bus(SignalCatalog.from_program(program), observer=self.observer)
        if self.journal is not None:
            bus.gate = self.journal.refusal
        servers = []
        for agent in self.plan.agents:
            robot = self._proxy(agent.robot)
            runner = CallRunner(program, robot=robot, observer=self.observer, tasks=self.tasks, signals=bus.waits,
                                journal=self.journal)
            servers.append(AgentServer(agent.spec, bus, runner=runner, robot_instance=agent.robot, tasks=self.tasks,
                                       journal=self.journal))
        if self.journal is not None:  # before any new signal: where the journal left off
            for server in servers:
                server.recover([(origin, ok, value) for _, agent, ok, value, origin in self.outcomes
                                if agent == server.key]
                               + [(r.origin, r.action == "finished", r.value if r.action == "finished" else r.error)
                                  for r in self.recovered
                                  if r.origin is not None and r.origin.get("agent") == server.key])
        self.board.agents = self.servers = tuple(servers)
        if self._link is not None:
            try:
                await self._link.open(bus, [*(r.pattern for a in self.plan.agents for r in a.spec.routes),
                                            *waited_signals(program)])
            except BusOpenError as exc:
                await _wait_through(asyncio.ensure_future(self._link.close()))
                return Outcome(Status.USAGE, f"error: bus: {exc}")
        disconnects = [RobotSignals(bus, proxy).connect() for proxy in self.robots]
        announcement = self_announcement(bus.catalog, self.process, [p.instance for p in self.robots],
                                         list(dict.fromkeys(a.spec.name for a in self.plan.agents)))
        if announcement is not None and any(s.routes(announcement.type) for s in servers):
            bus.notice(announcement)  # only when an agent listens: nothing changes for the others
        limits = self.plan.supervision

        def supervisor(name: str, children: list[Child]) -> Supervisor:
            return Supervisor(name, children, observer=self.observer, strategy=Strategy(limits.strategy),
                              max_restarts=limits.max_restarts, period=limits.within)

        several = {s.name for s in servers if sum(o.name == s.name for o in servers) > 1}
        agents = supervisor("agents", [Child(f"{s.name}/{s.robot_instance}" if s.name in several else s.name, s.serve)
                                       for s in servers])
        children = [Child("agents", agents.run)]
        if self._link is not None:  # the fleet bus: a lost Zenoh session is reopened
            children.insert(0, Child("bus", supervisor("bus", [self._bus_session(self._link)]).run))
        if self.robots:  # a process of coordinators only has no robot connection to watch
            robots = supervisor("robots", [self._connection(rp, proxy) for rp, proxy in zip(self.plan.robots, self.robots)])
            children.insert(0, Child("robots", robots.run))
        root = self.root = Supervisor("root", children, max_restarts=0, on_give_up=self._safe_stop,
                                      observer=self.observer)
        try:
            async with asyncio.TaskGroup() as group:
                supervision = group.create_task(root.run(), name="bbflow-supervision")
                feeding = group.create_task(self._feed(bus, supervision), name="bbflow-signals")
                supervision.add_done_callback(lambda _: feeding.cancel())
        except* GaveUp as gave_up:
            self.gave_up = gave_up.exceptions[0]  # type: ignore[assignment]
        finally:
            self.root = None
            self.bus = None  # a signal taken in now would reach no agent
            for disconnect in disconnects:
                disconnect()
            if self._link is not None:  # its claims on the robots stay until they are closed
                await _wait_through(asyncio.ensure_future(self._link.leave()))
        if self.gave_up is not None:
            errors = f"; disarm errors: {'; '.join(self.disarm_errors)}" if self.disarm_errors else ""
            return Outcome(Status.HALTED, f"safe stop, robots disarmed: {self.gave_up.reason}{errors}")
        return Outcome(Status.OK, "idle: " + self._agents_summary())

    def _connection(self, rp: RobotPlan, proxy: RobotProxy) -> Child:
        """A robot's driver connection as a supervised child: it fails when the driver reports the
        connection lost, and its restart reconnects the driver (and arms the robot again if the
        run armed it at the start)."""

        async def watch() -> None:
            if proxy.connection_lost is not None:
                await proxy.reconnect()
                self.note(f"robot {proxy.instance}: reconnected" + ("; arming" if rp.arm else "; left disarmed"))
                if rp.arm:
                    await proxy.call("arm", {})
            reason = await proxy.wait_lost()
            raise ConnectionLost(f"robot {proxy.instance}: connection lost: {reason}")

        return Child(f"robot {proxy.instance}", watch)

    def _bus_session(self, link: Any) -> Child:
        """The fleet bus's Zenoh session as a supervised child (opened before the tree starts): it fails
        when the session is lost, and its restart opens a new one."""

        async def watch() -> None:
            if link.lost:
                try:
                    await link.reopen()
                except BusOpenError as exc:
                    raise BusLost(f"bus: {exc}") from None
                self.note("bus: the Zenoh session was lost; a new one is open")
            reason = await link.wait_lost()
            raise BusLost(f"bus: {reason}")

        return Child("zenoh session", watch)

    async def _feed(self, bus: Bus, supervision: asyncio.Task[None]) -> None:
        """Signals from the input (see ``_read``); then, with --until-idle, stop when idle."""
        await self._read(bus)
        if self.plan.until_idle:
            await bus.wait_idle()
            supervision.cancel()
        elif self.lines is not None:
            self.note("input closed; the agents go on until interrupted (--until-idle stops when idle)")

    async def _read(self, bus: Bus) -> None:
        """Signals from the input, one JSON line each, each when the agents have room for it, until it closes."""
        if self.lines is None:
            return
        number = 0
        async for line in self.lines:
            number += 1
            if isinstance(line, LineTooLong) or line.strip():
                await bus.room()
                self._receive(bus, line, number)
            if number % FAIRNESS == 0:
                await asyncio.sleep(0)  # lines already read must not starve the other tasks

    def _receive(self, bus: Bus, line: Line, number: int) -> None:
        admitted = bus.admit(line)
        if isinstance(admitted, Refusal) and not admitted.is_drop:
            self.note(f"input line {number}: skipped: {admitted.reason}")

    async def _safe_stop(self, gave_up: GaveUp) -> None:
        self.note(f"supervision gave up, disarming every robot: {gave_up.reason}")
        self.disarm_errors += await disarm_all(self._started)

    def _agents_summary(self) -> str:
        counts = self.board.counts
        endings = self.board.endings
        runs = sum(endings.values())
        parts = [f"{counts.get('signal.in', 0)} signals in", f"{counts.get('signal.routed', 0)} handled",
                 f"{counts.get('signal.emit', 0)} emitted", _dropped(counts),
                 f"{runs} runs ({endings.get('run.ok', 0)} ok, {endings.get('run.failed', 0)} failed, "
                 f"{endings.get('run.halted', 0)} halted)"]
        if counts.get("agent.error"):
            parts.append(f"{counts['agent.error']} handler errors")
        return ", ".join(parts)

    def _interrupted(self) -> Outcome:
        if self.plan.reactor is not None:
            last = self.board.last_ending
            if last is not None:
                how = "halted" if last["event"] == "run.halted" else "rolled back"
                text = outcome_text(last).removeprefix(f"{last['reactor']} halted: ")  # said once is enough
                status = Status.UNDO_ERRORS if last["event"] == "run.failed" and last.get("undo_errors") \
                    else Status.INTERRUPTED
                return Outcome(status, f"interrupted: {last['reactor']} {how}: {text}")
            return Outcome(Status.INTERRUPTED, f"interrupted before {self.plan.reactor.name} started")
        return Outcome(Status.INTERRUPTED, "interrupted: agents stopped; " + self._agents_summary())


class ConnectionLost(RuntimeFailure):
    """A robot driver's connection is gone (its supervisor reconnects it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "connection")


class BusLost(RuntimeFailure):
    """The fleet bus's session is gone (its supervisor opens a new one)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "bus")


def reactor_outcome(result: RunResult, reactor: model.Reactor) -> Outcome:
    """The outcome of a ``bbflow run --reactor``: status and the one-line summary."""
    undo = "; undo errors: " + "; ".join(f"{u.step}: {u.message}" for u in result.undo_errors) \
        if result.undo_errors else ""
    if result.status == "ok":
        shown = f": {compact(result.value)}" if reactor.result is not None else ""
        return Outcome(Status.OK, f"{reactor.name} ok{shown}", result.value, reactor.result is not None)
    message = result.error.message if result.error is not None else "?"
    message = message.removeprefix(f"{reactor.name} halted: ")  # the summary names the reactor already
    if result.status == "halted":
        done = ", ".join(result.completed) or "nothing"
        return Outcome(Status.HALTED,
                       f"{reactor.name} halted: {message}; completed: {done}; {undone_text(result.undone)}{undo}")
    if result.undo_errors:
        return Outcome(Status.UNDO_ERRORS, f"{reactor.name} failed: {message}; rolled back{undo}")
    return Outcome(Status.FAILED, f"{reactor.name} failed: {message}; rolled back, no undo errors")


def _hold(project: Project, options: RunOptions, plan: RunPlan, held: contextlib.ExitStack,
          stderr: IO[str]) -> Journal | None:
    """Before anything moves: open the journal, or without one (``--no-journal``) hold the plan's robots and
    agents all the same (released by ``held``), so that no other process of the project runs them; and refuse
    a robot with a run cut off in another journal of the project, which this process would not recover.
    Raises ``JournalError`` (or ``ValueError`` for a bad ``[journal]``)."""
    config = process_journal(journal_config(project.root, project.data.get("journal", {})), options.robots)
    robots, agents = [r.instance for r in plan.robots], _agent_instances(plan)
    journal = None
    if options.journal:
        journal = Journal.open(config, project.name, robots=robots, agents=agents,
                               say=lambda text: _say(stderr, printable(text, newline=False)))
        held.callback(journal.close)
    else:
        owner = hold_without_journal(config, robots, agents)
        if owner is None:
            stderr.write(f"warning: {config.owners} cannot be written: another bbflow run of the project is not "
                         "kept off these robots\n")
        else:
            held.callback(owner.release)
    cut_off = cut_off_elsewhere(config, project.name, config.path if journal is not None else None, robots)
    if cut_off:
        first = cut_off[0]
        raise JournalError(f"robot {first.robot} has a run cut off by a crash in {first.journal} "
                           f"({first.reactor} {first.run}), which this bbflow run does not recover: "
                           f"start {first.hint(config.project)} once to roll it back first, or see `bbflow runs`")
    return journal


def _agent_instances(plan: RunPlan) -> set[str]:
    """The agent instances a run plan runs, as the journal names them (``Picker`` or ``Picker/left``)."""
    return {a.spec.name + (f"/{a.robot}" if a.robot else "") for a in plan.agents}


async def _wait_through(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` even if cancelled meanwhile (cleanup must finish); re-raise the cancellation after."""
    if await wait_through(task):
        raise asyncio.CancelledError


# --- the command ---------------------------------------------------------------------------


def run_app(
    program: model.Program,
    project: Project,
    options: RunOptions,
    *,
    stdin: int | IO[str] = 0,
    stdout: IO[str],
    stderr: IO[str],
    live: bool = False,
    attachment: Attachment | None = None,
) -> int:
    """``bbflow run`` after compilation; returns the exit status (see the module docstring)."""
    try:
        plan = plan_run(program, project, options)
    except UsageError as exc:
        stderr.write(f"error: {exc}\n")
        return Status.USAGE
    with contextlib.ExitStack() as held:  # closed in reverse: the event log, then the journal or the hold
        try:
            journal = _hold(project, options, plan, held, stderr)
        except (ValueError, JournalError) as exc:
            stderr.write(f"error: {exc}\n")
            return Status.USAGE
        except KeyboardInterrupt:  # (SIGINT: asyncio's handlers come later) a journal being migrated: rolled back
            _say(stderr, "interrupted before anything moved: the journal is as it was")
            return Status.INTERRUPTED
        writer: JsonLinesWriter | None = None
        lost = warn_log_lost(stderr, str(options.events), "the run goes on")
        if options.events == "-":
            writer = JsonLinesWriter(stdout, failed=lost)
        elif options.events is not None:
            if _same_file(options.events, stdin):
                stderr.write(f"error: --events {options.events}: standard input reads that file: writing the event "
                             "log would empty it before it is read\n")
                return Status.USAGE
            try:
                writer = JsonLinesWriter(options.events, failed=lost)
            except OSError as exc:
                stderr.write(f"error: --events {options.events}: cannot write: {exc.strerror or exc}\n")
                return Status.USAGE
        if writer is not None:
            held.callback(writer.close)
        if options.virtual_time:  # no live view: its refresh timer would spin the virtual clock
            outcome = run_virtual(_serve(plan, writer, stdin, stderr, False, journal=journal), grace=STOP_GRACE)
        else:  # never hangs on the way out, whatever a driver or an action does (run_real)
            outcome = run_real(_serve(plan, writer, stdin, stderr, live, attachment, journal), grace=STOP_GRACE)
    if outcome.has_result:
        try:
            stdout.write(jsonout.dumps(outcome.result, ensure_ascii=False) + "\n")
            stdout.flush()
        except OSError as exc:
            _say(stderr, f"error: standard output: cannot write the result ({exc.strerror or exc})")
    _say(stderr, printable(outcome.summary, newline=False))
    return outcome.status  # the run's, whether or not its output could be written


def _same_file(path: str, stdin: int | IO[str]) -> bool:
    """``path`` is the file standard input reads (``--events signals.jsonl < signals.jsonl``)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no such file yet, or input without a descriptor
        fd = stdin if isinstance(stdin, int) else stdin.fileno()
        return os.path.samestat(os.fstat(fd), os.stat(path))
    return False


def _say(stream: IO[str], line: str) -> None:
    """``line`` on ``stream`` (standard error) if it can still be written: a reader gone from the pipe or a full
    disk loses the line, not the run's exit status."""
    with contextlib.suppress(OSError):
        stream.write(line + "\n")
        stream.flush()


async def _serve(plan: RunPlan, writer: JsonLinesWriter | None, stdin: int | IO[str], stderr: IO[str],
                 live: bool, attachment: Attachment | None = None, journal: Journal | None = None) -> Outcome:
    loop = asyncio.get_running_loop()
    start = loop.time()
    board = Board(plan.program, start=start)
    console = Console(file=stderr, highlight=False) if live else None
    log = None if live else PlainLog(stderr, start=start)

    def note(text: str) -> None:
        text = printable(text)
        with contextlib.suppress(OSError):  # a terminal gone (EIO after a hangup) stops no interrupt, no rollback
            if console is not None:
                console.print(text, markup=False)
            else:
                stderr.write(text + "\n")
                stderr.flush()

    session = Session(
        plan, observer=fanout(writer, log, attachment), board=board, note=note,
        lines=InputLines(stdin) if plan.reads_signals else None,
        journal=journal,
    )
    installed = []
    for sig in interrupting_signals():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, session.interrupt)
            signal.signal(sig, session.signalled_now)  # in place of asyncio's, which does nothing
            installed.append(sig)
    if attachment is not None:
        try:
            await attachment.start(session)
        except OSError as exc:
            return Outcome(Status.USAGE, f"error: {exc}")
    view = asyncio.create_task(LiveView(board, console).run()) if console is not None else None
    try:
        return await session.run()
    finally:
        if attachment is not None:
            await attachment.stop()
        if view is not None:
            view.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):  # OSError: the terminal is gone
                await view
        for sig in installed:
            loop.remove_signal_handler(sig)


def interrupting_signals() -> list[signal.Signals]:
    """The signals that interrupt a session as Ctrl-C does: SIGTERM (a service manager's stop), and SIGHUP (the
    terminal or the ssh session gone) unless the caller ignores it (``nohup``)."""
    found = [signal.SIGINT, signal.SIGTERM]
    hangup: signal.Signals | None = getattr(signal, "SIGHUP", None)  # POSIX only
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        found.append(hangup)
    return found


def _dropped(counts: dict[str, int]) -> str:
    """``3 dropped (2 refused at the door, 1 handled by no agent)``: which kind of drop, when there were any (a
    signal this process's agents had and the other processes did not: ``not sent on the bus``)."""
    total, unrouted = counts.get("signal.dropped", 0), counts.get("signal.dropped.unrouted", 0)
    unsent = counts.get("signal.dropped.unsent", 0)
    if not total:
        return "0 dropped"
    kinds = [f"{n} {what}" for n, what in ((total - unrouted - unsent, "refused at the door"),
                                           (unrouted, "handled by no agent"), (unsent, "not sent on the bus")) if n]
    return f"{total} dropped ({', '.join(kinds)})"
