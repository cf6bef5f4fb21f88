"""The control plane of one ``bbflow run``: uvicorn serving Starlette inside the runtime's event loop.

``ControlPlane`` is an ``Attachment`` of the run's ``Session``: it observes
every event (the SSE ring, the run log, the metrics, the traces) and is
started before the session's work and stopped after it. uvicorn's
``Server.serve`` runs as one task of the runtime's own loop, on a socket bound
here first (so a busy port is a usage error before anything moves), and never
installs signal handlers: SIGINT and SIGTERM stay the runtime's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import attrs
import uvicorn

from bbflow.runtime import model
from bbflow.runtime.app import Session
from bbflow.runtime.bus import Bus
from bbflow.runtime.door import Door, Refusal
from bbflow.runtime.events import Fanout, jsonable
from bbflow.runtime.fleet.door import SeenIds
from bbflow.runtime.journal import JournalFailed, Lag
from bbflow.runtime.signals import Envelope, SignalCatalog
from bbflow.serve.config import ServeSettings
from bbflow.serve.fleet import FleetView
from bbflow.serve.http import Duplicate, Refused, create_app
from bbflow.serve.hub import EventHub
from bbflow.serve.metrics import Metrics
from bbflow.serve.runs import RunLog
from bbflow.serve.schema import asyncapi, signal_schemas
from bbflow.serve.tracing import Tracing, tracer_from_env
from bbflow.serve.wire import HttpProtocol

STOP_TIMEOUT = 3.0  # seconds uvicorn gets to close its connections
ROOM_WAIT = 5.0  # seconds a POST waits for the agents to have room for its signal (then 503)
SOURCE = "/http"  # the source of a signal posted without one
#: Event streams served at once. Each event wakes every stream: thousands of them (a page that leaks its
#: EventSource, a script gone wrong) starved the runtime's loop, and a robot's steps took five times as long.
MAX_STREAMS = 100
#: Connections open at once; past them a request gets 503 (uvicorn's ``limit_concurrency``), and no number of
#: clients can take every file descriptor of the process (the journal's, a robot's connection).
MAX_CONNECTIONS = 1000


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers (the runtime owns SIGINT and SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ControlPlane:
    """HTTP ingress, event stream, state, operator controls, metrics and schema of a running cell."""

    def __init__(self, settings: ServeSettings, program: model.Program, *, title: str = "bbflow cell",
                 hub: EventHub | None = None, tracer: Tracing | None = None) -> None:
        self.settings = settings
        self.program = program
        self.title = title
        self.catalog = SignalCatalog.from_program(program)
        self.door = Door(self.catalog, source=SOURCE)
        self._seen = SeenIds()  # the source and id of the signals taken in, hashed (``_taken``)
        self.hub = hub if hub is not None else EventHub()
        self.runs = RunLog()
        self.fleet = FleetView()
        self.metrics_ = Metrics(self._gauges())
        self.tracer = tracer if tracer is not None else tracer_from_env()
        self._observe = Fanout(o for o in (self.hub, self.runs, self.fleet, self.metrics_, self.tracer) if o is not None)
        self.session: Session | None = None
        self.port = settings.port
        self.started_at = time.time()
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._schema: dict[str, Any] | None = None

    # --- the attachment ---------------------------------------------------------------------

    def __call__(self, event: dict[str, Any]) -> None:
        self._observe(event)

    async def start(self, session: Session) -> None:
        """Bind the socket (``OSError`` if it cannot be) and serve in the background."""
        self.session = session
        sock = _bind(self.settings.host, self.settings.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(self), lifespan="off", log_config=None, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=STOP_TIMEOUT,  # type: ignore[arg-type]
                                ws="none", http=HttpProtocol, limit_concurrency=MAX_CONNECTIONS)  # (uvicorn annotates an int; a float works)
        self._server = _Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]),
                                                             name="bbflow-control-plane")
        session.note(f"control plane: {self.url}/")

    async def stop(self) -> None:
        self.hub.close()
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT + 2)
        except TimeoutError:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        if self.tracer is not None:
            self.tracer.close()

    @property
    def url(self) -> str:
        return attrs.evolve(self.settings, port=self.port).url

    # --- what the HTTP surface asks ------------------------------------------------------------

    async def admit(self, raw: bytes | dict[str, Any]) -> Envelope | Refusal | Duplicate:
        """Through the door (the same checks as standard input), once the agents have room for it; a signal
        taken in already (``_taken``): ``Duplicate``."""
        bus = self._bus()
        try:
            async with asyncio.timeout(ROOM_WAIT):
                await bus.room()
        except TimeoutError:
            raise Refused(503, f"the agents have had no room for a signal for {ROOM_WAIT:g}s: try again later",
                          {"Retry-After": "1"}) from None
        bus = self._bus()  # (the cell may have begun to stop while this waited)
        admitted = self.door.admit(raw)
        if isinstance(admitted, Envelope) and self._taken(admitted):
            bus.take(Refusal(f"duplicate: {admitted.source} sent id {admitted.id} already (a retry)", admitted.type))
            await self._recorded()  # (the first may still wait for its commit)
            return Duplicate(admitted.id)
        bus.take(admitted)
        await asyncio.sleep(0)  # the agents take their turn before the answer is written, as with standard input
        if isinstance(admitted, Envelope):
            await self._recorded()
        return admitted

    def _taken(self, envelope: Envelope) -> bool:
        """Whether a signal of this ``source`` and ``id`` was taken in already: by this process (the last
        100,000), or by an earlier one whose journal holds it (as long as it keeps it: ``keep``). A client
        that retries (its 202 lost in a crash, or a timeout) made the cell handle it twice: a second pick.
        ``Refused`` (409) when the journal holds a signal of another source under that id: it keeps one
        per id, so after a crash this one would be lost, or replayed as that one."""
        if self._seen.seen(envelope.source, envelope.id):
            return True
        journal = self.session.journal if self.session is not None else None
        held = None
        if journal is not None:
            try:  # (one still to be handled first: it may not be committed yet)
                held = journal.unhandled_source(envelope.id) or journal.source_of(envelope.id)
            except sqlite3.Error:
                pass  # not known: taken as new (the journal's failure stops the cell)
        if held == envelope.source:
            return True
        if held is not None:
            raise Refused(409, f"the journal holds another signal with id {envelope.id!r} (from {held}); it keeps "
                               "one signal per id, so send this one with an id of its own")
        self._seen.add(envelope.source, envelope.id)
        return False

    async def _recorded(self) -> None:
        """Wait until the journal holds what the signal wrote (accepted, and any turn that handled it): a 202
        is a promise to the sender, who will not send again, and a ``kill -9`` right after it lost the
        signal (it waited up to a few milliseconds for its commit). A journal that cannot record it: 503."""
        journal = self.session.journal if self.session is not None else None
        if journal is None:
            return
        try:
            await journal.flush()
        except JournalFailed as failure:
            raise Refused(503, f"the journal cannot record the signal ({failure.message}): "
                               "the cell is stopping") from None

    def _bus(self) -> Bus:
        """The bus of the agents, while they take signals; else ``Refused`` (503): a signal taken then
        would reach no agent."""
        session = self.session
        if session is not None and session.stopping:
            raise Refused(503, "the cell is stopping: signals are no longer taken")
        if session is None or _starting(session):
            raise Refused(503, "the cell is starting (its robots connect, and recovery rolls back what a crash cut "
                               "off, before any new signal): try again", {"Retry-After": "1"})
        if session.bus is None:
            raise Refused(503, "no agents are running in this process: signals are not taken")
        return session.bus

    def events(self, last_id: str | None) -> AsyncIterator[str]:
        if self.hub.clients >= MAX_STREAMS:
            raise Refused(503, f"{MAX_STREAMS} clients already read the event stream: try again later",
                          {"Retry-After": "5"})
        return self.hub.stream(self.hub.resume_point(last_id))

    def healthy(self) -> tuple[bool, str]:
        session = self.session
        if session is None:
            return False, "starting"
        if session.stopping:
            return False, "stopping"
        if _starting(session):
            return False, "starting"
        if session.root is not None or (session.plan.reactor is not None and session.robots):
            return True, "ok"
        return False, "supervisor down" if session.gave_up is not None else "not serving"

    async def set_armed(self, robot: str, armed: bool) -> str:
        if self.session is None:
            raise KeyError(robot)
        proxy = self.session.robot(robot)
        await proxy.call("arm" if armed else "disarm", {})
        return proxy.safety

    def cancel_run(self, run: str) -> None:
        if self.session is None:
            raise KeyError(run)
        self.session.cancel_run(run)

    def metrics(self) -> bytes:
        return self.metrics_.exposition()

    def schema(self) -> dict[str, Any]:
        if self._schema is None:
            host = self.url.removeprefix("http://")
            self._schema = {"signals": signal_schemas(self.catalog),
                            "asyncapi": asyncapi(self.catalog, title=self.title, address=host)}
        return self._schema

    def state(self) -> dict[str, Any]:
        session = self.session
        robots, agents = [], []
        if session is not None:
            for server in session.servers:
                stats = attrs.asdict(server.stats)
                agents.append({"name": server.name, "robot": server.robot_instance, "state": jsonable(server.state),
                               "queue": server.queue_depth, "last_signal": server.last_signal, "stats": stats})
            for proxy in session.robots:
                running = sum(s.stats.runs_in_flight for s in session.servers if s.robot_instance == proxy.instance)
                robots.append({"name": proxy.instance, "interface": proxy.spec.name, "safety": proxy.safety,
                               "state": proxy.state, "runs": running,
                               "queue": session.tasks.queue_depth(proxy.instance)})  # runs waiting for it
        _, health = self.healthy()
        return {
            "title": self.title,
            "health": health,
            "uptime": round(time.time() - self.started_at, 3),
            "clock": asyncio.get_running_loop().time(),  # the clock of the events' "time"
            "last_event": self.hub.last,
            "robots": robots,
            "agents": agents,
            "runs": self.runs.to_json(),
            "held": self._held(),
            "fleet": self.fleet.to_json(session.process if session is not None else None),
            "reactors": {r.name: _steps(r) for r in self.program.reactors.values()},
            "counters": dict(session.board.counts) if session is not None else {},
        }

    def _held(self) -> list[dict[str, Any]] | None:
        """The runs this process's journal holds for an operator (none without a journal; None when the
        journal cannot be read: not knowing is not "none")."""
        journal = self.session.journal if self.session is not None else None
        if journal is None:
            return []
        try:
            return journal.held()
        except sqlite3.Error:
            return None

    # --- gauges read at scrape time ------------------------------------------------------------

    def _gauges(self) -> dict[str, Any]:
        def queues() -> list[tuple[tuple[str, ...], float]]:  # an agent has an instance per robot
            return [((s.name, s.robot_instance or ""), float(s.queue_depth)) for s in self._servers()]

        def robot_queues() -> list[tuple[tuple[str, ...], float]]:
            session = self.session
            if session is None:
                return []
            return [((p.instance,), float(session.tasks.queue_depth(p.instance))) for p in session.robots]

        def in_flight() -> list[tuple[tuple[str, ...], float]]:
            return [((), float(len(self.runs.running)))]

        def armed() -> list[tuple[tuple[str, ...], float]]:
            robots = self.session.robots if self.session is not None else []
            return [((p.instance,), 1.0 if p.safety == "armed" else 0.0) for p in robots]

        def clients() -> list[tuple[tuple[str, ...], float]]:
            return [((), float(self.hub.clients))]

        def peers() -> list[tuple[tuple[str, ...], float]]:  # the others: this process is no peer of its own
            me = self.session.process if self.session is not None else None
            return [((), float(sum(p.up and p.process != me for p in self.fleet.peers.values())))]

        def fleet_robots() -> list[tuple[tuple[str, ...], float]]:
            return [((robot,), 1.0 if up else 0.0) for robot, up in self.fleet.robots().items()]

        def journal(read: Callable[[Lag], float]) -> Callable[[], list[tuple[tuple[str, ...], float]]]:
            def series() -> list[tuple[tuple[str, ...], float]]:  # none without a journal
                journal = self.session.journal if self.session is not None else None
                return [] if journal is None else [((), read(journal.lag()))]

            return series

        def held() -> list[tuple[tuple[str, ...], float]]:  # none without a journal, or when it cannot be read
            journal = self.session.journal if self.session is not None else None
            try:
                return [] if journal is None else [((), float(journal.held_count()))]
            except sqlite3.Error:
                return []

        return {
            "bbflow_agent_queue_depth": ("Signals and run outcomes waiting in an agent instance's mailbox",
                                         ("agent", "robot"), queues),
            "bbflow_robot_queue_depth": ("Runs waiting for a robot (its task queue)", ("robot",), robot_queues),
            "bbflow_runs_in_flight": ("Top-level runs started and not yet ended", (), in_flight),
            "bbflow_robot_armed": ("1 while a robot is armed", ("robot",), armed),
            "bbflow_event_stream_clients": ("Clients reading GET /events", (), clients),
            "bbflow_fleet_peers": ("Other processes of the fleet up on the bus", (), peers),
            "bbflow_fleet_robot_up": ("1 while a process of the fleet that has the robot instance is up",
                                      ("robot",), fleet_robots),
            "bbflow_journal_lag_seconds": ("How long the oldest journal record written and not yet committed "
                                           "has waited (0: the file is up to date)", (), journal(lambda lag: lag.oldest)),
            "bbflow_journal_pending_records": ("Journal records written and not yet committed", (),
                                               journal(lambda lag: float(lag.pending))),
            "bbflow_runs_held": ("Runs cut off by a crash and held for an operator in this process's journal",
                                 (), held),
        }

    def _servers(self) -> tuple[Any, ...]:
        return self.session.servers if self.session is not None else ()


def _starting(session: Session) -> bool:
    """Whether the session's agents are still to start: its robots connect, and recovery rolls back (or holds)
    what a crash cut off, waiting for a real robot to be armed. It was "not serving", and a signal was told
    that no agents run in this process."""
    return bool(session.plan.agents) and not session.servers and session.gave_up is None


def _steps(reactor: model.Reactor) -> list[str]:
    return [node.name for node in reactor.body.nodes if not isinstance(node, model.Let)]


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ``OSError`` with a readable message if it cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"--serve {host}:{port}: unknown host: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by every accepted connection. Without it a response written in two parts (head,
        # then body) waits for the client's delayed ACK: ~40 ms per request, some 25 requests/s.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(511)
    except OSError as exc:
        sock.close()
        raise OSError(f"--serve {host}:{port}: cannot listen: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock
