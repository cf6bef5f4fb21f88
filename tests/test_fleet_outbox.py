"""Sending on the Zenoh bus: a put that blocks (a peer that stopped reading) does not stop the process.

In one test process, two sessions on 127.0.0.1 (no multicast): ``a`` publishes, ``b`` listens.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from fleet_helpers import ZENOH_CONFIG, Collector, bus_project, free_port, until

from bbflow.runtime import model
from bbflow.runtime.bus import Bus
from bbflow.runtime.door import MAX_LINE_BYTES
from bbflow.runtime.fleet import bus_settings, make_link
from bbflow.runtime.signals import Envelope, SignalCatalog
from bbflow.runtime.types import INT, STR, ListOf, Record

pytestmark = pytest.mark.slow

#: a guard against a hung test, not a measurement
PATIENCE = 10.0
PEER = Record((("process", STR), ("robots", ListOf(STR)), ("agents", ListOf(STR))))
CATALOG = SignalCatalog.of(model.Signal("task.assigned", Record((("job", INT),))),
                           model.Signal("note.sent", Record((("text", STR),))),
                           model.Signal("fleet.peer.up", PEER), model.Signal("fleet.peer.down", PEER))


@asynccontextmanager
async def two(folder: Path) -> AsyncIterator[tuple[Any, Bus, Collector, list[dict[str, Any]]]]:
    """``a``'s link and bus, and what ``b``'s agent gets and its bus's events, once each sees the other."""
    (folder / "zenoh.json5").write_text(ZENOH_CONFIG)
    project = bus_project(folder, kind="zenoh", prefix="test/outbox", config=folder / "zenoh.json5")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    a_events: list[dict[str, Any]] = []
    a_bus, b_bus = Bus(CATALOG, observer=a_events.append), Bus(CATALOG, observer=(b_events := []).append)
    agent = Collector()
    b_bus.attach(agent)
    a = make_link(bus_settings(project, listen=[endpoint]), process="a", robots=[], agents=["A"])
    b = make_link(bus_settings(project, connect=[endpoint]), process="b", robots=[], agents=["B"])
    await a.open(a_bus, [])
    try:
        await b.open(b_bus, ["task.assigned", "note.sent"])
        try:
            await until(lambda: any(e["event"] == "signal.in" and e["type"] == "fleet.peer.up" for e in a_events),
                        "fleet.peer.up of b at a")
            yield a, a_bus, agent, b_events
        finally:
            await b.close()
    finally:
        await a.close()


def assign(bus: Bus, job: int) -> None:
    bus.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": job}), agent="A")


def jobs(agent: Collector) -> list[int]:
    return [e.data["job"] for e in agent.got if e.type == "task.assigned"]


def test_a_put_that_blocks_does_not_stop_the_event_loop(tmp_path: Path) -> None:
    # Zenoh's put blocks while a peer does not read (a process stopped with SIGSTOP), for up to 5 s before Zenoh
    # drops the link to it: made on the event loop, it froze every agent, robot and timer of the sender
    gate = threading.Event()
    released: list[bool] = []

    async def main() -> list[int]:
        async with two(tmp_path) as (a, a_bus, agent, _):
            put = a._put

            def blocked(*args: Any) -> None:  # the network does not take the event until the gate opens
                released.append(gate.wait(PATIENCE))
                put(*args)

            a._put = blocked
            for job in (1, 2, 3):
                assign(a_bus, job)
            gate.set()  # the loop went on: the test gets here while the first put waits
            await until(lambda: len(jobs(agent)) == 3, "the three jobs at b", PATIENCE)
            assign(a_bus, 4)  # sent as the process stops: close puts it before the session goes
            await a.close()
            await until(lambda: len(jobs(agent)) == 4, "job 4 at b", PATIENCE)
            return jobs(agent)

    got = asyncio.run(main())
    assert released == [True] * 4 and got == [1, 2, 3, 4]


def test_a_put_that_fails_after_the_session_closed_is_reported_dropped(tmp_path: Path) -> None:
    async def main() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with two(tmp_path) as (a, a_bus, _, _):
            a_bus.observer = events.append
            a._session.close()  # under the process, before it has looked
            assign(a_bus, 1)
            await until(lambda: any(e["event"] == "signal.dropped" for e in events), "the drop", PATIENCE)
        return events

    [dropped] = [e for e in asyncio.run(main()) if e["event"] == "signal.dropped"]
    assert dropped["type"] == "task.assigned"
    assert dropped["reason"].startswith("not sent to the other processes: the Zenoh session failed: "), dropped


def test_the_outbox_puts_in_order_holds_no_more_than_its_bounds_and_never_waits_on_held_puts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # past 1,000 events waiting behind a peer that read nothing, sending waited for room: on the event loop,
    # every agent, robot and timer of the process stopped with it. Now what finds no room waits ROOM_WAIT at
    # most, once: then, until a put returns, it is refused at once.
    from bbflow.runtime.fleet import zenoh_link

    monkeypatch.setattr(zenoh_link, "ROOM_WAIT", 0.01)
    monkeypatch.setattr(zenoh_link, "OUTBOX", 3)
    monkeypatch.setattr(zenoh_link, "OUTBOX_BYTES", 10)
    gate, entered, put = threading.Event(), threading.Event(), []

    def publish(signal_type: str, payload: bytes) -> None:
        entered.set()
        gate.wait(PATIENCE)
        put.append(payload)

    loop = asyncio.new_event_loop()
    try:
        outbox = zenoh_link._Outbox(publish, loop, lambda *_: None)
        assert outbox.put("t", b"0")
        assert entered.wait(PATIENCE)  # the first is in Zenoh's put, which does not return: three wait behind it
        by_count = [outbox.put("t", b"%d" % n) for n in range(1, 20)]
        gate.set()
        assert outbox.stop(PATIENCE) == []
        assert put == [b"0", b"1", b"2", b"3"] and by_count == [True] * 3 + [False] * 16
        gate.clear()
        entered.clear()
        put.clear()
        outbox = zenoh_link._Outbox(publish, loop, lambda *_: None)
        assert outbox.put("t", b"held")
        assert entered.wait(PATIENCE)
        by_bytes = [outbox.put("t", payload) for payload in (b"aaaa", b"bbbb", b"cccc", b"cc")]
        gate.set()
        assert outbox.stop(PATIENCE) == []
    finally:
        loop.close()
    assert by_bytes == [True, True, False, True] and put == [b"held", b"aaaa", b"bbbb", b"cc"]


def test_a_burst_faster_than_the_puts_waits_for_room_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # with sending that never waited, a burst of 20,000 events to a healthy peer lost 2,248 of them (reported
    # dropped), the outbox full only because the puts are slower than the sender
    from bbflow.runtime.fleet import zenoh_link

    monkeypatch.setattr(zenoh_link, "OUTBOX", 3)
    put: list[bytes] = []

    def publish(signal_type: str, payload: bytes) -> None:
        time.sleep(0.001)  # a put that takes its time, and returns
        put.append(payload)

    loop = asyncio.new_event_loop()
    try:
        outbox = zenoh_link._Outbox(publish, loop, lambda *_: None)
        sent = [outbox.put("t", b"%d" % n) for n in range(30)]
        assert outbox.stop(PATIENCE) == []
    finally:
        loop.close()
    assert sent == [True] * 30 and put == [b"%d" % n for n in range(30)] and not outbox.stalled


def test_an_event_too_large_for_the_bus_is_not_sent_and_says_so(tmp_path: Path) -> None:
    # a line of standard input just under 1 MiB is taken; as an event (its id, time and source added) it was
    # published over 1 MiB, every other process's door refused it, and the sender's log showed nothing wrong
    async def main() -> tuple[list[dict[str, Any]], int, list[str]]:
        events: list[dict[str, Any]] = []
        async with two(tmp_path) as (a, a_bus, agent, _):
            a_bus.observer = events.append
            a_bus.emit(Envelope(type="note.sent", source="/agent/A", data={"text": "x" * (MAX_LINE_BYTES - 100)}),
                       agent="A")
            assign(a_bus, 1)  # after it, in order: once this is there, the note would have been
            await until(lambda: jobs(agent) == [1], "job 1 at b", PATIENCE)
            return events, a.sent, [e.type for e in agent.got]

    events, sent, got = asyncio.run(main())
    [dropped] = [e for e in events if e["event"] == "signal.dropped"]
    assert dropped["type"] == "note.sent" and re.fullmatch(
        r"not sent to the other processes: 10486\d\d bytes, more than the bus takes \(1048576 bytes\)", dropped["reason"])
    assert sent == 1 and "note.sent" not in got


def test_a_put_that_raises_is_reported_and_the_outbox_goes_on() -> None:
    # only a ZError was caught: anything else ended the thread, and every event after it waited for ever
    from bbflow.runtime.fleet import zenoh_link

    put: list[bytes] = []
    failed: list[tuple[str, str]] = []

    def publish(signal_type: str, payload: bytes) -> None:
        if payload == b"bad":
            raise RuntimeError("the publisher broke")
        put.append(payload)

    async def main() -> None:
        outbox = zenoh_link._Outbox(publish, asyncio.get_running_loop(),
                                    lambda signal_type, exc: failed.append((signal_type, str(exc))))
        for payload in (b"1", b"bad", b"2"):
            outbox.put("t", payload)
        await asyncio.get_running_loop().run_in_executor(None, outbox.stop, PATIENCE)
        await asyncio.sleep(0)  # the failure, handed to the loop

    asyncio.run(main())
    assert put == [b"1", b"2"] and failed == [("t", "the publisher broke")]


def test_the_queue_before_the_door_is_bounded_and_reports_what_it_could_not_hold(tmp_path: Path) -> None:
    # while the loop was blocked (a driver's synchronous call) or slower than a peer, every event Zenoh
    # received waited for the door: 30,000 events of 10 KB queued 301 MB, and more without end
    from bbflow.runtime.fleet import BusDoor, zenoh_link

    (tmp_path / "zenoh.json5").write_text(ZENOH_CONFIG)
    project = bus_project(tmp_path, kind="zenoh", prefix="p", config=tmp_path / "zenoh.json5")
    events: list[dict[str, Any]] = []
    link = make_link(bus_settings(project), process="b", robots=[], agents=["B"])
    link._bus = bus = Bus(SignalCatalog.of(model.Signal("task.assigned", Record((("job", INT),)))),
                          observer=events.append)
    bus.attach(Collector())
    link._door = BusDoor(bus, "p")
    batches: list[list[tuple[str, Any]]] = []

    def drain(batch: list[tuple[str, Any]]) -> None:
        batches.append(batch)
        link._drain(batch)

    loop = asyncio.new_event_loop()
    try:
        inbox = zenoh_link._Inbox(loop, drain)  # the loop does not run yet: as if it were blocked
        for n in range(zenoh_link.INBOX + 7):
            inbox.put_event("p/task/*", "p/task/assigned", b'{"type": "task.assigned", "id": "%d", "data": {"job": 1}}' % n)
        inbox.put("member", ("p/@fleet/a/-/A", None))  # membership is never what gives way
        loop.run_until_complete(asyncio.sleep(0))
        # by bytes too: two events of half the bound, then one more byte than fits
        half = zenoh_link.INBOX_BYTES // 2
        for payload in (b" " * half, b" " * half, b"x"):
            inbox.put_event("p/task/*", "p/task/assigned", payload)
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    kinds = [[kind for kind, _ in batch] for batch in batches]
    assert kinds[0] == ["sample"] * zenoh_link.INBOX + ["member", "overflow"]
    assert kinds[1] == ["sample", "sample", "overflow"]
    lost = [(e["type"], e["count"], e["reason"]) for e in events if e["event"] == "signal.lost"]
    assert lost == [("task.*", 7, "the queue before the door was full (10,000 events or 64 MiB): this process took "
                                  "events in slower than they came"),
                    ("task.*", 1, "the queue before the door was full (10,000 events or 64 MiB): this process took "
                                  "events in slower than they came")]


def test_stopping_beside_a_peer_that_stopped_reading_waits_a_bounded_time_and_says_what_was_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a peer stopped with SIGSTOP held a put for 5 s and then Zenoh's close for 10 s: stopping took 15 s.
    # Here a put and a close that do not return until the test lets them stand for those.
    from bbflow.runtime.fleet import zenoh_link

    monkeypatch.setattr(zenoh_link, "STOP_WAIT", 0.05)
    monkeypatch.setattr(zenoh_link, "CLOSE_WAIT", 0.05)
    held = threading.Event()

    class Stalled:
        """The session, whose close waits for the test."""

        def __init__(self, session: Any) -> None:
            self.session = session

        def is_closed(self) -> bool:
            return bool(self.session.is_closed())

        def close(self) -> None:
            held.wait()
            self.session.close()

    async def main() -> list[dict[str, Any]]:
        async with two(tmp_path) as (a, a_bus, _, _):
            events: list[dict[str, Any]] = []
            a_bus.observer = events.append
            await asyncio.get_running_loop().run_in_executor(None, a._outbox.stop, 1.0)
            a._outbox = zenoh_link._Outbox(lambda signal_type, payload: held.wait(), asyncio.get_running_loop(),
                                           a._failed)
            a._session = Stalled(a._session)
            for job in (1, 2, 3):
                assign(a_bus, job)
            try:
                await asyncio.wait_for(a.close(), PATIENCE)  # it waited for both for ever
            finally:
                held.set()
            return [e for e in events if e["event"] == "signal.dropped"]

    dropped = asyncio.run(main())
    # the first was in a put when the process stopped; the two behind it were not sent, and say so
    assert [(e["type"], e["reason"]) for e in dropped] == [
        ("task.assigned", "not sent to the other processes: the process stopped, and a peer had read nothing for "
                          "0.05s")] * 2


def test_a_process_that_leaves_a_put_in_zenoh_behind_ends_without_the_interpreters_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `bbflow run --until-idle` beside a peer stopped with SIGSTOP stopped cleanly, leaving its outbox's thread in a
    # put; when Zenoh let the put go while the interpreter was ending, the thread was ended in Zenoh's code and the
    # process aborted: exit status 134 and "FATAL: exception not rethrown", after a clean stop
    import os

    from bbflow import cli
    from bbflow.runtime import fleet
    from bbflow.runtime.fleet import zenoh_link

    gate, exits = threading.Event(), []
    monkeypatch.setattr(os, "_exit", exits.append)
    loop = asyncio.new_event_loop()
    try:
        outbox = zenoh_link._Outbox(lambda *_: gate.wait(PATIENCE), loop, lambda *_: None)
        outbox.put("t", b"1")
        assert outbox.stop(0.05) == []  # the put, held by the peer: the thread is left behind
        assert outbox._thread.is_alive() and fleet.threads_in_zenoh()
        with pytest.raises(SystemExit):
            cli._exit(130)
        assert exits == [130]  # at once, not through the interpreter's end
        monkeypatch.setattr(fleet, "threads_in_zenoh", lambda: False)  # none left (other tests' may be)
        with pytest.raises(SystemExit) as ended:
            cli._exit(0)
        assert ended.value.code == 0 and exits == [130]
    finally:
        gate.set()
        outbox._thread.join(PATIENCE)  # no thread of the bus left to a later test's `bbflow run`
        loop.close()
