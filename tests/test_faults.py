"""Faults files: parsing, clear errors, and each fault kind on the simulated robot."""

import asyncio

import pytest
from arm_spec import ARM

from bbflow.runtime.clock import run_virtual
from bbflow.runtime.faults import Fault, Faults, FaultsError, load_faults, parse_faults
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.sim import SimDriver

HOME = {"x": 0.0, "y": 0.0, "z": 0.5}


def now():
    return asyncio.get_running_loop().time()


def write(tmp_path, text):
    path = tmp_path / "faults.toml"
    path.write_text(text)
    return path


def test_a_faults_file_with_every_kind(tmp_path):
    path = write(
        tmp_path,
        """
[[fault]]
command = "close_gripper"
call = 1
error = "jammed"

[[fault]]
command = "move_to"
delay = "3s"

[[fault]]
command = "home"
call = 2
disarm = true
""",
    )
    faults = load_faults(path)
    assert faults.source == str(path)
    assert faults.faults == (
        Fault(1, "close_gripper", 1, error="jammed"),
        Fault(2, "move_to", None, delay=3.0),
        Fault(3, "home", 2, disarm=True),
    )
    faults.validate(ARM)


def test_an_empty_file_has_no_faults(tmp_path):
    assert load_faults(write(tmp_path, "")).faults == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[fault]]\ncommand = "home"\neror = "x"', "fault 1: unknown key 'eror' (did you mean 'error'?)"),
        ('[[fault]]\ncommand = "home"\nerror = "x"\ndelay = "1s"', "fault 1: delay: a fault has one effect, this one also has error"),
        ('[[fault]]\ncommand = "home"', "fault 1: give one of error, delay or disarm"),
        ('[[fault]]\nerror = "x"', "fault 1: command: missing"),
        ('[[fault]]\ncommand = 3\nerror = "x"', "fault 1: command: expected a command name, got 3"),
        ('[[fault]]\ncommand = "home"\ndelay = "3 seconds"', 'fault 1: delay: expected a duration like "20ms"'),
        ('[[fault]]\ncommand = "home"\ndelay = 3', "fault 1: delay: expected a duration"),
        ('[[fault]]\ncommand = "home"\ncall = 0\nerror = "x"', "fault 1: call: expected a call number from 1, got 0"),
        ('[[fault]]\ncommand = "home"\ncall = "1"\nerror = "x"', "fault 1: call: expected a call number from 1, got '1'"),
        ('[[fault]]\ncommand = "home"\ndisarm = false', "fault 1: disarm: expected true, got False"),
        ('[[fault]]\ncommand = "home"\nerror = ""', "fault 1: error: expected a message"),
        ('[[fault]]\ncommand = "home"\nerror = "x"\n[[fault]]\ncommand = "home"\ncall = -2\nerror = "y"', "fault 2: call"),
        ('[faults]\ncommand = "home"', "unknown table 'faults' (a faults file holds [[fault]] entries)"),
        ('[fault]\ncommand = "home"', "fault: write each fault as a [[fault]] table"),
        ("[[fault]\n", "not valid TOML"),
    ],
)
def test_a_bad_faults_file_names_the_file_the_fault_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(FaultsError) as info:
        load_faults(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_a_missing_file_is_a_faults_error(tmp_path):
    with pytest.raises(FaultsError, match="nope.toml: cannot read"):
        load_faults(tmp_path / "nope.toml")


def test_a_faults_file_that_is_not_utf8_or_nested_too_deeply_is_a_faults_error(tmp_path):
    """Both ended ``bbflow run --faults`` in a traceback (UnicodeDecodeError, RecursionError)."""
    path = tmp_path / "faults.toml"
    path.write_bytes(b'[[fault]]\ncommand = "home"\nerror = "\xff"\n')
    with pytest.raises(FaultsError, match=r"faults.toml: not UTF-8 text: invalid start byte at byte 36"):
        load_faults(path)
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(FaultsError, match="faults.toml: not valid TOML: arrays or inline tables nested too deeply"):
        load_faults(path)
    path.write_bytes('\ufeff[[fault]]\ncommand = "home"\nerror = "x"\n'.encode())  # a byte order mark is read
    assert [f.command for f in load_faults(path).faults] == ["home"]


def test_a_fault_on_an_unknown_command_is_refused_against_the_interface():
    faults = parse_faults({"fault": [{"command": "home", "error": "x"}, {"command": "clsoe_gripper", "error": "x"}]}, "drill.toml")
    with pytest.raises(FaultsError) as info:
        faults.validate(ARM)
    assert str(info.value) == "drill.toml: fault 2: command: Arm has no command 'clsoe_gripper' (did you mean 'close_gripper'?)"
    with pytest.raises(FaultsError):
        RobotProxy(ARM, "arm", SimDriver, faults=faults)  # checked before anything moves


@pytest.mark.parametrize("builtin", ["arm", "disarm"])
def test_a_fault_on_arm_or_disarm_says_they_are_built_in(builtin):
    faults = parse_faults({"fault": [{"command": builtin, "error": "x"}]}, "drill.toml")
    with pytest.raises(FaultsError) as info:
        faults.validate(ARM)
    assert str(info.value) == (f"drill.toml: fault 1: command: {builtin} is built into every robot and cannot be "
                               f"made to misbehave; name a command of Arm (`disarm = true` on one drills an "
                               f"emergency stop)")


def test_the_first_matching_fault_applies():
    faults = Faults("f", (Fault(1, "home", 2, error="a"), Fault(2, "home", None, error="b")))
    assert [f.error if f else None for f in (faults.for_call("home", n) for n in (1, 2, 3))] == ["b", "a", "b"]
    assert faults.for_call("move_to", 1) is None


# --- faults on the simulated robot --------------------------------------------------


def drill(faults, scenario):
    async def main():
        async with RobotProxy(ARM, "arm", SimDriver, faults=parse_faults({"fault": faults})) as proxy:
            await proxy.call("arm", {})
            result = await scenario(proxy)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        return result

    return run_virtual(main())


async def outcome(call):
    try:
        return await call
    except RuntimeFailure as err:
        return (err.code, err.message)


def test_an_error_on_the_nth_call_only():
    async def scenario(proxy):
        return [await outcome(proxy.call("move_to", {"target": HOME})) for _ in range(4)]

    assert drill([{"command": "move_to", "call": 3, "error": "collision"}], scenario) == [
        HOME,
        HOME,
        ("command", "move_to failed: collision"),
        HOME,
    ]


def test_an_error_on_every_call():
    async def scenario(proxy):
        return [await outcome(proxy.call("close_gripper", {})) for _ in range(2)], await proxy.call("home", {})

    results, home = drill([{"command": "close_gripper", "error": "jammed"}], scenario)
    assert results == [("command", "close_gripper failed: jammed")] * 2
    assert home == {"x": 0.0, "y": 0.0, "z": 0.0}


def test_refused_calls_are_not_counted():
    async def scenario(proxy):
        await proxy.call("disarm", {})
        refused = await outcome(proxy.call("home", {}))
        await proxy.call("arm", {})
        return refused, await outcome(proxy.call("home", {}))

    refused, first = drill([{"command": "home", "call": 1, "error": "stuck"}], scenario)
    assert refused[0] == "not_armed"
    assert first == ("command", "home failed: stuck")


def test_a_delay_makes_the_command_take_longer():
    async def scenario(proxy):
        await proxy.call("home", {})
        return now()

    assert drill([{"command": "home", "delay": "3s"}], scenario) == pytest.approx(3.020)


def test_a_delay_longer_than_the_timeout_times_out():
    async def scenario(proxy):
        err = await outcome(proxy.call("move_to", {"target": HOME}))
        return err, now()

    err, t = drill([{"command": "move_to", "delay": "1m"}], scenario)
    assert err == ("timeout", "move_to timed out after 10s")
    assert t == 10.0


def test_disarm_drops_the_robot_to_disarmed_while_the_command_runs():
    async def scenario(proxy):
        changes = []
        proxy.on_safety(lambda old, new: changes.append(new))
        first = await proxy.call("move_to", {"target": HOME})
        err = await outcome(proxy.call("move_to", {"target": HOME}))
        refused = await outcome(proxy.call("home", {}))
        return first, err, refused[0], list(changes), proxy.safety

    first, err, refused, changes, safety = drill([{"command": "move_to", "call": 2, "disarm": True}], scenario)
    assert first == HOME
    assert err == ("not_armed", "move_to was stopped: arm was disarmed")
    assert refused == "not_armed"
    assert changes == ["disarming", "disarmed"] and safety == "disarmed"


def test_disarm_reaches_the_driver_as_a_cancellation():
    stopped = []

    class Watched(SimDriver):
        async def run_command(self, name, kwargs):
            try:
                return await super().run_command(name, kwargs)
            except asyncio.CancelledError:
                stopped.append((name, asyncio.get_running_loop().time()))
                raise

    async def main():
        faults = parse_faults({"fault": [{"command": "home", "disarm": True}]})
        async with RobotProxy(ARM, "arm", Watched, faults=faults) as proxy:
            await proxy.call("arm", {})
            await outcome(proxy.call("home", {}))

    run_virtual(main())
    assert stopped == [("home", 0.0)]
