"""The Zenoh link: this process's signals out to the fleet, the fleet's in through the door.

Imported only when ``[bus] kind = "zenoh"`` (it needs the ``bus`` extra).

- Out: each signal type that leaves the process gets a Zenoh *advanced
  publisher* on its key (``PREFIX/a/b/c``), declared on first use. It keeps the
  last ``CACHE_SAMPLES`` events per key for subscribers that missed them,
  announces sequence numbers (sample-miss detection, sporadic heartbeats) and
  publishes reliably, blocking rather than dropping when the network is slow.
  The puts are made in order on a thread of their own (``_Outbox``): a put that
  blocks must not stop the event loop; what finds that outbox full waits for
  room while the puts go on, and is not sent, and reported ``signal.dropped``,
  while a peer that reads nothing holds them.
- In: one *advanced subscriber* per key expression of the process's routes.
  Gaps are reported as ``signal.lost`` with a ``count``; with ``catch_up``
  > 0, a process that starts asks the publishers for what they published
  within that window, and gaps are first filled from the publishers' caches.
  Events arrive on Zenoh's threads and are handed to the event loop in
  batches; the door checks each one there.
- Catch-up gaps: with ``catch_up`` > 0, each event is published with a Zenoh
  timestamp (the window is a ``max_age`` on them) and, as its attachment, the
  time its publisher published the one before it. The first event a process
  gets from a publisher tells it how many that publisher published before
  (the sequence number) and whether the last of those was within the window:
  if so, the window held events the cache no longer did, and they are
  reported as ``signal.lost`` (Zenoh's own miss detection only sees gaps
  between events a subscriber has had).
- Membership: one liveliness token ``PREFIX/@fleet/PROCESS/ROBOTS/AGENTS``;
  every other process's token appearing or going (its session closed, its
  process killed, its network gone) becomes ``fleet.peer.up`` or
  ``fleet.peer.down`` here.
- Claims: before a process opens its robots it joins the bus (``join``) and
  declares a token ``PREFIX/@claim/robot/ROBOT/PROCESS`` for each (and
  ``PREFIX/@claim/agent/AGENT/PROCESS`` for each coordinator), then asks for
  every claim there is: another process's claim on one of the same stops it
  (``AlreadyRun``) before anything moves; one seen later, while it runs, ends
  the session once it has lasted ``CLAIM_GRACE`` (``taken``). The claims go
  last, after the robots are closed (``close``); the membership token goes when
  the agents stop (``leave``). A process that only moves a robot (a reactor
  run, ``bbflow runs recover``) joins and closes: it claims, and is no member.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import secrets
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import zenoh
from zenoh import ext

from bbflow.runtime import jsonout
from bbflow.runtime.bus import Bus
from bbflow.runtime.door import MAX_LINE_BYTES
from bbflow.runtime.fleet.door import BusDoor, SeenIds
from bbflow.runtime.fleet.keys import (
    AGENT,
    FLEET_PEER_DOWN,
    FLEET_PEER_UP,
    ROBOT,
    Claim,
    Member,
    claim_key,
    claim_of_key,
    claims_key,
    key_signal,
    member_key,
    member_of_key,
    members_key,
    signal_key,
    stays_local,
    subscriptions,
)
from bbflow.runtime.fleet.membership import AlreadyRun, check_claims, peer_envelope
from bbflow.runtime.fleet.settings import BusOpenError, BusSettings, process_parts
from bbflow.runtime.fleet.threads import CLOSE_THREAD, OUTBOX_THREAD
from bbflow.runtime.signals import Envelope

#: Events kept per key by each publisher for subscribers that missed them.
CACHE_SAMPLES = 256
#: Seconds between the sequence-number heartbeats a publisher sends when it has published since the last.
HEARTBEAT = 0.5
ENCODING = "application/cloudevents+json"
#: compact JSON, one encoder for all (``json.dumps`` with options makes one per call)
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: Seconds between two looks at whether the session is still open.
WATCH = 0.2
#: the attachment of an event published with a catch-up window: when the one before it was published (Unix time)
_PREVIOUS = struct.Struct("<d")
#: publishers remembered to see which ones are new (oldest forgotten first)
SOURCES = 10_000
#: events sent and not yet put on the bus, at most (or ``OUTBOX_BYTES``): past that, sending waits for room while
#: the puts go on (a burst faster than the network), and an event is not sent, and reported, once they do not
OUTBOX = 1_000
OUTBOX_BYTES = 16 << 20
#: how long sending waits (on the event loop) for room in a full outbox before it takes the puts for held by a
#: peer that reads nothing; from then on, until a put returns, what finds no room is not sent at once
ROOM_WAIT = 0.05
#: The most the queue before the door holds: events past it (or past ``INBOX_BYTES``) are lost, and reported
INBOX = 10_000
INBOX_BYTES = 64 << 20
#: Seconds a stopping process waits for what it sent to go out, and then for Zenoh to close its session: a peer
#: that stopped reading holds a put for up to 5 s and a close for up to 10 s
STOP_WAIT = 2.0
CLOSE_WAIT = 1.0
#: Seconds a process waits for the others' claims on its robots (they are known locally once connected)
CLAIMS_WAIT = 2.0
#: Seconds another process's claim on one of this process's, seen while it runs, must last to end the session:
#: a process refused at its start withdraws its claim by then, and the process that had the robot goes on
CLAIM_GRACE = CLAIMS_WAIT + 1.0


def zenoh_config(settings: BusSettings) -> zenoh.Config:
    """The Zenoh configuration: the ``config`` file if any, then ``mode``, ``listen`` and ``connect`` over it."""
    try:
        config = zenoh.Config.from_file(str(settings.config)) if settings.config is not None else zenoh.Config()
    except (zenoh.ZError, OSError, ValueError) as exc:
        raise BusOpenError(f"{settings.config}: bad Zenoh configuration: {zenoh_message(exc, place=True)}") from None
    for key, value, given in (("mode", settings.mode, "[bus] mode"),
                              ("listen/endpoints", settings.listen, "--bus-listen (or [bus] listen)"),
                              ("connect/endpoints", settings.connect, "--bus-connect (or [bus] connect)")):
        if value is not None:
            text = json.dumps(value if isinstance(value, str) else list(value))
            try:
                config.insert_json5(key, text)
            except zenoh.ZError as exc:
                raise BusOpenError(f"{given} {text}: {zenoh_message(exc)}") from None
    return config


#: where in Zenoh's Rust sources an error was raised (`` at /root/.cargo/.../tcp.rs:61.``): nothing to a user
_RUST_PLACE = re.compile(r" at /\S+\.rs:\d+\.?")
#: serde's error, as Zenoh shows it: the message and its line and column (``Json5Err(Message { msg: ... })``)
_SERDE = re.compile(r'(?:Json5Err\(|JSON error: )?Message \{ msg: "(?P<msg>(?:[^"\\]|\\.)*)", '
                    r"location: (?:Some\(Location \{ line: (?P<line>\d+), column: (?P<column>\d+) \}\)|None) \}\)?")


def zenoh_message(exc: Exception, *, place: bool = False) -> str:
    """Zenoh's error message, without where in its sources it was raised; ``place``: with the line and
    column of a configuration file's error."""
    text = _RUST_PLACE.sub("", str(exc))
    serde = _SERDE.search(text)
    if serde is not None:
        at = f"line {serde['line']}, column {serde['column']}: " if place and serde["line"] else ""
        text = text[:serde.start()] + at + serde["msg"].replace('\\"', '"') + text[serde.end():]
    return text.strip()


@attrs.define
class _Inbox:
    """Samples from Zenoh's threads, drained on the event loop in batches (one wake-up per batch).

    A batch is scheduled by whoever finds none scheduled; ``_run`` marks none scheduled *before* it
    takes the items, so an item put after it took them schedules the next batch. The events queued are
    bounded (``INBOX``, ``INBOX_BYTES``): while the loop cannot keep up (or is blocked), an event that
    finds the queue full is counted lost under its subscription, and the next batch reports the count.
    """

    loop: asyncio.AbstractEventLoop
    drain: Callable[[list[tuple[str, Any]]], None]
    _items: deque[tuple[str, Any]] = attrs.Factory(deque)
    _scheduled: bool = False
    closed: bool = False
    _bytes: int = 0  # of the events queued
    _overflow: dict[str, int] = attrs.Factory(dict)  # events lost for want of room, by subscription
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def put_event(self, subscription: str, key: str, payload: bytes, first: Any = None) -> None:
        """An event on ``key`` (with ``first``: what tells a gap before it), or, when the queue is full,
        one more lost under ``subscription``."""
        with self._lock:
            if len(self._items) >= INBOX or self._bytes + len(payload) > INBOX_BYTES:
                self._overflow[subscription] = self._overflow.get(subscription, 0) + 1
                return
            self._bytes += len(payload)
            if first is not None:
                self._items.append(("first", first))
            self._items.append(("sample", (key, payload)))
        self._schedule()

    def put(self, kind: str, item: Any) -> None:
        with self._lock:
            self._items.append((kind, item))
        self._schedule()

    def _schedule(self) -> None:
        if self._scheduled or self.closed:
            return
        self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # the loop has closed: the process is stopping
            pass

    def _run(self) -> None:
        self._scheduled = False
        with self._lock:
            batch = list(self._items)
            self._items.clear()
            self._bytes = 0
            if self._overflow:
                batch.append(("overflow", self._overflow))
                self._overflow = {}
        if not self.closed and batch:
            self.drain(batch)


class _Outbox:
    """Puts events on the bus from a thread of its own, in the order they were sent.

    Zenoh's put blocks while the network is congested or a peer has stopped reading (a process stopped
    with SIGSTOP, a machine asleep), for up to 5 s before Zenoh drops the link to that peer: on the event
    loop, every agent, robot and timer of the process would stop with it. At most ``OUTBOX`` events and
    ``OUTBOX_BYTES`` wait here. An event that finds no room waits for it while the puts go on (a burst
    faster than the network: the sender is held back, as by the network itself), but ``ROOM_WAIT`` at most:
    then the puts are taken for held (``stalled``), and until one returns, what finds no room is refused at
    once (the caller reports it). A put that fails is handed back to the loop (``failed``).

    Without a lock per event: ``deque.append`` and ``popleft`` are atomic; the thread
    clears ``_wake`` *before* it takes what is there, so an event put after that wakes it again, and ``put``
    clears ``_room`` before it looks again whether the outbox is still full. The bytes waiting are those
    ``put`` took in less those the thread took out: two counts, each written by one thread.
    """

    def __init__(self, publish: Callable[[str, bytes], None], loop: asyncio.AbstractEventLoop,
                 failed: Callable[[str, Exception], None]) -> None:
        self._publish = publish
        self._loop = loop
        self._failed = failed
        self._items: deque[tuple[str, bytes] | None] = deque()
        self._wake = threading.Event()
        self._room = threading.Event()
        self.stalled = False  # set by ``put`` when no room came in ``ROOM_WAIT``; cleared when a put returns
        self._bytes_in = 0  # written by ``put`` only
        self._bytes_out = 0  # written by the thread only
        self._thread = threading.Thread(target=self._run, name=OUTBOX_THREAD, daemon=True)
        self._thread.start()

    def put(self, signal_type: str, payload: bytes) -> bool:
        """Queue an event to be put on the bus; ``False`` (not queued) when the outbox is full and its puts
        are held."""
        while self._full(len(payload)):
            if self.stalled:
                return False
            self._room.clear()
            if self._full(len(payload)) and not self._room.wait(ROOM_WAIT):
                self.stalled = True
        self._bytes_in += len(payload)
        self._append((signal_type, payload))
        return True

    def _full(self, size: int) -> bool:
        return len(self._items) >= OUTBOX or self._bytes_in - self._bytes_out + size > OUTBOX_BYTES

    def stop(self, patience: float) -> list[tuple[str, bytes]]:
        """Put what is queued, then end the thread, waiting ``patience`` seconds at most (it blocks: call it
        in an executor). What is still queued then (behind a put that a peer which stopped reading holds,
        for up to 5 s each) is taken back and returned."""
        self._append(None)
        self._thread.join(patience)
        if not self._thread.is_alive():
            return []
        left = []
        while True:
            try:
                item = self._items.popleft()
            except IndexError:
                break
            if item is not None:
                left.append(item)
        self._append(None)  # the thread ends once the put it is in returns
        return left

    def _append(self, item: tuple[str, bytes] | None) -> None:
        self._items.append(item)
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        items = self._items
        while True:
            self._wake.wait()
            self._wake.clear()
            while items:
                item = items.popleft()
                if item is None:
                    return
                self._bytes_out += len(item[1])
                if not self._room.is_set():
                    self._room.set()
                try:
                    self._publish(*item)
                except Exception as exc:  # the session closed under the process, or worse: the thread goes on
                    try:
                        self._loop.call_soon_threadsafe(self._failed, item[0], exc)
                    except RuntimeError:  # the loop has closed: the process is stopping
                        pass
                self.stalled = False


def session_tag(process: str) -> str | None:
    """The start of the Zenoh ids of the sessions of ``process`` (a name ``HOST-PID-XXXXXX``), so that a
    publisher Zenoh names by its id is known as its process: ``b``, the random tag and the PID in hex;
    the rest of an id is random (a new session does not take an old one's id). ``None`` for another name."""
    parts = process_parts(process)
    return None if parts is None else f"b{parts[2]}{parts[1]:08x}"


async def _within(seconds: float, work: Callable[[], object]) -> bool:
    """Run ``work`` on a thread of its own and wait ``seconds`` at most: whether it ended by then. Not in
    the loop's executor, whose threads the process waits for as it exits: this thread is a daemon."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            work()
        except zenoh.ZError:
            pass  # the session was gone already, or the close timed out
        finally:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the process is ending
                loop.call_soon_threadsafe(_settle, done)

    threading.Thread(target=run, name=CLOSE_THREAD, daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), seconds)
    except TimeoutError:
        return False
    return True


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _undeclare(entities: Iterable[Any]) -> None:
    for entity in entities:
        try:
            entity.undeclare()
        except zenoh.ZError:
            pass  # already gone with the session
        except RuntimeError:  # "Already borrowed": a publisher a put still holds on the outbox's thread (a
            pass  # peer that stopped reading); it goes with the session


def _broadest(keys: list[str]) -> list[zenoh.KeyExpr]:
    """``keys`` without those another one includes (``a/b`` beside ``a/**``): Zenoh gives a sample to every
    subscription it matches, and each copy would be a duplicate at the door."""
    exprs = [zenoh.KeyExpr(k) for k in keys]
    return [e for i, e in enumerate(exprs)
            if not any(o.includes(e) and (j < i or not e.includes(o)) for j, o in enumerate(exprs) if j != i)]


def _on_sample(inbox: _Inbox, key: zenoh.KeyExpr, *, catch_up: bool,
               before: list[zenoh.KeyExpr]) -> Callable[[zenoh.Sample], None]:
    """The callback of a subscription to ``key`` (on Zenoh's threads: as little as can be). A key without
    wildcards is the key of every sample it gets; with ``catch_up``, what tells a gap comes along.
    ``before``: the subscriptions declared before this one that overlap it (``a/*/c`` and ``a/b/*``); a
    sample one of them matches is theirs, so that each sample is taken once."""
    if before:
        take_here = _on_sample(inbox, key, catch_up=catch_up, before=[])

        def unless_taken(sample: zenoh.Sample) -> None:
            if not any(k.includes(sample.key_expr) for k in before):
                take_here(sample)

        return unless_taken
    subscription, put = str(key), zenoh.SampleKind.PUT
    if catch_up:
        def with_source(sample: zenoh.Sample) -> None:
            where = str(sample.key_expr)
            if sample.kind != put:
                inbox.put("delete", where)
                return
            info, attachment, first = sample.source_info, sample.attachment, None
            if info is not None and attachment is not None:  # a gap before it is reported first
                source = info.source_id
                first = (f"{source.zid}:{source.eid}", int(info.source_sn), attachment.to_bytes(), where)
            inbox.put_event(subscription, where, sample.payload.to_bytes(), first)

        return with_source
    known = None if "*" in subscription else subscription  # the key of every sample, when it has no wildcard

    def take(sample: zenoh.Sample) -> None:
        """An event to the door; a Zenoh delete (no event: someone's ``session.delete``) as what it is."""
        where = known or str(sample.key_expr)
        if sample.kind == put:
            inbox.put_event(subscription, where, sample.payload.to_bytes())
        else:
            inbox.put("delete", where)

    return take


def _on_miss(inbox: _Inbox, key: str, miss: Any) -> None:
    """Zenoh saw a gap in what a publisher sent on a subscription to ``key`` (on Zenoh's threads)."""
    inbox.put("miss", (str(miss.source.zid), miss.nb, key))


class ZenohLink:
    """``Bus.link`` over a Zenoh session; ``open`` it on the running loop, ``close`` it at the end.

    A session that closes under the process (Zenoh failed, or it was closed) is a lost bus:
    ``wait_lost`` returns, and ``reopen`` opens a new session with the same subscriptions and
    token (the process's supervision tree does both: see ``bbflow.runtime.app``). Until then, what
    the process sends is reported dropped; the peers it knew are reported down (it cannot see
    them), and those still there are up again when the new session starts.
    """

    def __init__(self, settings: BusSettings, *, process: str, robots: Iterable[str], agents: Iterable[str],
                 coordinators: Iterable[str] = ()) -> None:
        self.settings = settings
        self.process = process
        self.robots = tuple(robots)
        self.agents = tuple(agents)
        self.claims = [*(Claim(ROBOT, r, process) for r in self.robots),
                       *(Claim(AGENT, a, process) for a in dict.fromkeys(coordinators))]
        self.prefix = settings.prefix
        self.sent = 0
        self._session: zenoh.Session | None = None
        self._publishers: dict[str, Any] = {}  # by signal type (used by the outbox's thread)
        self._outbox: _Outbox | None = None
        self._declared: list[Any] = []  # subscribers, listeners, the token: undeclared in reverse at close
        self._bus: Bus | None = None
        self._patterns: tuple[str, ...] = ()
        self._inbox: _Inbox | None = None
        self._door: BusDoor | None = None
        self._peers: dict[str, Member] = {}  # by membership key
        self._previous: dict[str, float] = {}  # per signal type: when its last event was published (catch-up)
        self._sources = SeenIds(SOURCES)  # the publishers events came from (catch-up)
        self._lost: str | None = None  # why the session is gone, until it is reopened
        #: another process's claim on one of this process's, seen after the check at the start: ends the session
        self._taken: AlreadyRun | None = None
        self._contested: dict[str, AlreadyRun] = {}  # such claims seen, by key, until they last CLAIM_GRACE
        self._claims: list[Any] = []  # the tokens of ``claims``: undeclared last
        self._joined = False  # once: a new session's check comes after this process opened its robots

    @property
    def keys(self) -> list[str]:
        return [str(s.key_expr) for s in self._declared if hasattr(s, "key_expr")]

    @property
    def taken(self) -> AlreadyRun | None:
        """Another process's claim on one of this process's, seen while it ran, that ended the session."""
        return self._taken

    @property
    def lost(self) -> bool:
        """The session was found gone (``wait_lost`` returned) and no new one is open yet."""
        return self._lost is not None

    async def open(self, bus: Bus, patterns: Iterable[str]) -> None:
        """Join the bus (``join``, unless joined), subscribe to ``patterns`` (route patterns), and announce
        this process."""
        self._bus = bus
        self._patterns = tuple(patterns)
        self._door = BusDoor(bus, self.prefix)
        self._inbox = _Inbox(asyncio.get_running_loop(), self._drain)
        await self._connect()
        bus.link = self

    async def reopen(self) -> None:
        """A new session in place of a lost one: the same claims (checked again: another process may have
        claimed one meanwhile), subscriptions, publishers and token. Raises ``AlreadyRun`` (the session
        closed) when the old one was ended by another process's claim on one of this process's."""
        await self._disconnect()
        if self._taken is not None:
            raise self._taken
        await (self._connect() if self._inbox is not None else self.join())  # claims only: a reactor run, a recovery
        self._lost = None

    async def wait_lost(self) -> str:
        """Return, with the reason, once the session is gone (checked every ``WATCH`` seconds)."""
        while self._lost is None:
            if self._session is None or self._session.is_closed():
                self._lose("the Zenoh session closed")
                break
            await asyncio.sleep(WATCH)
        assert self._lost is not None
        return self._lost

    async def join(self) -> None:
        """Open the session and claim this process's robots and coordinators, before any robot is opened.
        Raises ``AlreadyRun`` (closing the session) when another process on the bus claims one of them, and
        ``BusOpenError`` when the session cannot be opened. Nothing when joined already."""
        if self._session is not None:
            return
        config = zenoh_config(self.settings)
        tag = session_tag(self.process)
        if tag is not None and config.get_json("id") == "null":  # one the others can tell this process by
            config.insert_json5("id", json.dumps((tag + secrets.token_hex(16))[:32]))  # Zenoh's ids: 16 bytes at most
        if config.get_json("open/return_conditions/declares") == "null":  # Zenoh's default, said: the claims of
            config.insert_json5("open/return_conditions/declares", "true")  # the peers are known once it opens
        loop = asyncio.get_running_loop()
        try:
            self._session = session = await loop.run_in_executor(None, zenoh.open, config)
        except zenoh.ZError as exc:
            given = [f"{what} {', '.join(endpoints)}" for what, endpoints in (("listen", self.settings.listen),
                                                                                ("connect", self.settings.connect))
                     if endpoints]  # Zenoh's message does not say which endpoint it means
            where = f" ({'; '.join(given)})" if given else ""
            raise BusOpenError(f"cannot open the Zenoh session{where}: {zenoh_message(exc)}") from None
        if not self.claims:
            return
        liveliness = session.liveliness()
        self._claims = [liveliness.declare_token(claim_key(self.prefix, claim)) for claim in self.claims]

        def claims() -> list[Claim]:
            replies = liveliness.get(claims_key(self.prefix), timeout=CLAIMS_WAIT)
            return [c for r in replies if r.ok is not None
                    if (c := claim_of_key(self.prefix, str(r.ok.key_expr))) is not None]

        try:
            check_claims(self.prefix, self.claims, await loop.run_in_executor(None, claims), at_start=not self._joined)
        except BusOpenError:
            await self._disconnect()
            raise

        def claimed(sample: zenoh.Sample) -> None:  # on Zenoh's threads
            with contextlib.suppress(RuntimeError):  # the loop has closed: the process is stopping
                loop.call_soon_threadsafe(self._claimed, str(sample.key_expr), sample.kind)

        # a claim the check could not see: a process that reaches this one only through a third (Zenoh's gossip
        # connects such peers a moment later), or a network cut that heals
        self._claims.append(liveliness.declare_subscriber(claims_key(self.prefix), claimed, history=True))
        self._joined = True

    def unreached(self) -> list[str]:
        """The ``connect`` endpoints, when the session reached no other process nor router through them
        (a wrong address, or none started yet): Zenoh keeps trying, and this process runs alone meanwhile."""
        if not self.settings.connect or self._session is None:
            return []
        info = self._session.info
        return [] if any(info.peers_zid()) or any(info.routers_zid()) else list(self.settings.connect)

    async def _connect(self) -> None:
        await self.join()
        session, inbox = self._session, self._inbox
        assert session is not None
        assert inbox is not None
        self._outbox = _Outbox(lambda signal_type, payload: self._put(session, signal_type, payload),
                               asyncio.get_running_loop(), self._failed)
        history = ext.HistoryConfig(detect_late_publishers=True, max_samples=CACHE_SAMPLES,
                                    max_age=self.settings.catch_up) if self.settings.catch_up > 0 else None
        # Recovery asks a publisher's cache for what a heartbeat says was missed, which a process that
        # starts would take as missed too: only with a catch-up window.
        recovery = ext.RecoveryConfig(heartbeat=True, periodic_queries=None) if history is not None else None
        keys = _broadest(subscriptions(self.prefix, self._patterns))
        for i, key in enumerate(keys):
            sub = ext.declare_advanced_subscriber(
                session, key, _on_sample(inbox, key, catch_up=history is not None,
                                         before=[k for k in keys[:i] if k.intersects(key)]),
                history=history, recovery=recovery,
                allowed_origin=zenoh.Locality.REMOTE,
            )
            self._declared.append(sub)
            self._declared.append(sub.sample_miss_listener(functools.partial(_on_miss, inbox, str(key))))
        self._declared.append(session.liveliness().declare_subscriber(
            members_key(self.prefix), lambda sample: inbox.put("member", (str(sample.key_expr), sample.kind)),
            history=True))
        self._declared.append(session.liveliness().declare_token(
            member_key(self.prefix, self.process, self.robots, self.agents)))

    async def leave(self) -> None:
        """Withdraw the subscriptions and the membership token (the others see ``fleet.peer.down`` at once),
        once what was sent has gone out; the session and the robots' claims stay until ``close``."""
        if self._inbox is not None:
            self._inbox.closed = True
        if self._bus is not None and self._bus.link is self:
            self._bus.link = None
        await self._withdraw()

    async def _withdraw(self) -> None:
        outbox, self._outbox = self._outbox, None
        if outbox is not None:  # what was sent goes out before the token goes
            for signal_type, _ in await asyncio.get_running_loop().run_in_executor(None, outbox.stop, STOP_WAIT):
                self._not_sent(signal_type, f"the process stopped, and a peer had read nothing for {STOP_WAIT:g}s")
        _undeclare([*reversed(self._declared), *self._publishers.values()])
        self._declared.clear()
        self._publishers.clear()

    async def _disconnect(self) -> None:
        self._contested.clear()  # a new session's subscription sees again the claims that still stand
        await self._withdraw()
        session, self._session = self._session, None
        _undeclare(self._claims)
        self._claims = []
        if session is not None and not session.is_closed():
            # Zenoh waits up to 10 s on a peer that stopped reading ("close operation timed out"), and its
            # close takes no shorter limit: the process waits CLOSE_WAIT, and its end ends the rest
            await _within(CLOSE_WAIT, session.close)

    def _lose(self, reason: str) -> None:
        """The session is gone: say why once, and report the peers it knew down (it cannot see them now)."""
        if self._lost is not None:
            return
        self._lost = reason
        if self._inbox is None or self._inbox.closed:  # no agent hears it now
            return
        for key in list(self._peers):
            self._member(key, zenoh.SampleKind.DELETE)

    def send(self, envelope: Envelope) -> bool:
        if stays_local(envelope.type) or (self._session is None and self._lost is None):
            return False
        if self._lost is not None:  # also while a new session opens
            self._not_sent(envelope.type, self._lost)
            return True
        assert self._outbox is not None
        payload = jsonout.encodable(_ENCODE(envelope.to_json())).encode()
        if len(payload) > MAX_LINE_BYTES:  # every other process's door would refuse it
            self._not_sent(envelope.type, f"{len(payload)} bytes, more than the bus takes ({MAX_LINE_BYTES} bytes)")
            return True
        if not self._outbox.put(envelope.type, payload):
            self._not_sent(envelope.type, f"{OUTBOX:,} events or {OUTBOX_BYTES >> 20} MiB wait to go out already, "
                                          "held by a peer that reads nothing (a process stopped, a machine asleep)")
            return True
        self.sent += 1
        return True

    def _put(self, session: zenoh.Session, signal_type: str, payload: bytes) -> None:
        """Put one event on the bus (on the outbox's thread)."""
        publisher = self._publishers.get(signal_type)
        if publisher is None:
            publisher = self._publishers[signal_type] = ext.declare_advanced_publisher(
                session, signal_key(self.prefix, signal_type), encoding=ENCODING,
                congestion_control=zenoh.CongestionControl.BLOCK,
                cache=ext.CacheConfig(max_samples=CACHE_SAMPLES),
                sample_miss_detection=ext.MissDetectionConfig(heartbeat=None, sporadic_heartbeat=HEARTBEAT),
                publisher_detection=True,
            )
        if self.settings.catch_up > 0:
            now = time.time()
            previous = self._previous.get(signal_type, 0.0)
            self._previous[signal_type] = now
            publisher.put(payload, timestamp=session.new_timestamp(), attachment=_PREVIOUS.pack(previous))
        else:
            publisher.put(payload)

    def _failed(self, signal_type: str, exc: Exception) -> None:
        """A put failed on the outbox's thread: the session closed under us, or broke (the supervisor reopens it)."""
        reason = f"the Zenoh session failed: {zenoh_message(exc)}"
        self._lose(reason)
        self._not_sent(signal_type, self._lost or reason)

    def _not_sent(self, signal_type: str, why: str) -> None:
        """A signal this process's agents have and the other processes do not (the bus is down, or it is
        too large for the bus)."""
        assert self._bus is not None
        self._bus.dropped += 1
        self._bus.report("signal.dropped", type=signal_type, reason=f"not sent to the other processes: {why}",
                         unsent=True)

    async def close(self) -> None:
        """``leave``, withdraw the claims and close the session."""
        await self.leave()
        await self._disconnect()

    # --- on the loop -------------------------------------------------------------------

    def _drain(self, batch: list[tuple[str, Any]]) -> None:
        assert self._door is not None and self._bus is not None
        for kind, item in batch:
            if kind == "sample":
                self._door.arrive(*item)
            elif kind == "miss":
                zid, count, key = item
                self._bus.report("signal.lost", type=key_signal(self.prefix, key), count=count,
                                 **self._publisher(zid), reason="missed on the bus and no longer in its publisher's cache")
            elif kind == "delete":
                self._door.deleted(item)
            elif kind == "overflow":
                for key, count in item.items():
                    self._bus.report("signal.lost", type=key_signal(self.prefix, key), count=count,
                                     reason=f"the queue before the door was full ({INBOX:,} events or "
                                            f"{INBOX_BYTES >> 20} MiB): this process took events in slower than "
                                            "they came")
            elif kind == "first":
                self._first(*item)
            else:
                self._member(*item)

    def _publisher(self, zid: str) -> dict[str, Any]:
        """The fields naming a publisher by its Zenoh id: its bbflow process (``source``) and that process's
        robots and agents when it is a member this process knows, else ``source`` is the Zenoh id."""
        for member in self._peers.values():
            if zid.startswith(session_tag(member.process) or "-"):
                return {"source": member.process, "robots": list(member.robots), "agents": list(member.agents)}
        return {"source": zid}

    def _first(self, source: str, sn: int, attachment: bytes, key: str) -> None:
        """An event from publisher ``source`` (catch-up on): if it is the first from there and the event
        before it was published within the catch-up window, what the window held before it is lost."""
        assert self._bus is not None
        if not self._sources.add(source) or sn == 0 or len(attachment) != _PREVIOUS.size:
            return
        (previous,) = _PREVIOUS.unpack(attachment)
        if previous > time.time() - self.settings.catch_up:
            self._bus.report("signal.lost", type=key_signal(self.prefix, key), count=sn,
                             **self._publisher(source.partition(":")[0]),
                             reason=f"published within the catch-up window ({self.settings.catch_up:g}s) before the "
                                    "oldest event its publisher still holds; some may be older than the window, or taken "
                                    "before a restart")

    def _claimed(self, key: str, kind: zenoh.SampleKind) -> None:
        """Another process's claim on one of this process's, seen while it runs: if it lasts ``CLAIM_GRACE``
        (a process refused at its start withdraws its own before), the session ends (``taken``): the supervisor's
        restart of it raises ``AlreadyRun``, and the process stops safely, as at the start; a reactor run or a
        recovery, which have no supervisor, stop safely when ``wait_lost`` returns."""
        if kind != zenoh.SampleKind.PUT:
            self._contested.pop(key, None)
            return
        claim = claim_of_key(self.prefix, key)
        if claim is None:
            return
        try:
            check_claims(self.prefix, self.claims, [claim], at_start=False)
        except AlreadyRun as exc:
            self._contested[key] = exc
            asyncio.get_running_loop().call_later(CLAIM_GRACE, self._still_claimed, key)

    def _still_claimed(self, key: str) -> None:
        taken = self._contested.pop(key, None)
        if taken is not None and self._taken is None and self._session is not None:
            self._taken = taken
            self._lose(str(taken))

    def _member(self, key: str, kind: zenoh.SampleKind) -> None:
        assert self._bus is not None
        member = member_of_key(self.prefix, key)
        if member is None or member.process == self.process:
            return
        if kind == zenoh.SampleKind.PUT:
            if key in self._peers:
                return
            self._peers[key] = member
            signal_type = FLEET_PEER_UP
        else:
            if self._peers.pop(key, None) is None:
                return
            signal_type = FLEET_PEER_DOWN
        envelope = peer_envelope(self._bus.catalog, signal_type, member)
        if envelope is not None:
            self._bus.notice(envelope)
