"""Membership on the Zenoh bus: processes whose host name and PID are the same still see each other.

In one test process, two sessions on 127.0.0.1 (no multicast).
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from fleet_helpers import ZENOH_CONFIG, bus_project, free_port, until

from bbflow.runtime import model
from bbflow.runtime.bus import Bus
from bbflow.runtime.fleet import bus_settings, make_link, process_name
from bbflow.runtime.signals import SignalCatalog
from bbflow.runtime.types import STR, ListOf, Record

pytestmark = pytest.mark.slow

PEER = Record((("process", STR), ("robots", ListOf(STR)), ("agents", ListOf(STR))))
CATALOG = SignalCatalog.of(model.Signal("fleet.peer.up", PEER), model.Signal("fleet.peer.down", PEER))


def test_processes_on_hosts_of_one_name_with_one_pid_see_each_other(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # two robots made from one image ("raspberrypi") that started bbflow as the same PID, or two containers each
    # running it as their PID 1 (`unshare -p -f bbflow run ...` showed it): both were "raspberrypi-1", each took
    # the other's membership token for its own, and a dispatcher never saw the arm beside it
    monkeypatch.setattr(socket, "gethostname", lambda: "raspberrypi")
    monkeypatch.setattr(os, "getpid", lambda: 1)
    names = process_name(), process_name()
    assert names[0] != names[1] and all(n.startswith("raspberrypi-1-") for n in names), names
    (tmp_path / "zenoh.json5").write_text(ZENOH_CONFIG)
    project = bus_project(tmp_path, kind="zenoh", prefix="test/members", config=tmp_path / "zenoh.json5")
    endpoint = f"tcp/127.0.0.1:{free_port()}"

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        seen: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        buses = [Bus(CATALOG, observer=events.append) for events in seen]
        dispatcher = make_link(bus_settings(project, listen=[endpoint]), process=names[0], robots=[],
                               agents=["Dispatcher"])
        arm = make_link(bus_settings(project, connect=[endpoint]), process=names[1], robots=["left"], agents=["Picker"])
        await dispatcher.open(buses[0], [])
        try:
            await arm.open(buses[1], [])
            try:
                await until(lambda: all(any(e["event"] == "signal.in" for e in events) for events in seen),
                            "fleet.peer.up at both")
            finally:
                await arm.close()
        finally:
            await dispatcher.close()
        return seen

    at_dispatcher, at_arm = asyncio.run(main())
    ups = [e["data"] for e in at_dispatcher if e["event"] == "signal.in" and e["type"] == "fleet.peer.up"]
    assert ups[0] == {"process": names[1], "robots": ["left"], "agents": ["Picker"]}, at_dispatcher
    assert [e["data"]["process"] for e in at_arm if e["event"] == "signal.in"][0] == names[0]


def test_a_robot_claimed_by_another_process_on_the_bus_is_refused_and_free_again_once_it_is_closed(
        tmp_path: Path) -> None:
    # two machines that both started `--robot left` (the owners lock sees one machine only): both armed `left`
    # and both took its tasks; now the second is refused before it opens any robot, naming the first
    from bbflow.runtime.fleet import AlreadyRun

    (tmp_path / "zenoh.json5").write_text(ZENOH_CONFIG)
    project = bus_project(tmp_path, kind="zenoh", prefix="test/claims", config=tmp_path / "zenoh.json5")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    first = make_link(bus_settings(project, listen=[endpoint]), process="arm1-101-a1b2c3", robots=["left"],
                      agents=["Picker"])

    def second(robots: list[str]) -> Any:
        return make_link(bus_settings(project, connect=[endpoint]), process="arm2-202-d4e5f6", robots=robots,
                         agents=["Picker"])

    async def main() -> str:
        await first.join()
        try:
            other = second(["right", "left"])
            with pytest.raises(AlreadyRun) as refused:
                await other.join()
            beside = second(["right"])  # another robot is no conflict
            await beside.join()
            assert beside.unreached() == []  # it reached the first
            await beside.close()
        finally:
            await first.close()
        again = second(["left"])  # the claim went with the first process
        await again.join()
        await again.close()
        return str(refused.value)

    message = asyncio.run(main())
    assert message.startswith("robot left is already run by process arm1-101-a1b2c3 (host arm1, pid 101) on the "
                              "bus 'test/claims'"), message


def test_a_coordinator_run_by_another_process_on_the_bus_is_refused_and_one_bound_to_a_robot_goes_by_its_robot(
        tmp_path: Path) -> None:
    # two machines that both ran the dispatcher each handled every request: each job was assigned twice
    from bbflow.runtime.fleet import AlreadyRun

    (tmp_path / "zenoh.json5").write_text(ZENOH_CONFIG)
    project = bus_project(tmp_path, kind="zenoh", prefix="test/claims", config=tmp_path / "zenoh.json5")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    first = make_link(bus_settings(project, listen=[endpoint]), process="hub1-7-a1b2c3", robots=["left"],
                      agents=["Dispatcher", "Picker"], coordinators=["Dispatcher"])

    def second(**names: Any) -> Any:
        return make_link(bus_settings(project, connect=[endpoint]), process="hub2-8-d4e5f6", **names)

    async def main() -> str:
        await first.join()
        try:
            with pytest.raises(AlreadyRun) as refused:
                await second(robots=[], agents=["Dispatcher"], coordinators=["Dispatcher"]).join()
            other = second(robots=["right"], agents=["Picker", "Watch"], coordinators=["Watch"])
            await other.join()  # Picker on another robot, and another coordinator
            await other.close()
        finally:
            await first.close()
        return str(refused.value)

    message = asyncio.run(main())
    assert message.startswith("agent Dispatcher is already run by process hub1-7-a1b2c3 (host hub1, pid 7) on the bus "
                              "'test/claims': two processes would each handle every signal it routes"), message
