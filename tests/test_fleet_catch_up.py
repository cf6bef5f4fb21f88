"""Catch-up and subscriptions on the Zenoh bus, in one test process with two sessions on 127.0.0.1 (no multicast)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest

pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from fleet_helpers import ZENOH_CONFIG, Collector, bus_project, free_port, until

from bbflow.runtime import model
from bbflow.runtime.bus import Bus
from bbflow.runtime.fleet import BusDoor, bus_settings, make_link
from bbflow.runtime.fleet.zenoh_link import CACHE_SAMPLES
from bbflow.runtime.signals import Envelope, SignalCatalog
from bbflow.runtime.types import INT, STR, ListOf, Record

pytestmark = pytest.mark.slow

#: a job published after the ones that must not arrive, to know when they would have
SENTINEL = 10_000
TASK = model.Signal("task.assigned", Record((("job", INT),)))
CATALOG = SignalCatalog.of(TASK)
PEER = Record((("process", STR), ("robots", ListOf(STR)), ("agents", ListOf(STR))))
#: the publisher's: it also hears of the others coming and going, to know when a subscriber has reached it
PUBLISHER = SignalCatalog.of(TASK, model.Signal("fleet.peer.up", PEER), model.Signal("fleet.peer.down", PEER))


@attrs.define
class Publisher:
    """Process ``a``: the bus its agent ``A`` publishes on, and that bus's events."""

    endpoint: str
    bus: Bus
    events: list[dict[str, Any]]

    def seen(self, signal_type: str) -> int:
        """How many ``fleet.peer.up`` (or ``.down``) the publisher has had."""
        return sum(e["event"] == "signal.in" and e["type"] == signal_type for e in self.events)


def settings(folder: Path, catch_up: str, **endpoints: list[str]) -> Any:
    (folder / "zenoh.json5").write_text(ZENOH_CONFIG)
    project = bus_project(folder, kind="zenoh", prefix="test/catchup", config=folder / "zenoh.json5", catch_up=catch_up)
    return bus_settings(project, **endpoints)


@asynccontextmanager
async def publisher(folder: Path, catch_up: str) -> AsyncIterator[Publisher]:
    """Process ``a``, listening on a free port of 127.0.0.1."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    link = make_link(settings(folder, catch_up, listen=[endpoint]), process="a", robots=[], agents=["A"])
    events: list[dict[str, Any]] = []
    bus = Bus(PUBLISHER, observer=events.append)
    await link.open(bus, [])
    try:
        yield Publisher(endpoint, bus, events)
    finally:
        await link.close()


@asynccontextmanager
async def subscriber(folder: Path, catch_up: str, a: Publisher, patterns: tuple[str, ...] = ("task.assigned",),
                     ) -> AsyncIterator[tuple[Collector, list[dict[str, Any]]]]:
    """Process ``b``, connected to ``a`` and subscribed to ``patterns``: what its agent gets, and the
    events of its bus. Given once ``a`` has seen ``b`` come up: a process declares its subscriptions
    before it announces itself, so from then on what ``a`` publishes reaches ``b``."""
    events: list[dict[str, Any]] = []
    bus = Bus(CATALOG, observer=events.append)
    agent = Collector()
    bus.attach(agent)
    link = make_link(settings(folder, catch_up, connect=[a.endpoint]), process="b", robots=[], agents=["B"])
    ups = a.seen("fleet.peer.up")
    await link.open(bus, patterns)
    try:
        await until(lambda: a.seen("fleet.peer.up") > ups, "fleet.peer.up of b at a")
        yield agent, events
    finally:
        await link.close()


def assign(bus: Bus, job: int) -> None:
    bus.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": job}), agent="A")


def jobs(agent: Collector) -> list[int]:
    return [e.data["job"] for e in agent.got]


def lost(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "signal.lost"]


@pytest.mark.parametrize(("catch_up", "expected"), [("5s", [1, 2]), ("0s", [])])
def test_a_late_process_catches_up_within_its_window_and_only_then(tmp_path: Path, catch_up: str,
                                                                    expected: list[int]) -> None:
    async def scenario() -> list[int]:
        async with publisher(tmp_path, "0s") as a:
            for job in (1, 2):
                assign(a.bus, job)
            async with subscriber(tmp_path, catch_up, a) as (agent, events):
                await until(lambda: len(agent.got) >= len(expected), f"catch-up of {expected}")
                # 3 comes after whatever a catch-up gives (a subscriber gets a publisher's events in order)
                assign(a.bus, 3)
                await until(lambda: 3 in jobs(agent), "job 3")
            assert not [e for e in events if e["event"] == "signal.dropped"], events
            return jobs(agent)

    assert asyncio.run(scenario()) == [*expected, 3]


def test_a_restarted_process_reports_what_the_window_held_beyond_the_cache_lost_with_a_count(tmp_path: Path) -> None:
    published = CACHE_SAMPLES + 44

    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        async with publisher(tmp_path, "60s") as a:
            async with subscriber(tmp_path, "60s", a):
                pass
            # the other process goes down; meanwhile more than the cache holds is published
            await until(lambda: a.seen("fleet.peer.down") == 1, "fleet.peer.down of b at a")
            for job in range(published):
                assign(a.bus, job)
            async with subscriber(tmp_path, "60s", a) as (agent, events):  # and it restarts
                await until(lambda: len(agent.got) >= CACHE_SAMPLES, "catch-up of the cache")
            return jobs(agent), events

    got, events = asyncio.run(scenario())
    assert got == list(range(published - CACHE_SAMPLES, published))  # what the cache held, in order
    reported = lost(events)
    assert [(e["type"], e["count"]) for e in reported] == [("task.assigned", published - CACHE_SAMPLES)], reported
    assert "catch-up window" in reported[0]["reason"]
    assert len(got) + reported[0]["count"] == published  # nothing went silently


def test_nothing_is_reported_lost_before_a_window_that_held_no_more_than_the_cache(tmp_path: Path) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with publisher(tmp_path, "60s") as a:
            for job in range(3):
                assign(a.bus, job)
            async with subscriber(tmp_path, "60s", a) as (agent, events):
                await until(lambda: len(agent.got) >= 3, "catch-up of jobs 0-2")
                assign(a.bus, 3)
                await until(lambda: len(agent.got) >= 4, "job 3")
            assert jobs(agent) == [0, 1, 2, 3]
            return events

    assert not lost(asyncio.run(scenario()))


def test_events_older_than_the_window_are_not_asked_for_nor_reported_lost(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        async with publisher(tmp_path, "1s") as a:
            for job in range(CACHE_SAMPLES + 44):  # more than the cache holds, but before the window
                assign(a.bus, job)
            await asyncio.sleep(1.5)  # the window is 1 s
            assign(a.bus, -1)
            async with subscriber(tmp_path, "1s", a) as (agent, events):
                await until(lambda: bool(agent.got), "catch-up of job -1")
                # a subscriber gets a publisher's events in order: once a job published now has come,
                # everything the catch-up was going to give has come before it
                assign(a.bus, SENTINEL)
                await until(lambda: SENTINEL in jobs(agent), "the sentinel job")
            return jobs(agent), events

    got, events = asyncio.run(scenario())
    assert got == [-1, SENTINEL]
    assert not lost(events)


@pytest.mark.parametrize("catch_up", ["0s", "10s"])
def test_routes_that_overlap_take_each_event_once_without_a_duplicate_dropped(tmp_path: Path, catch_up: str) -> None:
    """``task.assigned`` beside ``task.**`` (one includes the other), and ``*.assigned`` beside ``task.*`` (they
    overlap): Zenoh gives a sample to every subscription it matches, and each copy was a duplicate
    ``signal.dropped`` at the door, one per event."""
    patterns = ("task.assigned", "task.**", "*.assigned", "task.*")

    async def main() -> None:
        async with publisher(tmp_path, catch_up) as a, subscriber(tmp_path, catch_up, a, patterns) as (agent, events):
            for job in (1, 2, 3, SENTINEL):
                assign(a.bus, job)
            await until(lambda: SENTINEL in jobs(agent), "the sentinel")  # the copies of those before it came first
            assert jobs(agent) == [1, 2, 3, SENTINEL]
            assert [e for e in events if e["event"] == "signal.dropped"] == []

    asyncio.run(main())


def test_a_gap_seen_on_a_subscription_is_reported_lost_with_its_pattern(tmp_path: Path) -> None:
    # signal.lost said how many and from which publisher, not what: the subscription (a route's pattern) now says
    events: list[dict[str, Any]] = []
    link = make_link(settings(tmp_path, "0s"), process="b", robots=[], agents=["B"])
    link._bus = bus = Bus(CATALOG, observer=events.append)
    link._door = BusDoor(bus, link.prefix)
    link._drain([("miss", ("publisher 9", 3, "test/catchup/task/**"))])
    [reported] = lost(events)
    assert (reported["type"], reported["count"], reported["source"]) == ("task.**", 3, "publisher 9")


def test_a_gap_names_the_publisher_as_its_bbflow_process_where_it_is_known(tmp_path: Path) -> None:
    # signal.lost named the publisher by Zenoh's id ("EntityGlobalId { zid: 1e43ae00..., eid: 6 }"), which
    # nothing else an operator sees mentions: now by its process, with that process's robots
    from bbflow.runtime.fleet.keys import Member, member_key
    from bbflow.runtime.fleet.zenoh_link import session_tag

    arm = "arm1-4711-a1b2c3"
    events: list[dict[str, Any]] = []

    async def main() -> str:
        link = make_link(settings(tmp_path, "0s"), process=arm, robots=[], agents=["Picker"])
        await link.join()
        try:
            return str(link._session.zid())  # the Zenoh id the others see its events come from
        finally:
            await link.close()

    zid = asyncio.run(main())
    assert zid.startswith(session_tag(arm) or "?"), zid
    link = make_link(settings(tmp_path, "0s"), process="b", robots=[], agents=["B"])
    link._bus = bus = Bus(CATALOG, observer=events.append)
    link._door = BusDoor(bus, link.prefix)
    link._peers[member_key(link.prefix, arm, ["left"], ["Picker"])] = Member(arm, ("left",), ("Picker",))
    link._drain([("miss", (zid, 3, "test/catchup/task/assigned")),
                 ("miss", ("1e43ae00eb81141e259f4d5ddac1827f", 2, "test/catchup/task/assigned"))])
    named, unknown = lost(events)
    assert (named["source"], named["robots"], named["agents"], named["count"]) == (arm, ["left"], ["Picker"], 3)
    assert unknown["source"] == "1e43ae00eb81141e259f4d5ddac1827f" and "robots" not in unknown


def test_a_zenoh_delete_is_reported_as_a_delete_not_as_an_event_that_is_not_json(tmp_path: Path) -> None:
    import zenoh

    async def main() -> list[dict[str, Any]]:
        async with publisher(tmp_path, "0s") as a, subscriber(tmp_path, "0s", a) as (agent, events):
            config = zenoh.Config.from_json5(ZENOH_CONFIG)
            config.insert_json5("connect/endpoints", json.dumps([a.endpoint]))
            with zenoh.open(config) as stranger:
                deleter = stranger.declare_publisher("test/catchup/task/assigned")
                await until(lambda: deleter.matching_status.matching, "b's subscription known to the stranger")
                deleter.delete()
                await until(lambda: any(e["event"] == "signal.dropped" for e in events), "the delete reported")
            assign(a.bus, SENTINEL)
            await until(lambda: SENTINEL in jobs(agent), "the sentinel")  # and the next event passes
            return [e for e in events if e["event"] == "signal.dropped"]

    [dropped] = asyncio.run(main())
    assert dropped["type"] == "task.assigned"
    assert dropped["reason"] == ("a Zenoh delete on key 'test/catchup/task/assigned', not an event (bbflow "
                                 "publishes events only)"), dropped
