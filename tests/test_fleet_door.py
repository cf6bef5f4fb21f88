"""The fleet bus without a network: keys, the door on the bus, the bus settings, the missing extra."""

import json
from pathlib import Path
from typing import Any

import pytest
from fleet_helpers import Collector, bus_project

from bbflow.project import BusConfig, Project
from bbflow.runtime import model
from bbflow.runtime.bus import Bus
from bbflow.runtime.fleet import BusDoor, BusSettingsError, MissingExtra, SeenIds, bus_settings, make_link
from bbflow.runtime.fleet.keys import (
    BusKeyError,
    check_prefix,
    key_signal,
    member_key,
    member_of_key,
    pattern_key,
    signal_key,
    subscriptions,
)
from bbflow.runtime.signals import Envelope, SignalCatalog
from bbflow.runtime.types import INT, STR, Record

CATALOG = SignalCatalog.of(
    model.Signal("task.assigned", Record((("job", INT),))),
    model.Signal("robot.error", Record((("message", STR),))),
    model.Signal("fleet.peer.down", Record((("process", STR),))),
)


def test_signal_types_and_route_patterns_map_onto_keys() -> None:
    assert signal_key("bbflow/cell", "robot.task.assigned") == "bbflow/cell/robot/task/assigned"
    assert key_signal("bbflow/cell", "bbflow/cell/robot/task/assigned") == "robot.task.assigned"
    assert key_signal("bbflow/cell", "bbflow/other/x") is None
    assert key_signal("bbflow/cell", "bbflow/cell/") is None
    assert pattern_key("p", "a.*.c") == "p/a/*/c"
    assert pattern_key("p", "a.**") == "p/a/**"
    assert pattern_key("p", "a.**.*") == "p/a/*/**"  # Zenoh's canonical order, same keys matched


def test_subscriptions_leave_out_what_stays_local() -> None:
    keys = subscriptions("p", ["task.assigned", "robot.error", "robot.safety.changed", "robot.event.**",
                               "fleet.peer.up", "task.assigned", "robot.task.*", "**"])
    assert keys == ["p/task/assigned", "p/robot/task/*", "p/**"]


def test_prefixes_and_membership_keys() -> None:
    assert check_prefix("bbflow/cell") == "bbflow/cell"
    for bad in ("", "a//b", "a/*", "/a", "a/", "@a", "a b"):
        with pytest.raises(BusKeyError):
            check_prefix(bad)
    key = member_key("p", "host-12", ["left", "right"], ["Picker"])
    assert key == "p/@fleet/host-12/left,right/Picker"
    assert member_of_key("p", key) == ("host-12", ("left", "right"), ("Picker",))
    assert member_of_key("p", member_key("p", "c-1", [], ["Boss"])) == ("c-1", (), ("Boss",))
    assert member_of_key("p", "p/@fleet/only-two/x") is None
    with pytest.raises(BusKeyError):
        member_key("p", "a/b", [], [])


def test_seen_ids_are_bounded() -> None:
    seen = SeenIds(3)
    assert [seen.add(i) for i in ("a", "b", "a", "c", "d")] == [True, True, False, True, True]
    assert len(seen) == 3 and "a" not in seen and "d" in seen  # the oldest was forgotten


class Link:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    def send(self, envelope: Envelope) -> bool:
        self.sent.append(envelope)
        return True


def door() -> tuple[BusDoor, Collector, list[dict[str, Any]], Link]:
    events: list[dict[str, Any]] = []
    link = Link()
    bus = Bus(CATALOG, observer=events.append, link=link)
    agent = Collector()
    bus.attach(agent)
    return BusDoor(bus, "p", memory=100), agent, events, link


def event(**fields: Any) -> bytes:
    return json.dumps({"specversion": "1.0", "id": "1", "source": "/agent/Boss", "type": "task.assigned",
                       "data": {"job": 7}, **fields}).encode()


def test_the_door_delivers_a_good_event_here_only_and_drops_its_duplicate() -> None:
    d, agent, events, link = door()
    d.arrive("p/task/assigned", event(subject="left", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"))
    d.arrive("p/task/assigned", event())
    assert [(e.type, e.data, e.subject, e.source, e.traceparent) for e in agent.got] == [
        ("task.assigned", {"job": 7}, "left", "/agent/Boss", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")]
    assert link.sent == []  # not published again
    dropped = [e for e in events if e["event"] == "signal.dropped"]
    assert [e["reason"] for e in dropped] == ["duplicate id 1"]


def test_an_event_sent_to_a_robot_another_process_runs_is_no_drop_here() -> None:
    """In a fleet every arm's process hears each task sent `to` any arm: the others' are not dropped here
    (every arm counted every other arm's tasks as drops); one for a robot of this process that no agent
    takes still is, and so is one sent from here."""
    d, agent, events, link = door()
    agent.robot_instance = "left"
    d.arrive("p/task/assigned", event(id="for-right", subject="right"))
    d.arrive("p/task/assigned", event(id="for-left", subject="left"))
    assert [e.id for e in agent.got] == ["for-left"]
    assert [e for e in events if e["event"] == "signal.dropped"] == []

    agent.routes = lambda signal_type: False  # type: ignore[method-assign]
    d.arrive("p/task/assigned", event(id="for-left-again", subject="left"))
    assert [e["reason"] for e in events if e["event"] == "signal.dropped"] == ["no agent routes it"]
    d.bus.link = None
    d.bus.publish(Envelope(type="task.assigned", source="/stdin", data={"job": 1}, subject="right"))
    assert [e["reason"] for e in events if e["event"] == "signal.dropped"] == ["no agent routes it"] * 2


@pytest.mark.parametrize(("key", "payload", "reason"), [
    ("p/task/assigned", b"\xff\xfe", "not UTF-8"),
    ("p/task/assigned", b"{1, 2}", "not JSON"),
    ("p/task/assigned", b"[1, 2]", "not a JSON object"),
    ("p/task/assigned", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("p/task/assigned", b" " * (1 << 20) + b"{}", "too large"),
    ("p/task/done", event(), "not the key of its type"),
    ("p/robot/error", event(type="robot.error", data={"message": "x"}), "only the robot's own driver"),
    ("p/fleet/peer/down", event(type="fleet.peer.down", data={"process": "x"}), "not taken from the bus"),
    ("p/task/assigned", event(id=3), "must be a string"),
    # without an id a repeat could not be told (the door gave each one a fresh id and took it again)
    ("p/task/assigned", b'{"type": "task.assigned", "data": {"job": 7}}', "no 'id'"),
    ("p/task/assigned", event(id=""), "no 'id'"),
    ("p/task/assigned", event(data={"job": "seven"}), "bad data"),
    ("p/task/assigned", b'{"type": "task.assigned", "id": "9", "data": {"job": NaN}}', "NaN"),
    ("p/task/assigned", event(specversion="0.3"), "unsupported specversion"),
    ("p/task/assigned", event(time="yesterday"), "attribute 'time' must be an RFC 3339 timestamp"),
])
def test_the_door_refuses_with_a_reason(key: str, payload: bytes, reason: str) -> None:
    d, agent, events, _ = door()
    d.arrive(key, payload)
    assert agent.got == []
    assert [e["event"] for e in events] == ["signal.dropped"]
    assert reason in events[0]["reason"]
    d.arrive("p/task/assigned", event(id="2"))  # and the next good one still passes
    assert len(agent.got) == 1


def test_a_refused_event_does_not_burn_its_id() -> None:
    d, agent, _, _ = door()
    d.arrive("p/task/assigned", event(data={"job": "x"}))
    d.arrive("p/task/assigned", event())
    assert len(agent.got) == 1


def test_signals_of_this_process_go_out_on_the_link_and_are_no_drop_here() -> None:
    events: list[dict[str, Any]] = []
    link = Link()
    bus = Bus(CATALOG, observer=events.append, link=link)
    bus.emit(Envelope(type="task.assigned", source="/agent/Boss", data={"job": 1}), agent="Boss")
    assert [e.type for e in link.sent] == ["task.assigned"]
    assert [e["event"] for e in events] == ["signal.emit"]


def project(tmp_path: Path, **bus: Any) -> Project:
    return bus_project(tmp_path, "my cell", **bus)


def test_bus_settings(tmp_path: Path) -> None:
    assert not bus_settings(project(tmp_path)).networked
    with pytest.raises(BusSettingsError, match="need a network bus"):
        bus_settings(project(tmp_path), listen=["tcp/127.0.0.1:7447"])
    zenoh = bus_settings(project(tmp_path, kind="zenoh", listen=("tcp/127.0.0.1:1",), catch_up="2s"),
                         connect=["tcp/127.0.0.1:2"])
    assert (zenoh.prefix, zenoh.listen, zenoh.connect, zenoh.catch_up) == (
        "bbflow/my_cell", ("tcp/127.0.0.1:1",), ("tcp/127.0.0.1:2",), 2.0)
    assert bus_settings(project(tmp_path, kind="zenoh", listen=("tcp/127.0.0.1:1",)),
                        listen=["tcp/127.0.0.1:3"]).listen == ("tcp/127.0.0.1:3",)
    for bad, message in (({"prefix": "a/*"}, "bus.prefix"), ({"catch_up": "soon"}, "bus.catch_up")):
        with pytest.raises(BusSettingsError, match=message):
            bus_settings(project(tmp_path, kind="zenoh", **bad))


def test_a_missing_extra_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "zenoh", None)  # import zenoh -> ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "bbflow.runtime.fleet.zenoh_link", raising=False)
    with pytest.raises(MissingExtra, match=r"^the zenoh bus needs the optional `bus` extra: pip install 'bbflow\[bus\]'$"):
        make_link(bus_settings(project(Path("."), kind="zenoh")), process="p", robots=[], agents=[])


def test_the_bus_table_in_bbflow_toml(tmp_path: Path) -> None:
    from bbflow.project import ProjectError, load_project

    (tmp_path / "zenoh.json5").write_text("{}")
    (tmp_path / "bbflow.toml").write_text('[bus]\nkind = "zenoh"\nprefix = "a/b"\nlisten = ["tcp/127.0.0.1:0"]\n'
                                          'config = "zenoh.json5"\ncatch_up = "2s"\n')
    bus = load_project(tmp_path).bus
    assert bus == BusConfig("zenoh", "a/b", None, ("tcp/127.0.0.1:0",), None, tmp_path.resolve() / "zenoh.json5", "2s")
    for table, message in (('kind = "mqtt"', "bus.kind"), ('catch_up = "soon"', "bus.catch_up"),
                           ('config = "nope.json5"', "bus.config: no file 'nope.json5'"), ('mood = "peer"', "bus.mood")):
        (tmp_path / "bbflow.toml").write_text(f"[bus]\n{table}\n")
        with pytest.raises(ProjectError, match=message):
            load_project(tmp_path)


def test_a_process_announces_itself_to_its_own_agents_on_the_local_bus(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from fleet_helpers import write_fleet_project

    from bbflow.cli import main

    project = write_fleet_project(tmp_path / "cell", bus=False)
    events = tmp_path / "events.jsonl"
    job = {"type": "job.requested", "data": {"job": 1, "to": {"x": 0.1, "y": 0.0, "z": 0.2}}}
    result = CliRunner().invoke(main, ["run", str(project), "--agent", "Boss", "--agent", "Picker", "--until-idle",
                                       "--events", str(events)], input=json.dumps(job) + "\n")
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in events.read_text().splitlines()]
    ups = [e for e in got if e["event"] == "signal.in" and e["type"] == "fleet.peer.up"]
    assert len(ups) == 1 and ups[0]["data"]["robots"] == ["left"] and ups[0]["data"]["agents"] == ["Boss", "Picker"]
    assert any(e["event"] == "signal.routed" and e["type"] == "fleet.peer.up" for e in got)
    assert [e["data"] for e in got if e["event"] == "signal.emit" and e["type"] == "job.done"] == [{"job": 1}]


def test_a_process_subscribes_to_what_its_reactors_wait_for(tmp_path: Path) -> None:
    from bbflow.build import compile_project  # the compiler, for the test only
    from bbflow.runtime.fleet import waited_signals

    (tmp_path / "cell.flow").write_text(
        "signal gate.open\nsignal gate.closed\nrobot Arm { command home() -> bool }\n"
        "reactor Go() on Arm {\n    step open = wait_signal(gate.open) timeout 5s\n"
        "    step shut = wait_signal(gate.closed) timeout 5s after open\n}\n")
    diagnostics, program = compile_project([tmp_path])
    assert program is not None, diagnostics
    assert waited_signals(program) == ["gate.open", "gate.closed"]


def test_the_ids_remembered_take_little_memory_however_long_they_are() -> None:
    # an id may be as long as an event (1 MiB): the door kept each whole, and its 100,000 could take 100 GB
    import tracemalloc

    d, agent, events, _ = door()
    long_ids = [f"{n}-" + "x" * 200_000 for n in range(20)]
    tracemalloc.start()
    try:
        for long_id in long_ids:
            d.arrive("p/task/assigned", event(id=long_id))
        agent.got.clear()
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 200_000, kept  # the ids themselves are 4 MB
    d.arrive("p/task/assigned", event(id=long_ids[3]))  # a repeat is still known
    [dropped] = [e for e in events if e["event"] == "signal.dropped"]
    assert dropped["reason"] == f"duplicate id 3-{'x' * 95}...", dropped


def test_a_process_that_reaches_no_other_at_its_connect_endpoints_says_so(tmp_path: Path) -> None:
    # a typo in --bus-connect left a process alone on the bus for good, without a word: it never got a job,
    # and it checked its robots' claims against no other process
    pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")
    from click.testing import CliRunner
    from fleet_helpers import free_port, write_fleet_project

    from bbflow.cli import main

    project = write_fleet_project(tmp_path / "cell")
    endpoint = f"tcp/127.0.0.1:{free_port()}"  # nothing listens there
    result = CliRunner().invoke(main, ["run", str(project), "--agent", "Boss", "--until-idle", "--bus-connect", endpoint],
                                input="")
    assert result.exit_code == 0, result.output
    assert (f"bus: no other process reached at {endpoint} (Zenoh keeps trying): until one is, this process runs "
            "alone, and its claims were checked against no other") in result.output


def test_a_signal_sent_to_a_robot_whose_agents_are_not_here_says_so_when_dropped() -> None:
    # a signal from standard input sent `to` a robot instance (a typo: "lefty") that an arm's agent routes was
    # dropped as "no agent routes it", which sent the engineer looking at the routes
    d, agent, events, _ = door()
    agent.robot_instance = "left"
    d.bus.link = None
    d.bus.receive(Envelope(type="task.assigned", source="/stdin", data={"job": 1}, subject="lefty"))
    assert [e["reason"] for e in events if e["event"] == "signal.dropped"] == [
        "sent to robot 'lefty': no agent bound to it routes it here, nor does a coordinator"]
    assert agent.got == []


@pytest.mark.parametrize(("given", "message"), [
    ({"connect": ["tcp/127.0.0.1"]}, "--bus-connect tcp/127.0.0.1: no port: give HOST:PORT, e.g. tcp/127.0.0.1:7447"),
    ({"connect": ["tcp/[::1]"]}, "--bus-connect tcp/[::1]: no port: give HOST:PORT, e.g. tcp/127.0.0.1:7447"),
    ({"connect": ["udp/10.0.0.5:7447x"]}, "--bus-connect udp/10.0.0.5:7447x: no port: give HOST:PORT, e.g. "
                                          "udp/127.0.0.1:7447"),
    ({"connect": ["tcp/127.0.0.1:0"]}, "--bus-connect tcp/127.0.0.1:0: port 0 is for listening (on a free port): "
                                       "connect to a port another process listens on"),
    ({"listen": ["tcp/127.0.0.1:99999"]}, "--bus-listen tcp/127.0.0.1:99999: port 99999 is not one (1 to 65535)"),
    ({"toml": ("tcp/localhost",)}, "bus.connect tcp/localhost: no port"),
])
def test_an_endpoint_without_a_port_is_refused_at_the_start(tmp_path: Path, given: dict[str, Any],
                                                              message: str) -> None:
    # `--bus-connect tcp/127.0.0.1` (the port forgotten) was taken: Zenoh tried it for ever, and the robot's
    # process ran alone on the bus until someone read its standard error
    toml = given.pop("toml", None)
    cell = project(tmp_path, kind="zenoh", connect=toml)
    with pytest.raises(BusSettingsError) as refused:
        bus_settings(cell, **given)
    assert message in str(refused.value)


def test_endpoints_with_a_port_are_taken() -> None:
    cell = project(Path("."), kind="zenoh", listen=("tcp/0.0.0.0:0", "tcp/[::]:7447"))
    good = ["tcp/[::1]:7447", "udp/10.0.0.5:7447?iface=eth0", "tcp/arm-1.local:7447#rel=1", "unixsock-stream//tmp/bus"]
    assert bus_settings(cell, connect=good).connect == tuple(good)


def test_runs_recover_refuses_a_bus_option_without_a_port_before_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from fleet_helpers import write_fleet_project

    from bbflow.cli import main

    root = write_fleet_project(tmp_path / "cell")
    result = CliRunner().invoke(main, ["runs", "recover", "0123", str(root), "--bus-connect", "tcp/127.0.0.1"])
    assert result.exit_code == 2 and "--bus-connect tcp/127.0.0.1: no port" in result.output, result.output
