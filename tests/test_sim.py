"""The simulated robot: any interface, durations, results, argument echo, zero values, events."""

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from arm_spec import ARM, GRIP, POSE, command, robot

from bbflow.runtime import model
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.driver import DriverError
from bbflow.runtime.driver_check import check_driver
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.sim import SimConfigError, SimDriver, parse_sim_options
from bbflow.runtime.types import (
    ANY,
    BOOL,
    DURATION,
    FLOAT,
    INT,
    STR,
    ListOf,
    MapOf,
    Optional,
    Record,
)

HOME = {"x": 0.0, "y": 0.0, "z": 0.5}
NESTED = Record((("pose", POSE), ("grip", GRIP), ("tags", ListOf(STR)), ("note", Optional(STR))))


def now():
    return asyncio.get_running_loop().time()


def sim(scenario, spec=ARM, armed=True, **sim_options):
    async def main():
        async with RobotProxy(spec, "arm", SimDriver, options={"sim": sim_options}) as proxy:
            if armed:
                await proxy.call("arm", {})
            result = await scenario(proxy)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        return result

    return run_virtual(main())


def one_command_robot(result, params=()):
    return robot([command("do", [model.Param(n, t) for n, t in params], result)])


@pytest.mark.parametrize(
    ("rtype", "zero"),
    [
        (BOOL, False),
        (INT, 0),
        (FLOAT, 0.0),
        (STR, ""),
        (DURATION, 0.0),
        (ANY, None),
        (ListOf(POSE), []),
        (MapOf(INT), {}),
        (GRIP, "open"),
        (Optional(POSE), None),
        (POSE, {"x": 0.0, "y": 0.0, "z": 0.0}),
        (NESTED, {"pose": {"x": 0.0, "y": 0.0, "z": 0.0}, "grip": "open", "tags": [], "note": None}),
    ],
    ids=str,
)
def test_without_configuration_a_command_returns_the_zero_value_of_its_result(rtype, zero):
    async def scenario(proxy):
        return await proxy.call("do", {})

    result = sim(scenario, spec=one_command_robot(rtype))
    assert result == zero and type(result) is type(zero)


@pytest.mark.parametrize(
    ("rtype", "value"),
    [
        (POSE, {"x": 0.2, "y": 0.1, "z": 0.3}),
        (GRIP, "closed"),
        (ListOf(INT), [3, 1, 2]),
        (MapOf(FLOAT), {"a": 1.5}),
        (Optional(STR), "tag"),
        (NESTED, {"pose": HOME, "grip": "closed", "tags": ["a"], "note": None}),
        (STR, "hello"),
    ],
    ids=str,
)
def test_the_first_argument_of_the_result_type_is_echoed(rtype, value):
    spec = one_command_robot(rtype, [("speed", FLOAT), ("first", rtype), ("second", rtype)])

    async def scenario(proxy):
        second = rtype.zero() if rtype is not STR else "other"
        return await proxy.call("do", {"speed": 0.5, "first": value, "second": second})

    assert sim(scenario, spec=spec) == value


def test_an_argument_of_another_type_is_not_echoed():
    spec = one_command_robot(INT, [("speed", FLOAT), ("pose", POSE)])

    async def scenario(proxy):
        return await proxy.call("do", {"speed": 3.0, "pose": HOME})

    assert sim(scenario, spec=spec) == 0


def test_move_to_echoes_its_target_and_grip_commands_give_the_first_member():
    async def scenario(proxy):
        pose = await proxy.call("move_to", {"target": HOME})
        grip = await proxy.call("close_gripper", {"force": 5.0})
        return pose, grip

    assert sim(scenario) == (HOME, GRIP.members[0])


def test_configured_results_and_durations():
    async def scenario(proxy):
        force = await proxy.call("read_force", {})
        t_force = now()
        grip = await proxy.call("close_gripper", {})
        t_grip = now()
        await proxy.call("home", {})
        return force, t_force, grip, t_grip, now()

    force, t_force, grip, t_grip, t_home = sim(
        scenario,
        duration="100ms",
        commands={"read_force": {"result": 7.5, "duration": "5ms"}, "close_gripper": {"result": "closed"}},
    )
    assert (force, grip) == (7.5, "closed")
    assert (t_force, t_grip, t_home) == pytest.approx((0.005, 0.105, 0.205))


def test_each_command_takes_twenty_milliseconds_by_default():
    async def scenario(proxy):
        await proxy.call("home", {})
        return now()

    assert sim(scenario) == pytest.approx(0.020)


def test_configured_results_are_fresh_copies():
    async def scenario(proxy):
        first = await proxy.call("home", {})
        first["x"] = 99.0
        return await proxy.call("home", {})

    assert sim(scenario, commands={"home": {"result": HOME}}) == HOME


def test_the_simulated_robot_starts_disarmed():
    async def scenario(proxy):
        with pytest.raises(RuntimeFailure) as info:
            await proxy.call("home", {})
        return proxy.safety, info.value.code

    assert sim(scenario, armed=False) == ("disarmed", "not_armed")


def test_motions_are_serialised_like_on_a_real_robot():
    async def scenario(proxy):
        ends = []

        async def move(name, args):
            await proxy.call(name, args)
            ends.append((name, round(now(), 6)))

        async with asyncio.TaskGroup() as tg:
            tg.create_task(move("move_to", {"target": HOME}))
            tg.create_task(move("home", {}))
            tg.create_task(move("open_gripper", {}))  # no category: runs beside them
        return ends

    assert sim(scenario) == [("move_to", 0.02), ("open_gripper", 0.02), ("home", 0.04)]


def test_allowed_states_are_enforced_with_the_busy_state():
    async def scenario(proxy):
        states = []
        proxy.on_state(lambda old, new: states.append(new))
        moving = asyncio.create_task(proxy.call("move_to", {"target": HOME}))
        await asyncio.sleep(0.005)
        with pytest.raises(RuntimeFailure) as info:
            await proxy.call("open_gripper", {})
        await moving
        return states, info.value.code, proxy.state

    states, code, state = sim(scenario, busy_state="busy")
    assert states == ["busy", "idle"] and state == "idle"
    assert code == "state"


def test_without_busy_state_the_robot_stays_idle_and_wait_state_idle_is_immediate():
    async def scenario(proxy):
        states = []
        proxy.on_state(lambda old, new: states.append(new))
        await proxy.call("home", {})
        ready = await proxy.wait_state(("idle",))
        return states, ready

    assert sim(scenario) == ([], "idle")


def test_readonly_commands_do_not_make_the_robot_busy():
    async def scenario(proxy):
        states = []
        proxy.on_state(lambda old, new: states.append(new))
        await proxy.call("read_force", {})
        return states

    assert sim(scenario, busy_state="busy") == []


# --- events -------------------------------------------------------------------------


EVENTS = [{"after": "close_gripper", "event": "force", "data": {"newtons": 12}}]


def test_configured_events_follow_their_command_after_the_delay():
    async def scenario(proxy):
        waiting = asyncio.create_task(proxy.wait_event("force", lambda d: d["newtons"] > 5.0))
        await proxy.call("close_gripper", {})
        data = await waiting
        return data, now()

    data, t = sim(scenario, events=EVENTS)
    assert data == {"newtons": 12.0}
    assert t == pytest.approx(0.030)  # 20ms to close, 10ms later the force reading


def test_event_delay_is_configurable_and_events_follow_each_successful_command():
    async def scenario(proxy):
        seen = []
        proxy.on_event(lambda name, data: seen.append((name, round(now(), 6))))
        await proxy.call("close_gripper", {})
        await proxy.call("close_gripper", {})
        await proxy.call("open_gripper", {})
        await asyncio.sleep(1)
        return seen

    events = [{**EVENTS[0], "delay": "5ms"}]
    assert sim(scenario, events=events) == [("force", 0.025), ("force", 0.045)]


def test_pending_events_are_dropped_when_the_robot_closes():
    published = []

    async def main():
        async with RobotProxy(ARM, "arm", SimDriver, options={"sim": {"events": EVENTS}}) as proxy:
            proxy.on_event(lambda name, data: published.append(name))
            await proxy.call("arm", {})
            await proxy.call("close_gripper", {})
        await asyncio.sleep(1)

    run_virtual(main())
    assert published == []


def test_a_failed_command_publishes_no_event():
    from bbflow.runtime.faults import parse_faults

    faults = parse_faults({"fault": [{"command": "close_gripper", "error": "jammed"}]})

    async def main():
        seen = []
        options = {"sim": {"events": EVENTS}}
        async with RobotProxy(ARM, "arm", SimDriver, options=options, faults=faults) as proxy:
            proxy.on_event(lambda name, data: seen.append(name))
            await proxy.call("arm", {})
            with pytest.raises(RuntimeFailure):
                await proxy.call("close_gripper", {})
            await asyncio.sleep(1)
        return seen

    assert run_virtual(main()) == []


# --- options ------------------------------------------------------------------------


def test_the_sim_implements_every_interface():
    assert check_driver(SimDriver, ARM) == []
    assert check_driver(SimDriver, one_command_robot(NESTED, [("x", INT)])) == []


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"duraton": "1s"}, "robot.arm.sim: unknown key 'duraton' (did you mean 'duration'?)"),
        ({"duration": "fast"}, 'robot.arm.sim.duration: expected a duration like "20ms"'),
        ({"duration": 20}, "robot.arm.sim.duration: expected a duration"),
        ({"commands": {"mvoe_to": {}}}, "robot.arm.sim.commands.mvoe_to: Arm has no command 'mvoe_to' (did you mean 'move_to'?)"),
        ({"commands": {"read_force": {"result": "high"}}}, "robot.arm.sim.commands.read_force.result: not a float: expected float, got str 'high'"),
        ({"commands": {"home": {"result": {"x": 1.0}}}}, "robot.arm.sim.commands.home.result: not a {x: float, y: float, z: float}: y: expected"),
        ({"commands": {"home": {"speed": 1}}}, "robot.arm.sim.commands.home: unknown key 'speed'"),
        ({"events": [{"after": "grip", "event": "force"}]}, "robot.arm.sim.events[1].after: Arm has no command 'grip'"),
        ({"events": [{"after": "home", "event": "torque"}]}, "robot.arm.sim.events[1].event: Arm declares no event 'torque'"),
        ({"events": [{"after": "home", "event": "force", "data": {"newtons": "x"}}]}, "robot.arm.sim.events[1].data: not a payload of force: newtons: expected float"),
        ({"events": [{"after": "home", "event": "force"}]}, "robot.arm.sim.events[1].data: not a payload of force"),
        ({"events": [{"event": "force"}]}, "robot.arm.sim.events[1].after: missing"),
        ({"events": [{**EVENTS[0], "delay": "soon"}]}, "robot.arm.sim.events[1].delay: expected a duration"),
        ({"events": {"after": "home"}}, "robot.arm.sim.events: write each event as a [[robot.arm.sim.events]] table"),
        ({"busy_state": "moving"}, "robot.arm.sim.busy_state: expected one of Arm's states other than idle (busy)"),
        ({"busy_state": "idle"}, "robot.arm.sim.busy_state"),
    ],
)
def test_a_bad_sim_table_is_refused_before_anything_moves(table, message):
    async def main():
        proxy = RobotProxy(ARM, "arm", SimDriver, options={"sim": table})
        with pytest.raises(SimConfigError) as info:
            await proxy.start()
        return str(info.value)

    assert run_virtual(main()).startswith(message)


def test_parsed_options_hold_seconds():
    options = parse_sim_options(
        ARM, {"duration": "1.5s", "commands": {"home": {"duration": "2m"}}, "events": [{**EVENTS[0], "delay": "1h"}]}
    )
    assert options.duration == 1.5
    assert options.commands["home"].duration == 120.0
    assert options.events[0].delay == 3600.0
    assert options.events[0].data == {"newtons": 12.0}


def test_an_event_without_payload_publishes_none():
    spec = robot(
        [command("home", [], POSE)],
        events=[model.Event("homed")],
    )

    async def scenario(proxy):
        waiting = asyncio.create_task(proxy.wait_event("homed"))
        await proxy.call("home", {})
        return await waiting

    assert sim(scenario, spec=spec, events=[{"after": "home", "event": "homed"}]) is None


RTYPES = st.recursive(
    st.sampled_from([BOOL, INT, FLOAT, STR, DURATION, ANY, GRIP]),
    lambda inner: st.one_of(
        inner.map(ListOf),
        inner.map(MapOf),
        inner.filter(lambda t: not isinstance(t, Optional)).map(Optional),
        st.lists(st.tuples(st.sampled_from("abcde"), inner), min_size=1, max_size=3, unique_by=lambda f: f[0]).map(
            lambda fields: Record(tuple(fields))
        ),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(result=RTYPES)
def test_the_sim_answers_any_interface_with_a_value_of_the_declared_type(result):
    async def scenario(proxy):
        return await proxy.call("do", {})

    value = sim(scenario, spec=one_command_robot(result))
    assert result.conform(value) == value == result.zero()


# --- the record file --------------------------------------------------------------------------


def record_run(tmp_path, record, **sim_options):
    async def main():
        options = {"sim": {"record": record, **sim_options}, "project_root": str(tmp_path)}
        async with RobotProxy(ARM, "arm", SimDriver, options=options) as proxy:
            await proxy.call("arm", {})
            await proxy.call("move_to", {"target": HOME})
            return await proxy.call("read_force", {})

    return run_virtual(main())


def test_a_record_file_that_cannot_be_written_is_refused_before_anything_moves(tmp_path):
    with pytest.raises(DriverError) as info:
        record_run(tmp_path, "no_such_folder/world.jsonl")
    assert str(info.value) == (f"robot arm: the driver could not connect: robot.arm.sim.record: cannot write "
                               f"{tmp_path / 'no_such_folder' / 'world.jsonl'}: No such file or directory")


def test_the_record_is_standard_json_even_for_a_nan_result(tmp_path):
    record_run(tmp_path, "world.jsonl", commands={"read_force": {"result": float("nan")}})
    lines = (tmp_path / "world.jsonl").read_text().splitlines()

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    assert [json.loads(line, parse_constant=refuse) for line in lines] == [
        {"command": "move_to", "args": {"target": HOME, "speed": 0.5}, "result": HOME},
        {"command": "read_force", "args": {}, "result": "NaN"},
    ]
