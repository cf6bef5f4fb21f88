"""Signals: UUIDv7 ids, the CloudEvents envelope, and validation at the door."""

import time
import uuid

import pytest

from bbflow.runtime import model
from bbflow.runtime.signals import (
    Envelope,
    SignalCatalog,
    SignalRejected,
    is_robot_bound,
    parse_signal,
    robot_of_source,
)
from bbflow.runtime.ids import uuid7
from bbflow.runtime.types import FLOAT, STR, Record

POSE = Record((("x", FLOAT), ("y", FLOAT), ("z", FLOAT)))
CATALOG = SignalCatalog.of(
    model.Signal("pick.requested", Record((("pick", POSE), ("place", POSE)))),
    model.Signal("pick.failed", Record((("reason", STR),))),
    model.Signal("cell.alarm"),
)
GOOD = {"pick": {"x": 1, "y": 0.0, "z": 0.1}, "place": {"x": 0.0, "y": 0.3, "z": 0.1}}


def test_uuid7_has_version_variant_and_timestamp():
    before = time.time_ns() // 1_000_000
    u = uuid.UUID(uuid7())
    after = time.time_ns() // 1_000_000
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert before <= u.int >> 80 <= after + 1


def test_uuid7_ids_are_unique_and_increasing_under_a_burst():
    ids = [uuid7() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert [uuid.UUID(i).int for i in ids] == sorted(uuid.UUID(i).int for i in ids)


def test_parse_fills_in_the_envelope_and_normalises_data():
    env = parse_signal({"type": "pick.requested", "data": GOOD}, CATALOG)
    assert env.specversion == "1.0"
    assert env.source == "/stdin"
    assert uuid.UUID(env.id).version == 7
    assert env.time.endswith("Z")
    assert env.data["pick"]["x"] == 1.0 and isinstance(env.data["pick"]["x"], float)
    assert env.datacontenttype == "application/json"


def test_parse_keeps_given_attributes():
    obj = {
        "specversion": "1.0",
        "type": "pick.failed",
        "source": "/test",
        "id": "abc",
        "time": "2026-01-01T00:00:00Z",
        "subject": "arm",
        "data": {"reason": "jam"},
    }
    env = parse_signal(obj, CATALOG)
    assert env.binding() == {
        "type": "pick.failed",
        "source": "/test",
        "id": "abc",
        "time": "2026-01-01T00:00:00Z",
        "subject": "arm",
        "data": {"reason": "jam"},
    }
    assert env.to_json() == {**obj, "datacontenttype": "application/json"}


def test_bad_data_is_a_drop_with_a_reason_naming_the_path():
    with pytest.raises(SignalRejected) as info:
        parse_signal({"type": "pick.requested", "data": {"pick": "over there"}}, CATALOG)
    assert info.value.type == "pick.requested"
    assert "data.pick" in info.value.reason


def test_undeclared_type_is_a_drop():
    with pytest.raises(SignalRejected) as info:
        parse_signal({"type": "pick.exploded", "data": {}}, CATALOG)
    assert info.value.type == "pick.exploded"
    assert "undeclared" in info.value.reason


def test_signal_without_payload_takes_no_data():
    assert parse_signal({"type": "cell.alarm"}, CATALOG).data is None
    assert parse_signal({"type": "cell.alarm", "data": {}}, CATALOG).data is None
    with pytest.raises(SignalRejected) as info:
        parse_signal({"type": "cell.alarm", "data": 3}, CATALOG)
    assert info.value.type == "cell.alarm"


@pytest.mark.parametrize(
    "obj", [[1, 2], "pick.requested", {"data": {}}, {"type": 3}, {"type": ""}], ids=["list", "str", "no-type", "int-type", "empty"]
)
def test_not_a_signal_has_no_type(obj):
    with pytest.raises(SignalRejected) as info:
        parse_signal(obj, CATALOG)
    assert info.value.type is None


@pytest.mark.parametrize(
    "extra", [{"specversion": "0.3"}, {"datacontenttype": "text/xml"}, {"source": 5}, {"id": 7}]
)
def test_bad_attributes_are_drops(extra):
    with pytest.raises(SignalRejected) as info:
        parse_signal({"type": "pick.failed", "data": {"reason": "x"}, **extra}, CATALOG)
    assert info.value.type == "pick.failed"




def test_catalog_from_program_has_standard_and_robot_event_signals():
    program = model.Program()
    program.add(model.Signal("pick.failed", Record((("reason", STR),))))
    program.add(
        model.Robot(
            name="Arm",
            qualname="cell.Arm",
            states=("idle",),
            limits=(),
            commands={},
            events={"force": model.Event("force", Record((("newtons", FLOAT),)))},
        )
    )
    catalog = SignalCatalog.from_program(program)
    for t in ("pick.failed", "robot.safety.changed", "robot.state.changed", "robot.error", "robot.event.force"):
        assert t in catalog
    assert catalog.conform("robot.event.force", {"newtons": 3}) == {"newtons": 3.0}
    with pytest.raises(SignalRejected):
        catalog.conform("robot.safety.changed", {"from": "armed", "to": "exploded"})


def test_robot_bound_types_and_sources():
    assert is_robot_bound("robot.safety.changed")
    assert is_robot_bound("robot.event.force")
    assert not is_robot_bound("robot.custom")
    assert not is_robot_bound("pick.requested")
    assert robot_of_source("/robot/arm") == "arm"
    assert robot_of_source("/robot/") is None
    assert robot_of_source("/agent/Picker") is None


def test_envelope_defaults_are_fresh():
    a = Envelope(type="cell.alarm", source="/x")
    b = Envelope(type="cell.alarm", source="/x")
    assert a.id != b.id
    assert "data" not in a.to_json()
