"""The robot proxy's rules, against a scripted driver, on the virtual-time loop."""

import asyncio
import contextlib
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from arm_spec import ARM, GRIP, POSE, command, robot

from bbflow.runtime.clock import run_virtual
from bbflow.runtime.driver import Driver, DriverError
from bbflow.runtime.journal.calls import JOURNALED
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.proxy import RobotProxy

HOME = {"x": 0.0, "y": 0.0, "z": 0.5}


def now():
    return asyncio.get_running_loop().time()


class ScriptedArm(Driver):
    """Each command takes ``durations[name]`` (default 1 s) and returns ``results[name]`` or echoes."""

    def __init__(self, handle, options):
        super().__init__(handle, options)
        self.durations = dict(options.get("durations", {}))
        self.results = dict(options.get("results", {}))
        self.errors = dict(options.get("errors", {}))
        self.log = []  # (time, what, command)
        self.hooks = []

    async def _do(self, name, result):
        self.log.append((now(), "start", name))
        try:
            await asyncio.sleep(self.durations.get(name, 1.0))
        except asyncio.CancelledError:
            self.log.append((now(), "cancelled", name))
            raise
        if name in self.errors:
            raise self.errors[name]
        self.log.append((now(), "end", name))
        return self.results.get(name, result)

    async def move_to(self, target, speed):
        return await self._do("move_to", target)

    async def close_gripper(self, force):
        return await self._do("close_gripper", "closed")

    async def open_gripper(self):
        return await self._do("open_gripper", "open")

    async def home(self):
        return await self._do("home", HOME)

    async def read_force(self):
        return await self._do("read_force", 3)

    async def connect(self):
        self.hooks.append("connect")

    async def arm(self):
        self.hooks.append("arm")

    async def disarm(self):
        self.hooks.append("disarm")

    async def disconnect(self):
        self.hooks.append("disconnect")


def run(scenario, spec=ARM, armed=True, **options):
    """Run ``scenario(proxy, driver)`` with a started (and by default armed) proxy."""

    async def main():
        async with RobotProxy(spec, "arm", ScriptedArm, options=options) as proxy:
            if armed:
                await proxy.call("arm", {})
            result = await scenario(proxy, proxy.driver)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        return result

    return run_virtual(main())


async def failure(awaitable):
    with pytest.raises(RuntimeFailure) as info:
        await awaitable
    return info.value


# --- arming ---------------------------------------------------------------------------


def test_commands_are_refused_while_disarmed_and_never_reach_the_driver():
    async def scenario(proxy, driver):
        err = await failure(proxy.call("move_to", {"target": HOME}))
        return err, driver.log, proxy.safety

    err, log, safety = run(scenario, armed=False)
    assert (err.code, err.command) == ("not_armed", "move_to")
    assert err.message == "move_to refused: arm is disarmed, not armed"
    assert log == [] and safety == "disarmed"


def test_arm_and_disarm_are_commands_with_hooks_and_observable_safety():
    async def scenario(proxy, driver):
        changes = []
        proxy.on_safety(lambda old, new: changes.append((old, new)))
        assert await proxy.call("arm", {}) == "armed"
        assert await proxy.call("arm", {}) == "armed"  # already armed: nothing happens
        assert await proxy.call("disarm", {}) == "disarmed"
        assert await proxy.call("disarm", {}) == "disarmed"
        return changes, list(driver.hooks)

    changes, hooks = run(scenario, armed=False)
    assert changes == [("disarmed", "armed"), ("armed", "disarming"), ("disarming", "disarmed")]
    assert hooks == ["connect", "arm", "disarm"]


def test_a_failing_arm_hook_leaves_the_robot_disarmed():
    class Stubborn(ScriptedArm):
        async def arm(self):
            raise OSError("brakes engaged")

    async def main():
        async with RobotProxy(ARM, "arm", Stubborn) as proxy:
            err = await failure(proxy.call("arm", {}))
            return err, proxy.safety

    err, safety = run_virtual(main())
    assert (err.code, err.command, err.message) == ("command", "arm", "arm failed: brakes engaged")
    assert safety == "disarmed"


def test_an_arm_hook_that_fails_halfway_is_followed_by_the_drivers_disarm():
    class Halfway(ScriptedArm):
        async def arm(self):
            self.hooks.append("brakes released")
            raise OSError("power stage fault")

    async def main():
        async with RobotProxy(ARM, "arm", Halfway) as proxy:
            err = await failure(proxy.call("arm", {}))
            return err.message, proxy.safety, list(proxy.driver.hooks)

    assert run_virtual(main()) == ("arm failed: power stage fault", "disarmed",
                                   ["connect", "brakes released", "disarm"])


def test_an_interrupted_arm_hook_is_followed_by_the_drivers_disarm():
    class Slow(ScriptedArm):
        async def arm(self):
            self.hooks.append("brakes released")
            await asyncio.sleep(3600)

    async def main():
        async with RobotProxy(ARM, "arm", Slow) as proxy:
            with pytest.raises(RuntimeFailure, match="arm timed out after 1s"):
                await proxy.call("arm", {}, timeout=1.0)
            return proxy.safety, list(proxy.driver.hooks)

    assert run_virtual(main()) == ("disarmed", ["connect", "brakes released", "disarm"])


def test_an_arm_hook_that_fails_with_a_failing_disarm_leaves_the_robot_in_fault():
    class Broken(ScriptedArm):
        async def arm(self):
            raise OSError("power stage fault")

        async def disarm(self):
            raise OSError("controller not answering")

    async def main():
        proxy = RobotProxy(ARM, "arm", Broken)
        await proxy.start()
        err = await failure(proxy.call("arm", {}))
        safety = proxy.safety
        await failure(proxy.close())
        return err.message, safety

    assert run_virtual(main()) == (
        "arm failed: power stage fault; disarming after it failed too: controller not answering", "fault")


def test_close_disarms_a_running_robot_and_disconnects():
    async def main():
        proxy = RobotProxy(ARM, "arm", ScriptedArm)
        await proxy.start()
        await proxy.call("arm", {})
        await proxy.close()
        return proxy.safety, proxy.driver.hooks

    assert run_virtual(main()) == ("disarmed", ["connect", "arm", "disarm", "disconnect"])


# --- allowed states -------------------------------------------------------------------


def test_commands_run_only_in_their_allowed_states():
    spec = robot([command("jog", [], POSE, allowed=("idle", "busy")), *ARM.commands.values()])

    class Jogger(ScriptedArm):
        async def jog(self):
            return HOME

    async def main():
        async with RobotProxy(spec, "arm", Jogger) as proxy:
            await proxy.call("arm", {})
            proxy.driver.handle.set_state("busy")
            err = await failure(proxy.call("home", {}))
            jogged = await proxy.call("jog", {})
            return err, jogged

    err, jogged = run_virtual(main())
    assert (err.code, err.command) == ("state", "home")
    assert err.message == "home is not allowed while arm is busy (allowed: idle)"
    assert jogged == HOME


def test_the_driver_can_only_report_declared_states():
    async def scenario(proxy, driver):
        with pytest.raises(ValueError, match="no state 'flying'"):
            driver.handle.set_state("flying")
        return proxy.state

    assert run(scenario) == "idle"


# --- categories -----------------------------------------------------------------------


def test_a_second_motion_waits_for_the_first_and_is_never_sent_concurrently():
    async def scenario(proxy, driver):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(proxy.call("move_to", {"target": HOME}))
            tg.create_task(proxy.call("home", {}))
        return driver.log

    assert run(scenario) == [
        (0.0, "start", "move_to"),
        (1.0, "end", "move_to"),
        (1.0, "start", "home"),
        (2.0, "end", "home"),
    ]


def test_a_category_with_limit_two_runs_two_at_once_and_queues_the_third():
    spec = robot(list(ARM.commands.values()), limits=(("motion", 2),))

    async def scenario(proxy, driver):
        async with asyncio.TaskGroup() as tg:
            for _ in range(3):
                tg.create_task(proxy.call("home", {}))
        return [(t, what) for t, what, _ in driver.log]

    assert run(scenario, spec=spec) == [
        (0.0, "start"), (0.0, "start"), (1.0, "end"), (1.0, "end"), (1.0, "start"), (2.0, "end")
    ]


def test_commands_without_a_category_are_not_limited():
    async def scenario(proxy, driver):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(proxy.call("close_gripper", {}))
            tg.create_task(proxy.call("read_force", {}))
            tg.create_task(proxy.call("move_to", {"target": HOME}))
        return [t for t, what, _ in driver.log if what == "start"]

    assert run(scenario) == [0.0, 0.0, 0.0]


# --- timeouts -------------------------------------------------------------------------


def test_the_declared_timeout_applies_when_the_caller_gives_none():
    async def scenario(proxy, driver):
        err = await failure(proxy.call("move_to", {"target": HOME}))
        return err, now(), driver.log

    err, t, log = run(scenario, durations={"move_to": 60.0})
    assert (err.code, err.command, err.message) == ("timeout", "move_to", "move_to timed out after 10s")
    assert t == 10.0
    assert log == [(0.0, "start", "move_to"), (10.0, "cancelled", "move_to")]


def test_the_callers_timeout_overrides_the_declared_one():
    async def scenario(proxy, driver):
        err = await failure(proxy.call("move_to", {"target": HOME}, timeout=0.25))
        return err.message, now()

    assert run(scenario) == ("move_to timed out after 250ms", 0.25)


def test_a_command_without_a_timeout_may_take_as_long_as_it_takes():
    async def scenario(proxy, driver):
        return await proxy.call("home", {}), now()

    assert run(scenario, durations={"home": 3600.0}) == (HOME, 3600.0)


def test_the_timeout_includes_waiting_for_the_category():
    async def scenario(proxy, driver):
        first = asyncio.create_task(proxy.call("home", {}))
        await asyncio.sleep(0)  # home takes the motion slot
        err = await failure(proxy.call("move_to", {"target": HOME}, timeout=0.5))
        await first
        return err.code, [entry[2] for entry in driver.log if entry[1] == "start"]

    assert run(scenario) == ("timeout", ["home"])


# --- errors and results ---------------------------------------------------------------


def test_a_driver_exception_becomes_a_command_failure_naming_the_command():
    async def scenario(proxy, driver):
        return await failure(proxy.call("close_gripper", {"force": 5.0}))

    err = run(scenario, errors={"close_gripper": OSError("jammed")})
    assert (err.code, err.command, err.message) == ("command", "close_gripper", "close_gripper failed: jammed")
    assert err.to_json() == {"message": "close_gripper failed: jammed", "code": "command", "command": "close_gripper"}


def test_a_runtime_failure_from_the_driver_keeps_its_code():
    async def scenario(proxy, driver):
        return await failure(proxy.call("home", {}))

    err = run(scenario, errors={"home": RuntimeFailure("no path home", "state")})
    assert (err.code, err.command, err.message) == ("state", "home", "no path home")


def test_a_bad_result_is_a_clear_failure_naming_the_command_and_the_field():
    async def scenario(proxy, driver):
        return await failure(proxy.call("move_to", {"target": HOME}))

    err = run(scenario, results={"move_to": {"x": 0.1, "y": 0.2, "z": "high"}})
    assert (err.code, err.command) == ("result", "move_to")
    assert err.message == "move_to returned a bad result: z: expected float, got str 'high'"


@pytest.mark.parametrize(
    ("name", "returned", "message"),
    [
        ("move_to", None, "move_to returned a bad result: expected {x: float, y: float, z: float}, got none"),
        ("move_to", {"x": 1.0, "y": 2.0}, "move_to returned a bad result: z: expected a field of type float, got none"),
        ("close_gripper", "half", "close_gripper returned a bad result: expected Grip (one of open, closed), got str 'half'"),
        ("read_force", True, "read_force returned a bad result: expected float, got bool true"),
    ],
)
def test_bad_results_of_every_shape(name, returned, message):
    async def scenario(proxy, driver):
        return await failure(proxy.call(name, {"target": HOME} if name == "move_to" else {}))

    assert run(scenario, results={name: returned}).message == message


def test_results_are_normalised_at_the_boundary():
    async def scenario(proxy, driver):
        return await proxy.call("move_to", {"target": {"x": 1, "y": 2, "z": 3, "frame": "base"}})

    result = run(scenario)
    assert result == {"x": 1.0, "y": 2.0, "z": 3.0, "frame": "base"}
    assert all(isinstance(result[k], float) for k in "xyz")


def test_arguments_are_checked_and_defaults_filled_before_the_driver_sees_them():
    seen = {}

    class Recorder(ScriptedArm):
        async def move_to(self, target, speed):
            seen.update(target=target, speed=speed)
            return target

    async def main():
        async with RobotProxy(ARM, "arm", Recorder) as proxy:
            await proxy.call("arm", {})
            await proxy.call("move_to", {"target": {"x": 1, "y": 0, "z": 0}})
            errors = [
                await failure(proxy.call("move_to", {})),
                await failure(proxy.call("move_to", {"target": HOME, "sped": 1.0})),
                await failure(proxy.call("move_to", {"target": {"x": "a", "y": 0, "z": 0}})),
                await failure(proxy.call("fly", {})),
            ]
            return [(e.code, e.message) for e in errors]

    messages = run_virtual(main())
    assert seen == {"target": {"x": 1.0, "y": 0.0, "z": 0.0}, "speed": 0.5}
    assert messages == [
        ("command", "move_to: missing argument target"),
        ("command", "move_to: unknown argument sped"),
        ("command", "move_to: bad argument target.x: expected float, got str 'a'"),
        ("command", "Arm has no command 'fly'"),
    ]


# --- cancellation and disarming -------------------------------------------------------


def test_cancelling_the_caller_reaches_the_driver_and_leaves_no_task_behind():
    async def scenario(proxy, driver):
        caller = asyncio.create_task(proxy.call("move_to", {"target": HOME}))
        await asyncio.sleep(0.5)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        after = await proxy.call("home", {})  # the motion slot was released
        return driver.log, after

    log, after = run(scenario)
    assert log[:2] == [(0.0, "start", "move_to"), (0.5, "cancelled", "move_to")]
    assert after == HOME


def test_disarm_stops_the_command_in_flight():
    async def scenario(proxy, driver):
        moving = asyncio.create_task(proxy.call("move_to", {"target": HOME}))
        await asyncio.sleep(0.5)
        assert await proxy.call("disarm", {}) == "disarmed"
        err = await failure(moving)
        return err, driver.log, list(driver.hooks), proxy.safety

    err, log, hooks, safety = run(scenario, durations={"move_to": 5.0})
    assert (err.code, err.command) == ("not_armed", "move_to")
    assert err.message == "move_to was stopped: arm was disarmed"
    assert log == [(0.0, "start", "move_to"), (0.5, "cancelled", "move_to")]
    assert hooks[-1] == "disarm" and safety == "disarmed"


def test_an_emergency_stop_reported_by_the_driver_stops_every_command():
    async def scenario(proxy, driver):
        changes, reported = [], []
        proxy.on_safety(lambda old, new: changes.append(new))
        proxy.on_error(reported.append)
        moving = asyncio.create_task(proxy.call("move_to", {"target": HOME}))
        gripping = asyncio.create_task(proxy.call("close_gripper", {}))
        await asyncio.sleep(0.25)
        driver.handle.report_safety("fault", "emergency stop pressed")
        errors = [await failure(moving), await failure(gripping)]
        return [(e.code, e.message) for e in errors], list(changes), list(driver.hooks), proxy.safety, reported

    errors, changes, hooks, safety, reported = run(scenario)
    assert reported == ["emergency stop pressed"]
    assert errors == [
        ("not_armed", "move_to was stopped: arm went to fault"),
        ("not_armed", "close_gripper was stopped: arm went to fault"),
    ]
    assert changes == ["fault"] and safety == "fault"
    assert "disarm" not in hooks  # the robot stopped itself; close() disarms at the end


def test_a_driver_that_swallows_the_stop_still_fails_the_command():
    class Sloppy(ScriptedArm):
        async def home(self):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                pass
            return HOME

    async def main():
        async with RobotProxy(ARM, "arm", Sloppy) as proxy:
            await proxy.call("arm", {})
            homing = asyncio.create_task(proxy.call("home", {}))
            await asyncio.sleep(1)
            await proxy.call("disarm", {})
            return (await failure(homing)).code

    assert run_virtual(main()) == "not_armed"


def test_a_failing_disarm_hook_leaves_the_robot_in_fault():
    class Broken(ScriptedArm):
        async def disarm(self):
            raise OSError("controller not answering")

    async def main():
        proxy = RobotProxy(ARM, "arm", Broken)
        await proxy.start()
        await proxy.call("arm", {})
        err = await failure(proxy.call("disarm", {}))
        safety = proxy.safety
        await failure(proxy.close())
        return err.message, safety

    assert run_virtual(main()) == ("disarm failed: controller not answering", "fault")


def test_commands_queued_behind_a_motion_are_refused_once_disarmed():
    async def scenario(proxy, driver):
        first = asyncio.create_task(proxy.call("home", {}))
        second = asyncio.create_task(proxy.call("move_to", {"target": HOME}))
        await asyncio.sleep(0.1)
        await proxy.call("disarm", {})
        return [(await failure(first)).code, (await failure(second)).code], driver.log

    codes, log = run(scenario)
    assert codes == ["not_armed", "not_armed"]
    assert [entry[2] for entry in log] == ["home", "home"]  # move_to never reached the driver


# --- waiting for states and events ----------------------------------------------------


def test_wait_state_returns_at_once_when_already_there():
    async def scenario(proxy, driver):
        return await proxy.wait_state(("idle",)), now()

    assert run(scenario) == ("idle", 0.0)


def test_wait_state_waits_until_the_robot_enters_a_state():
    async def scenario(proxy, driver):
        driver.handle.set_state("busy")
        asyncio.get_running_loop().call_later(2.0, driver.handle.set_state, "idle")
        return await proxy.wait_state(("idle",)), now()

    assert run(scenario) == ("idle", 2.0)


def test_wait_state_subscribes_before_it_checks_and_never_misses_a_short_visit():
    # bb_reactor's race: a waiter that checks and then subscribes (with a yield in
    # between), or re-checks the state when woken, misses a state that is entered
    # and left at once. Here the waiter gets one turn to look, then idle blips by.
    async def scenario(proxy, driver):
        driver.handle.set_state("busy")
        order = []
        proxy.on_state(lambda old, new: order.append(new))
        waiting = asyncio.create_task(asyncio.wait_for(proxy.wait_state(("idle",)), 5.0))
        await asyncio.sleep(0)  # wait_for starts the waiter
        await asyncio.sleep(0)  # the waiter has looked (busy) and is listening
        driver.handle.set_state("idle")
        driver.handle.set_state("busy")
        return await waiting, order, now()

    assert run(scenario) == ("idle", ["idle", "busy"], 0.0)


def test_wait_state_rejects_undeclared_states():
    async def scenario(proxy, driver):
        with pytest.raises(ValueError, match="no state sleeping"):
            await proxy.wait_state(("sleeping",))

    run(scenario)


def test_wait_event_returns_the_first_matching_event_published_after_the_call():
    async def scenario(proxy, driver):
        publish = driver.handle.publish
        publish("force", {"newtons": 99.0})  # before the call: not seen
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, publish, "force", {"newtons": 2.0})
        loop.call_later(2.0, publish, "force", {"newtons": 12})
        loop.call_later(3.0, publish, "force", {"newtons": 15.0})
        data = await proxy.wait_event("force", lambda d: d["newtons"] > 5.0)
        return data, now()

    assert run(scenario) == ({"newtons": 12.0}, 2.0)


def test_wait_event_passes_on_a_failing_predicate():
    async def scenario(proxy, driver):
        asyncio.get_running_loop().call_later(1.0, driver.handle.publish, "force", {"newtons": 1.0})
        with pytest.raises(ZeroDivisionError):
            await proxy.wait_event("force", lambda d: 1 / 0)

    run(scenario)


def test_events_are_checked_against_their_declaration():
    async def scenario(proxy, driver):
        with pytest.raises(ValueError, match="declares no event 'torque'"):
            driver.handle.publish("torque", 1.0)
        with pytest.raises(ValueError, match="newtons: expected float"):
            driver.handle.publish("force", {"newtons": "lots"})

    run(scenario)


def test_state_event_and_error_callbacks_can_unsubscribe():
    async def scenario(proxy, driver):
        seen = []
        stop_state = proxy.on_state(lambda old, new: seen.append(("state", old, new)))
        stop_event = proxy.on_event(lambda name, data: seen.append(("event", name, data)))
        stop_error = proxy.on_error(lambda message: seen.append(("error", message)))
        driver.handle.set_state("busy")
        driver.handle.set_state("busy")  # no change, no callback
        driver.handle.publish("force", {"newtons": 1})
        driver.handle.report_error("gripper camera lost")
        for stop in (stop_state, stop_event, stop_error):
            stop()
        driver.handle.set_state("idle")
        driver.handle.publish("force", {"newtons": 2})
        driver.handle.report_error("again")
        return seen

    assert run(scenario) == [
        ("state", "idle", "busy"),
        ("event", "force", {"newtons": 1.0}),
        ("error", "gripper camera lost"),
    ]


def test_reports_from_a_driver_thread_are_handed_to_the_loop():
    async def scenario(proxy, driver):
        waiting = asyncio.create_task(proxy.wait_event("force"))
        await asyncio.sleep(0)
        await asyncio.to_thread(driver.handle.publish, "force", {"newtons": 4.0})
        return await waiting

    assert run(scenario) == {"newtons": 4.0}


# --- lifetime -------------------------------------------------------------------------


def test_a_driver_that_does_not_implement_the_interface_is_refused_at_start():
    class Partial(Driver):
        async def move_to(self, target, speed):
            return target

    async def main():
        with pytest.raises(DriverError, match="missing command home"):
            await RobotProxy(ARM, "arm", Partial).start()

    run_virtual(main())


def test_a_driver_that_cannot_be_created_is_a_driver_error():
    def factory(handle, options):
        raise OSError("no route to 10.0.0.7")

    async def main():
        with pytest.raises(DriverError, match="could not be created: no route to 10.0.0.7"):
            await RobotProxy(ARM, "arm", factory).start()

    run_virtual(main())


def test_a_command_named_like_a_hook_is_a_command():
    spec = robot([command("disconnect", [], POSE)])

    class Plug(Driver):
        calls = 0

        async def disconnect(self):
            Plug.calls += 1
            return HOME

    async def main():
        async with RobotProxy(spec, "arm", Plug) as proxy:
            await proxy.call("arm", {})
            return await proxy.call("disconnect", {})

    assert run_virtual(main()) == HOME
    assert Plug.calls == 1  # called as the command, not again as the shutdown hook


def test_calls_before_start_are_a_programming_error():
    async def main():
        with pytest.raises(RuntimeError, match="not running"):
            await RobotProxy(ARM, "arm", ScriptedArm).call("arm", {})

    run_virtual(main())


def test_grip_values_travel_as_member_names():
    async def scenario(proxy, driver):
        return await proxy.call("close_gripper", {"force": 10})

    assert run(scenario) == "closed" and "closed" in GRIP.members


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(1, 3),
    calls=st.lists(
        st.tuples(st.sampled_from(["home", "move_to", "close_gripper"]), st.integers(1, 50), st.integers(0, 30)),
        min_size=1,
        max_size=8,
    ),
)
def test_a_category_never_has_more_commands_at_the_driver_than_its_limit(limit, calls):
    """Whatever mix, durations and start times: never more than ``limit`` motions at once, none lost."""
    spec = robot(list(ARM.commands.values()), limits=(("motion", limit),))
    active = {"motion": 0, "peak": 0}

    class Counting(ScriptedArm):
        async def _do(self, name, result):
            motion = self.handle.robot.commands[name].category == "motion"
            active["motion"] += motion
            active["peak"] = max(active["peak"], active["motion"])
            try:
                return await super()._do(name, result)
            finally:
                active["motion"] -= motion

    async def main():
        async with RobotProxy(spec, "arm", Counting) as proxy:
            await proxy.call("arm", {})
            proxy.driver.durations = {}

            async def one(name, ms, start_ms):
                await asyncio.sleep(start_ms / 1000)
                proxy.driver.durations[name] = ms / 1000
                return await proxy.call(name, {"target": HOME} if name == "move_to" else {})

            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(*call)) for call in calls]
            return [t.result() for t in tasks]

    results = run_virtual(main())
    motions = sum(1 for name, _, _ in calls if name != "close_gripper")
    assert active["peak"] <= limit and active["motion"] == 0
    assert (active["peak"] >= 1) == (motions > 0)
    assert len(results) == len(calls)


# --- what a careless driver returns, and what never reaches one -----------------------------------


def test_a_driver_exception_without_a_message_is_named_by_its_type():
    class Broken(ScriptedArm):
        async def arm(self):
            raise ConnectionResetError()

        async def disarm(self):
            raise TimeoutError()

    async def main():
        proxy = RobotProxy(ARM, "arm", Broken, options={"errors": {"home": ValueError()}})
        await proxy.start()
        refused = await failure(proxy.call("arm", {}))
        proxy._set_safety("armed")  # as if the arm hook had worked
        failed = await failure(proxy.call("home", {}))
        stuck = await failure(proxy.call("disarm", {}))
        await failure(proxy.close())
        return refused.message, failed.message, stuck.message

    assert run_virtual(main()) == ("arm failed: ConnectionResetError; disarming after it failed too: TimeoutError",
                                   "home failed: ValueError", "disarm failed: TimeoutError")


def test_an_int_too_large_for_a_float_is_a_bad_result_not_a_crash():
    async def scenario(proxy, driver):
        return await failure(proxy.call("read_force", {}))

    err = run(scenario, results={"read_force": 10**400})
    assert (err.code, err.command) == ("result", "read_force")
    assert err.message == "read_force returned a bad result: expected float, got int of about 401 digits"


@pytest.mark.parametrize(("target", "where"), [
    ({"x": float("nan"), "y": 0.0, "z": 0.0}, "target.x"),
    ({"x": 0.0, "y": float("-inf"), "z": 0.0}, "target.y"),
])
def test_nan_and_infinity_never_reach_the_driver(target, where):
    async def scenario(proxy, driver):
        err = await failure(proxy.call("move_to", {"target": target}))
        speed = await failure(proxy.call("move_to", {"target": HOME, "speed": float("inf")}))
        return err, speed.message, driver.log

    err, speed, log = run(scenario)
    assert (err.code, err.command) == ("command", "move_to")
    assert err.message == f"move_to: bad argument {where}: NaN and infinite numbers are never sent to a robot"
    assert speed == "move_to: bad argument speed: NaN and infinite numbers are never sent to a robot"
    assert log == []


def test_a_command_that_blocks_the_event_loop_is_reported_naming_it():
    class Sleepy(ScriptedArm):
        async def home(self):
            time.sleep(0.02)  # the mistake: a blocking call in an async def
            return HOME

    async def main():
        async with RobotProxy(ARM, "arm", Sleepy, blocking=0.01) as proxy:
            errors = []
            proxy.on_error(errors.append)
            await proxy.call("arm", {})
            assert await proxy.call("home", {}) == HOME  # still its result
            await proxy.call("read_force", {})  # awaits a (virtual) second: does not block
            return errors, proxy.blocked

    errors, blocked = run_virtual(main())
    assert len(errors) == 1 and errors == blocked
    assert errors[0].startswith("home held the event loop for ")
    assert errors[0].endswith("without yielding: nothing else ran meanwhile, not even its timeout; a driver must "
                              "not block (time.sleep, blocking I/O): await, or run blocking calls in a thread "
                              "(asyncio.to_thread)")


def test_a_driver_made_by_a_factory_that_takes_the_wrong_parameters_fails_the_command():
    class Renamed(ScriptedArm):
        async def move_to(self, goal, speed):  # not checked: a factory function is not a class
            return goal

    async def main():
        async with RobotProxy(ARM, "arm", lambda handle, options: Renamed(handle, options)) as proxy:
            await proxy.call("arm", {})
            return await failure(proxy.call("move_to", {"target": HOME}))

    err = run_virtual(main())
    assert (err.code, err.command) == ("command", "move_to")
    assert err.message.startswith("move_to failed: ") and "unexpected keyword argument 'target'" in err.message


@pytest.mark.parametrize(("raised", "said"), [(SystemExit(5), "SystemExit(5)"),
                                               (KeyboardInterrupt(), "KeyboardInterrupt")])
def test_a_driver_that_exits_fails_its_command_and_the_robot_stays_in_hand(raised, said):
    async def scenario(proxy, driver):
        err = await failure(proxy.call("home", {}))
        return err, proxy.safety, await proxy.call("read_force", {})

    err, safety, force = run(scenario, errors={"home": raised})
    assert (err.code, err.command) == ("command", "home")
    assert err.message == f"home failed: the driver raised {said} (a driver fails by raising an Exception)"
    assert safety == "armed" and force == 3.0


def test_reconnecting_gives_up_on_a_disconnect_that_hangs_on_the_dead_link():
    class DeadLink(ScriptedArm):
        async def disconnect(self):
            self.hooks.append("disconnect")
            await asyncio.sleep(3600)  # waits for an answer from a controller that is gone

        async def connect(self):
            self.hooks.append("connect")

    async def main():
        proxy = RobotProxy(ARM, "arm", DeadLink, stop_grace=2.0)
        await proxy.start()
        await proxy.call("arm", {})
        proxy.driver.handle.connection_lost("socket closed")
        started = now()
        await proxy.reconnect()
        took = now() - started
        return took, list(proxy.driver.hooks), proxy.safety

    took, hooks, safety = run_virtual(main())
    assert took <= 4.0 and hooks == ["connect", "arm", "disconnect", "connect"] and safety == "disarmed"


class NeverConnects(ScriptedArm):
    async def connect(self):
        self.hooks.append("connect")
        try:
            await asyncio.sleep(3600)  # a TCP connect to an address that never answers, without a timeout
        except asyncio.CancelledError:
            self.hooks.append("connect cancelled")
            raise


def test_a_connect_that_never_answers_fails_the_start_after_connect_timeout():
    async def main():
        proxy = RobotProxy(ARM, "arm", NeverConnects, connect_timeout=10.0)
        started = now()
        with pytest.raises(DriverError) as info:
            await proxy.start()
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        return str(info.value), now() - started, proxy.driver.hooks

    message, took, hooks = run_virtual(main())
    assert message == ("robot arm: the driver did not connect within 10s (connect_timeout in [robot.arm]); "
                       "given up")
    assert took == pytest.approx(10.0) and hooks == ["connect", "connect cancelled"]


def test_a_connect_that_swallows_the_cancel_is_given_up_on_after_the_stop_grace():
    class Stubborn(ScriptedArm):
        async def connect(self):
            while True:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(3600)

    async def main():
        proxy = RobotProxy(ARM, "arm", Stubborn, connect_timeout=5.0, stop_grace=1.0)
        started = now()
        with pytest.raises(DriverError, match="did not connect within 5s"):
            await proxy.start()
        return now() - started

    assert run_virtual(main(), grace=1.0) == pytest.approx(6.0)


def test_a_reconnect_that_never_answers_fails_after_connect_timeout():
    class ConnectsOnce(NeverConnects):
        async def connect(self):
            if self.hooks:
                await super().connect()
            else:
                self.hooks.append("connect")

    async def main():
        proxy = RobotProxy(ARM, "arm", ConnectsOnce, connect_timeout=3.0)
        await proxy.start()
        proxy.driver.handle.connection_lost("socket closed")
        with pytest.raises(DriverError, match="did not reconnect within 3s"):
            await proxy.reconnect()
        return proxy.driver.hooks, proxy.safety

    hooks, safety = run_virtual(main())
    assert hooks == ["connect", "disconnect", "connect", "connect cancelled"] and safety == "fault"


def test_cancelling_a_start_stops_the_connect_in_progress():
    async def main():
        proxy = RobotProxy(ARM, "arm", NeverConnects)
        starting = asyncio.create_task(proxy.start())
        await asyncio.sleep(1.0)
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        return proxy.driver.hooks

    assert run_virtual(main()) == ["connect", "connect cancelled"]



class Composite(ScriptedArm):
    """``home`` is made of other commands, called through the proxy (given it as ``options["proxy"]``)."""

    async def home(self):
        self.hooks.append("home")
        proxy = self.options["proxy"]()
        await proxy.call("open_gripper", {})  # no category: nothing it waits for
        return await proxy.call("move_to", {"target": HOME})  # the motion slot: home holds it


def test_a_driver_that_calls_its_proxy_for_a_command_whose_slot_it_holds_is_refused_at_once():
    """It waited for its own caller's motion slot: for ever, or until move_to's own timeout, which then said
    'move_to timed out after 10s' of a command that never reached the driver."""
    async def main():
        proxy = RobotProxy(ARM, "arm", Composite, options={"proxy": lambda: proxy})
        await proxy.start()
        await proxy.call("arm", {})
        started = now()
        with pytest.raises(RuntimeFailure) as info:
            await proxy.call("home", {})
        took = now() - started
        moved = await proxy.call("move_to", {"target": HOME})  # nothing is left holding the slot
        await proxy.close()
        return info.value, took, moved, [what for _, what, name in proxy.driver.log if name == "move_to"]

    failure, took, moved, move_to = run_virtual(main())
    assert failure.message == ("move_to refused: the driver called it from inside its own home, which holds the "
                               "motion slot of arm (limit motion 1): it would wait for itself for ever; a driver "
                               "does a command's work itself")
    assert took == pytest.approx(1.0) and moved == HOME and move_to == ["start", "end"]  # open_gripper: 1s



def test_a_task_a_driver_left_behind_may_call_its_proxy_once_the_command_that_made_it_has_ended():
    class Follows(ScriptedArm):
        async def home(self):
            self.later = asyncio.get_running_loop().create_task(self._then_move())
            return HOME

        async def _then_move(self):
            await asyncio.sleep(1.0)  # home has ended: its motion slot is free
            return await self.options["proxy"]().call("move_to", {"target": HOME})

    async def main():
        proxy = RobotProxy(ARM, "arm", Follows, options={"proxy": lambda: proxy})
        await proxy.start()
        await proxy.call("arm", {})
        await proxy.call("home", {})
        moved = await proxy.driver.later
        await proxy.close()
        return moved

    assert run_virtual(main()) == HOME
def test_what_a_driver_commands_through_its_proxy_is_journaled_as_part_of_its_command():
    """The journal's record of a step's command (``JOURNALED``) reached the commands the driver made inside it:
    their intent replaced the step's, whose own then never got its result (in doubt in the journal)."""
    class Nested(ScriptedArm):
        async def home(self):
            await self.options["proxy"]().call("open_gripper", {})
            return HOME

    class Recorded:
        def __init__(self):
            self.seen = []

        async def before(self, target, args):
            self.seen.append(("intent", target))

        def succeeded(self, value):
            self.seen.append(("result", value))

        def failed(self, failure):
            self.seen.append(("failed", failure.code))

    async def main():
        proxy = RobotProxy(ARM, "arm", Nested, options={"proxy": lambda: proxy})
        await proxy.start()
        await proxy.call("arm", {})
        recorded = Recorded()
        token = JOURNALED.set(recorded)
        try:
            await proxy.call("home", {})
        finally:
            JOURNALED.reset(token)
        await proxy.close()
        return recorded.seen

    assert run_virtual(main()) == [("intent", "home"), ("result", HOME)]


def test_a_connect_or_constructor_that_fails_without_a_message_is_named_by_its_exception():
    """A driver that gives its connect a timeout of its own (asyncio.timeout) raises TimeoutError(), whose text
    is empty: the start failed with 'the driver could not connect: ' and nothing after it."""
    class TimesOut(ScriptedArm):
        async def connect(self):
            async with asyncio.timeout(5.0):
                await asyncio.sleep(3600)

    class Unbuilt(ScriptedArm):
        def __init__(self, handle, options):
            raise ConnectionRefusedError()

    async def main():
        messages = []
        for factory in (TimesOut, Unbuilt):
            with pytest.raises(DriverError) as info:
                await RobotProxy(ARM, "arm", factory).start()
            messages.append(str(info.value))
        return messages

    assert run_virtual(main()) == ["robot arm: the driver could not connect: TimeoutError",
                                   "robot arm: the driver could not be created: ConnectionRefusedError"]


@pytest.mark.parametrize("where", ["__init__", "connect"])
def test_a_driver_that_exits_as_it_is_made_or_connects_fails_the_start(where):
    """A vendor library's sys.exit() in the connect hook, raised in the hook's task, stopped the event loop:
    'bbflow run' said 'interrupted' and exited 1 with the library's text; in the constructor, likewise."""
    class Exits(ScriptedArm):
        def __init__(self, handle, options):
            super().__init__(handle, options)
            if where == "__init__":
                sys.exit("vendor SDK: no licence")

        async def connect(self):
            sys.exit("vendor SDK: no licence")

    async def main():
        with pytest.raises(DriverError) as info:
            await RobotProxy(ARM, "arm", Exits).start()
        return str(info.value)

    said = "the driver raised SystemExit(vendor SDK: no licence) (a driver fails by raising an Exception)"
    assert run_virtual(main()) == (f"robot arm: the driver could not be created: {said}" if where == "__init__" else
                                   f"robot arm: the driver could not connect: {said}")
