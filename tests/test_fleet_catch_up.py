"""Catch-up on the Zenoh bus, in one test process with two sessions on 127.0.0.1 (no multicast)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from fleet_helpers import ZENOH_CONFIG, Collector, bus_project, free_port

from bbflow.runtime import model
from bbflow.runtime.bus import Bus
from bbflow.runtime.fleet import bus_settings, make_link
from bbflow.runtime.fleet.zenoh_link import CACHE_SAMPLES
from bbflow.runtime.signals import Envelope, SignalCatalog
from bbflow.runtime.types import INT, Record

pytestmark = pytest.mark.slow

CATALOG = SignalCatalog.of(model.Signal("task.assigned", Record((("job", INT),))))


def settings(folder: Path, catch_up: str, **endpoints: list[str]) -> Any:
    (folder / "zenoh.json5").write_text(ZENOH_CONFIG)
    project = bus_project(folder, kind="zenoh", prefix="test/catchup", config=folder / "zenoh.json5", catch_up=catch_up)
    return bus_settings(project, **endpoints)


@pytest.mark.parametrize(("catch_up", "expected"), [("5s", [1, 2]), ("0s", [])])
def test_a_late_process_catches_up_within_its_window_and_only_then(tmp_path: Path, catch_up: str,
                                                                    expected: list[int]) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"

    async def scenario() -> list[int]:
        sender = make_link(settings(tmp_path, "0s", listen=[endpoint]), process="a", robots=[], agents=["A"])
        bus_a = Bus(CATALOG)
        await sender.open(bus_a, [])
        try:
            for job in (1, 2):
                bus_a.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": job}), agent="A")
            events: list[dict[str, Any]] = []
            bus_b = Bus(CATALOG, observer=events.append)
            agent = Collector()
            bus_b.attach(agent)
            late = make_link(settings(tmp_path, catch_up, connect=[endpoint]), process="b", robots=[], agents=["B"])
            await late.open(bus_b, ["task.assigned"])
            try:
                for _ in range(100):  # bounded: up to 5 s
                    if len(agent.got) >= len(expected) and (expected or _ > 20):
                        break
                    await asyncio.sleep(0.05)
                bus_a.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": 3}), agent="A")
                for _ in range(100):
                    if any(e.data == {"job": 3} for e in agent.got):
                        break
                    await asyncio.sleep(0.05)
            finally:
                await late.close()
            assert not [e for e in events if e["event"] == "signal.dropped"], events
            return [e.data["job"] for e in agent.got]
        finally:
            await sender.close()

    assert asyncio.run(scenario()) == [*expected, 3]


def test_a_restarted_process_reports_what_the_window_held_beyond_the_cache_lost_with_a_count(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    published = CACHE_SAMPLES + 44

    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        sender = make_link(settings(tmp_path, "60s", listen=[endpoint]), process="a", robots=[], agents=["A"])
        bus_a = Bus(CATALOG)
        await sender.open(bus_a, [])
        try:
            first = make_link(settings(tmp_path, "60s", connect=[endpoint]), process="b", robots=[], agents=["B"])
            await first.open(Bus(CATALOG), ["task.assigned"])
            await first.close()  # the other process goes down; meanwhile more than the cache holds is published
            for job in range(published):
                bus_a.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": job}), agent="A")
            events: list[dict[str, Any]] = []
            bus_b = Bus(CATALOG, observer=events.append)
            agent = Collector()
            bus_b.attach(agent)
            late = make_link(settings(tmp_path, "60s", connect=[endpoint]), process="b", robots=[], agents=["B"])
            await late.open(bus_b, ["task.assigned"])  # and it restarts
            try:
                for _ in range(200):  # bounded: up to 10 s
                    if len(agent.got) >= CACHE_SAMPLES:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await late.close()
            return [e.data["job"] for e in agent.got], events
        finally:
            await sender.close()

    got, events = asyncio.run(scenario())
    assert got == list(range(published - CACHE_SAMPLES, published))  # what the cache held, in order
    lost = [e for e in events if e["event"] == "signal.lost"]
    assert [e["count"] for e in lost] == [published - CACHE_SAMPLES], lost
    assert "catch-up window" in lost[0]["reason"]
    assert len(got) + lost[0]["count"] == published  # nothing went silently


def test_nothing_is_reported_lost_before_a_window_that_held_no_more_than_the_cache(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"

    async def scenario() -> list[dict[str, Any]]:
        sender = make_link(settings(tmp_path, "60s", listen=[endpoint]), process="a", robots=[], agents=["A"])
        bus_a = Bus(CATALOG)
        await sender.open(bus_a, [])
        try:
            for job in range(3):
                bus_a.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": job}), agent="A")
            events: list[dict[str, Any]] = []
            bus_b = Bus(CATALOG, observer=events.append)
            agent = Collector()
            bus_b.attach(agent)
            late = make_link(settings(tmp_path, "60s", connect=[endpoint]), process="b", robots=[], agents=["B"])
            await late.open(bus_b, ["task.assigned"])
            try:
                for _ in range(200):
                    if len(agent.got) >= 3:
                        break
                    await asyncio.sleep(0.05)
                bus_a.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": 3}), agent="A")
                for _ in range(200):
                    if len(agent.got) >= 4:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await late.close()
            assert [e.data["job"] for e in agent.got] == [0, 1, 2, 3]
            return events
        finally:
            await sender.close()

    assert not [e for e in asyncio.run(scenario()) if e["event"] == "signal.lost"]


def test_events_older_than_the_window_are_not_asked_for_nor_reported_lost(tmp_path: Path) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"

    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        sender = make_link(settings(tmp_path, "1s", listen=[endpoint]), process="a", robots=[], agents=["A"])
        bus_a = Bus(CATALOG)
        await sender.open(bus_a, [])
        try:
            for job in range(CACHE_SAMPLES + 44):  # more than the cache holds, but before the window
                bus_a.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": job}), agent="A")
            await asyncio.sleep(1.5)  # the window is 1 s
            bus_a.emit(Envelope(type="task.assigned", source="/agent/A", data={"job": -1}), agent="A")
            events: list[dict[str, Any]] = []
            bus_b = Bus(CATALOG, observer=events.append)
            agent = Collector()
            bus_b.attach(agent)
            late = make_link(settings(tmp_path, "1s", connect=[endpoint]), process="b", robots=[], agents=["B"])
            await late.open(bus_b, ["task.assigned"])
            try:
                for _ in range(200):
                    if agent.got:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)  # and nothing more comes
            finally:
                await late.close()
            return [e.data["job"] for e in agent.got], events
        finally:
            await sender.close()

    got, events = asyncio.run(scenario())
    assert got == [-1]
    assert not [e for e in events if e["event"] == "signal.lost"]
