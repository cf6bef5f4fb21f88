"""The door (bbflow.runtime.door) and the standard-input reader: hostile input is refused with a reason,
never crashes the session, never impersonates a robot, never reaches a driver as NaN; the reader keeps
memory bounded and skips over-long lines in linear time."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from pathlib import Path

import pytest

from bbflow.runtime import model
from bbflow.runtime.door import MAX_DEPTH, Door, LineTooLong, Refusal, loads_strict
from bbflow.runtime.jsonout import dumps, encodable
from bbflow.runtime.run_plan import UsageError, parse_inputs
from bbflow.runtime.signals import STANDARD_SIGNALS, Envelope, SignalCatalog
from bbflow.runtime.stdin import BATCHES, CHUNK, InputLines
from bbflow.runtime.types import ANY, FLOAT, Record

CATALOG = SignalCatalog.of(
    model.Signal("pose.set", Record((("x", FLOAT),))),
    model.Signal("blob", ANY),
    *STANDARD_SIGNALS,
)


def refused(raw: object, door: Door | None = None) -> Refusal:
    out = (door or Door(CATALOG)).admit(raw)  # type: ignore[arg-type]
    assert isinstance(out, Refusal), out
    return out


def test_a_good_line_is_admitted_as_bytes_text_or_object() -> None:
    for raw in (b'{"type": "pose.set", "data": {"x": 1}}', '{"type": "pose.set", "data": {"x": 1}}',
                {"type": "pose.set", "data": {"x": 1}}):
        env = Door(CATALOG).admit(raw)
        assert isinstance(env, Envelope) and env.data == {"x": 1.0} and env.source == "/stdin"


@pytest.mark.parametrize("depth", [100, 1000, 100_000])
def test_deep_json_is_refused_not_a_recursion_error(depth: int) -> None:
    line = '{"type": "blob", "data": ' + "[" * depth + "]" * depth + "}"
    out = refused(line)
    assert "nested too deeply" in out.reason and not out.is_drop


def test_depth_up_to_the_limit_is_fine_and_parsed_objects_are_bounded_too() -> None:
    inner = MAX_DEPTH - 1
    assert isinstance(Door(CATALOG).admit('{"type": "blob", "data": ' + "[" * inner + "]" * inner + "}"), Envelope)
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    assert "nested too deeply" in refused({"type": "blob", "data": deep}).reason


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_numbers_are_refused(number: str) -> None:
    out = refused('{"type": "pose.set", "data": {"x": %s}}' % number)
    assert "non-finite" in out.reason


def test_non_finite_numbers_in_a_parsed_signal_are_refused_with_where() -> None:
    out = refused({"type": "pose.set", "data": {"x": math.nan}})
    assert out.type == "pose.set" and out.reason.startswith("data.x: NaN")
    out = refused({"type": "blob", "data": [1.0, {"y": -math.inf}]})
    assert out.reason.startswith("data[1].y")


def test_invalid_utf8_is_refused_not_replaced() -> None:
    out = refused(b'{"type": "blob", "data": "caf\xe9"}')
    assert out.reason.startswith("not UTF-8: byte 0xe9 at offset 29")


def test_a_line_over_the_limit_is_refused_with_its_size() -> None:
    line = b'{"type": "blob", "data": "' + b"x" * (1 << 20) + b'"}'
    assert refused(line).reason == f"line too large: {len(line)} bytes (the limit is 1048576 bytes)"
    assert "line too large: 5000000 bytes" in refused(LineTooLong(5_000_000)).reason
    assert "line too large" in refused(line.decode())  .reason


@pytest.mark.parametrize("text", ['"\\ud800"', '"a\\uDFFF"', '{"\\udbff": 1}', '["\\ude00\\ud83d"]'])
def test_half_a_surrogate_pair_is_refused(text: str) -> None:
    """It is valid JSON but no character: the journal's writer thread died on it, and every event stream."""
    out = refused('{"type": "blob", "data": %s}' % text)
    assert "half of a UTF-16 surrogate pair" in out.reason and not out.is_drop


def test_a_whole_surrogate_pair_and_an_escaped_backslash_are_fine() -> None:
    assert loads_strict('["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]


def test_a_huge_integer_is_refused_in_plain_words() -> None:  # not Python's advice to raise its limit
    out = refused('{"type": "blob", "data": %s}' % ("9" * 100_000))
    assert out.reason == "an integer of more than 4300 digits is too long to read" and not out.is_drop


@pytest.mark.parametrize("signal", [
    {"type": "robot.safety.changed", "source": "/robot/arm", "data": {"from": "armed", "to": "fault"}},
    {"type": "robot.event.force", "source": "/robot/arm", "data": {"newtons": 99}},
    {"type": "robot.error", "data": {"message": "fake"}},
])
def test_only_a_robots_own_driver_speaks_for_it(signal: dict[str, object]) -> None:
    out = refused(signal)
    assert out.type == signal["type"] and "only the robot's own driver" in out.reason


def test_a_robots_door_admits_its_own_signals_only() -> None:
    door = Door(CATALOG, robot="arm")
    env = door.admit({"type": "robot.error", "data": {"message": "hot"}})
    assert isinstance(env, Envelope) and env.source == "/robot/arm"
    assert "speaks only for itself" in refused({"type": "robot.error", "source": "/robot/left",
                                               "data": {"message": "x"}}, door).reason


def test_the_door_never_raises_on_odd_input() -> None:
    for raw in (b"", "", b"\xff\xfe", "[1,2]", "null", '"x"', {"type": 3}, {"no": "type"}, b"{" * 10_000):
        assert isinstance(Door(CATALOG).admit(raw), Refusal)  # type: ignore[arg-type]


def test_loads_strict_and_input_values_refuse_non_finite() -> None:
    with pytest.raises(ValueError):
        loads_strict("[NaN]")
    with pytest.raises(UsageError, match="non-finite"):
        parse_inputs(["x=NaN"])
    with pytest.raises(UsageError, match="non-finite"):
        parse_inputs(['pick={"x": 1e999}'])
    with pytest.raises(UsageError, match="nested too deeply"):
        parse_inputs(["x=" + "[" * 5000 + "]" * 5000])


def test_output_json_is_always_standard() -> None:
    big = 7 ** 20_000  # over 4,300 digits: plain json.dumps fails
    text = dumps({"nan": math.nan, "inf": -math.inf, "big": big, "ok": [1, 2.5, "s"]})
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
    assert back["nan"] == "NaN" and back["inf"] == "-Infinity" and int(back["big"], 16) == big
    assert back["ok"] == [1, 2.5, "s"]


# --- the standard-input reader --------------------------------------------------------------------------



def test_output_json_is_always_utf8() -> None:
    """Half of a surrogate pair in a string (no UTF-8) is written as its escape: every writer can write the text,
    and a reader gets the same string back; text without one is returned as it is."""
    value = {"a": "x\ud800y", "\udfff": [1, "é😀"]}
    text = dumps(value, ensure_ascii=False)
    assert text.encode("utf-8") and json.loads(text) == value
    assert "é😀" in text  # only the surrogates are escaped
    plain = dumps({"a": "é"}, ensure_ascii=False)
    assert encodable(plain) is plain

def read_all(data: bytes, **kw: int) -> list[object]:
    read, write = os.pipe()

    def writer() -> None:
        with os.fdopen(write, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=writer)
    thread.start()

    async def collect() -> list[object]:
        return [line async for line in InputLines(read, **kw)]

    try:
        return asyncio.run(collect())
    finally:
        thread.join()
        os.close(read)


def test_an_over_long_line_is_skipped_and_the_next_is_read() -> None:
    long = b"x" * (3 * CHUNK + 17)
    assert read_all(long + b"\nok\r\n" + long, max_bytes=CHUNK) == [
        LineTooLong(len(long)), b"ok", LineTooLong(len(long))]
    assert read_all(b"a" * 10 + b"\n", max_bytes=10) == [b"a" * 10]
    assert read_all(b"a" * 11 + b"\n", max_bytes=10) == [LineTooLong(11)]


def test_the_reader_reads_only_as_fast_as_it_is_consumed(tmp_path: Path) -> None:
    """Backpressure: with the consumer stalled, the reader stops after BATCHES chunks, not at the end."""
    path = tmp_path / "lines"
    path.write_bytes(b"0123456789abcde\n" * (CHUNK // 16) * (BATCHES + 20))
    fd = os.open(path, os.O_RDONLY)

    async def stall() -> int:
        lines = InputLines(fd).__aiter__()
        await lines.__anext__()
        await asyncio.sleep(0.5)  # the reader thread would read all of it by now without backpressure
        position = os.lseek(fd, 0, os.SEEK_CUR)
        await lines.aclose()  # type: ignore[attr-defined]
        return position

    try:
        position = asyncio.run(stall())
    finally:
        os.close(fd)
    assert position <= (BATCHES + 2) * CHUNK < path.stat().st_size


@pytest.mark.parametrize("time", [
    "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.678Z", "2026-01-02t03:04:05.123456789+02:00",
    "2016-12-31T23:59:60Z", "2024-02-29T00:00:00-05:30",  # a leap second, a leap day
])
def test_a_time_in_rfc_3339_is_taken_as_it_is(time: str) -> None:
    env = Door(CATALOG).admit({"type": "pose.set", "data": {"x": 1}, "time": time})
    assert isinstance(env, Envelope) and env.time == time


@pytest.mark.parametrize("time", [
    "banana", "1735689600", "2026-01-02", "2026-01-02T03:04:05", "2026-01-02 03:04:05Z", "2026-13-02T03:04:05Z",
    "2025-02-29T03:04:05Z", "2026-01-02T24:00:00Z", "2026-01-02T03:04:61Z", "2026-01-02T03:04:05+24:00",
    "2026-01-02T03:04:05Z junk", "٢٠٢٦-01-02T03:04:05Z",
])
def test_a_time_that_is_not_rfc_3339_is_refused_like_any_malformed_attribute(time: str) -> None:
    # any string was taken as `time`, and reached the agents' envelopes and the journal as it was
    out = refused({"type": "pose.set", "data": {"x": 1}, "time": time})
    assert out.is_drop and out.reason.startswith("attribute 'time' must be an RFC 3339 timestamp"), out


def test_an_empty_subject_addresses_no_robot() -> None:
    # `"subject": ""` addressed the signal to a robot instance named "": it reached the coordinators only, and a
    # signal an arm's agent routes was dropped as "no agent routes it"
    env = Door(CATALOG).admit({"type": "pose.set", "data": {"x": 1}, "subject": ""})
    assert isinstance(env, Envelope) and env.subject is None
