"""Guards, lets, switch, map, waits, actions and inputs."""

import asyncio
import math
import sys
import types

import pytest

from bbflow.runtime import model
from bbflow.runtime.actions import ACTION_GRACE, invoke, resolve_action
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.events import Recorder
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.types import ANY, FLOAT, INT, STR, ListOf, Optional
from runtime_fakes import POSE, arm, execute, op, ops, ops_spec, program, reactor, run, steps_of

# --- guards and lets ----------------------------------------------------------------------


def test_a_false_guard_skips_the_step_and_its_dependents_still_run():
    seen = []
    r = reactor(
        op("a", when=lambda s: False),
        model.Step("b", model.CommandCall("op", lambda s: seen.append(s["a"]) or {"tag": "b"}), deps=("a",)),
        op("c", when=lambda s: True),
    )
    result, rec = run(r, ops())
    assert result.status == "ok"
    assert seen == [None]
    assert steps_of(rec, "step.skip") == ["a"]
    assert "a" not in result.completed and "a" not in steps_of(rec, "step.start")


def test_a_skipped_step_is_not_undone():
    robot = ops().cue("op", match={"tag": "c"}, error="boom")
    r = reactor(op("a", when=lambda s: False), op("b", "a"), op("c", "b"))
    run(r, robot)
    assert robot.tags("undo") == ["b"]


def test_a_guard_that_raises_fails_the_run():
    result, _ = run(reactor(op("a", when=lambda s: s["nope"])), ops())
    assert (result.status, result.error.code) == ("failed", "expression")


def test_lets_are_evaluated_when_their_dependencies_are_done():
    r = reactor(
        op("a"),
        model.Let("twice", lambda s: s["a"] * 2, deps=("a",)),
        end=model.Return(lambda s: s["twice"]),
    )
    result, _ = run(r, ops())
    assert result.value == "aa"


def test_a_let_that_raises_fails_the_run_and_rolls_back():
    robot = ops()
    r = reactor(op("a"), model.Let("bad", lambda s: 1 / 0, deps=("a",)), op("b", "bad"))
    result, _ = run(r, robot)
    assert (result.status, result.error.code) == ("failed", "expression")
    assert robot.tags("undo") == ["a"] and robot.tags("op") == ["a"]


def test_a_return_expression_error_fails_the_run():
    result, _ = run(reactor(op("a"), end=model.Return(lambda s: s["a"]["x"])), ops())
    assert result.error.code == "expression"


# --- switch -------------------------------------------------------------------------------


def switch(subject, *, default=True, fail_on=None):
    cases = (
        model.Case(("left",), model.Body((op("go_left"),), model.Return(lambda s: "went left"))),
        model.Case(("right", "back"), model.Body((op("go_right"), op("settle", "go_right")),
                                                 model.Return(lambda s: s["settle"]))),
    )
    if fail_on:
        cases += (model.Case((fail_on,), model.Body((op("try"),), model.Fail("no way"))),)
    body = model.Body((op("fallback_move"),), model.Return(lambda s: "default")) if default else None
    return model.Switch("route", lambda s: subject, cases, body, deps=("start",))


def test_switch_runs_the_first_matching_case_and_takes_its_return():
    r = reactor(op("start"), switch("back"), end=model.Return(lambda s: s["route"]))
    robot = ops()
    result, _ = run(r, robot)
    assert result.value == "settle"
    assert robot.tags("op") == ["start", "go_right", "settle"]


def test_switch_falls_to_default():
    result, _ = run(reactor(op("start"), switch("up"), end=model.Return(lambda s: s["route"])), ops())
    assert result.value == "default"


def test_switch_without_default_and_no_match_fails():
    result, _ = run(reactor(op("start"), switch("up", default=False)), ops())
    assert (result.status, result.error.code) == ("failed", "expression")


def test_a_fail_in_a_case_fails_the_run_and_undoes_the_case_steps_with_the_rest():
    robot = ops()
    result, rec = run(reactor(op("start"), switch("down", fail_on="down")), robot)
    assert (result.status, result.error.code, result.error.message) == ("failed", "fail", "no way")
    assert robot.tags("undo") == ["try", "start"]
    assert result.completed == ("start", "try")


def test_steps_after_a_switch_see_its_value():
    seen = []
    after = model.Step("next", model.CommandCall("op", lambda s: seen.append(s["route"]) or {"tag": "n"}),
                       deps=("route",))
    run(reactor(op("start"), switch("left"), after), ops())
    assert seen == ["went left"]


# --- map ----------------------------------------------------------------------------------


def mapping(items, concurrency=1, body_nodes=None, end=None):
    body = model.Body(
        body_nodes or (model.Step("visit", model.CommandCall("op", lambda s: {"tag": s["p"]}),
                                  undo=model.Undo(model.CommandCall("undo", lambda s: {"tag": s["p"]}))),),
        end or model.Return(lambda s: f"done {s['visit']}"),
    )
    return model.Map("visits", lambda s: items, "p", body, concurrency=concurrency)


def test_map_results_are_in_input_order_whatever_the_completion_order():
    robot = ops().cue("op", match={"tag": 1}, delay=0.05).cue("op", match={"tag": 2}, delay=0.01)
    r = reactor(mapping([1, 2, 3, 4], concurrency=2), end=model.Return(lambda s: s["visits"]))
    result, rec = run(r, robot)
    assert result.value == ["done 1", "done 2", "done 3", "done 4"]
    assert robot.max_in_flight() == 2
    assert [e["index"] for e in rec.named("step.ok")] == [[1], [2], [3], [0]]  # completion order


def test_map_runs_one_element_at_a_time_by_default():
    robot = ops()
    result, _ = run(reactor(mapping(list(range(5))), end=model.Return(lambda s: s["visits"])), robot)
    assert robot.max_in_flight() == 1 and robot.tags("op") == [0, 1, 2, 3, 4]
    assert len(result.value) == 5


def test_map_concurrency_is_also_bounded_by_the_reactor_concurrency():
    robot = ops()
    run(reactor(mapping(list(range(6)), concurrency=5), concurrency=2), robot)
    assert robot.max_in_flight() == 2


def test_map_over_nothing_gives_an_empty_list():
    result, _ = run(reactor(mapping([]), end=model.Return(lambda s: s["visits"])), ops())
    assert result.value == []


def test_a_failing_iteration_stops_the_map_and_undoes_completed_iterations_newest_first():
    robot = ops().cue("op", match={"tag": 3}, error="blocked").cue("op", match={"tag": 4}, delay=1.0)
    r = reactor(op("start"), model.Map("visits", lambda s: [1, 2, 3, 4, 5, 6], "p", mapping([]).body,
                                       concurrency=2, deps=("start",)))
    result, rec = run(r, robot)
    assert result.status == "failed" and result.error.message == "op: blocked"
    assert robot.tags("op") == ["start", 1, 2, 3, 4]  # 5 and 6 never started
    assert robot.tags("undo") == [4, 2, 1, "start"]  # 4 was cut off in flight: it may have moved
    assert [c.outcome for c in robot.calls if c.command == "op" and c.kwargs.get("tag") == 4] == ["cancelled"]


def test_a_map_body_can_fail_on_purpose():
    robot = ops()
    r = reactor(mapping([1, 2], end=model.Fail("not today")))
    result, _ = run(r, robot)
    assert (result.error.code, result.completed) == ("fail", ("visit",))
    assert robot.tags("undo") == [1]


def test_nested_map_in_switch_in_map_scopes():
    inner = model.Map("inner", lambda s: [s["row"] * 10 + k for k in range(2)], "p", mapping([]).body)
    case = model.Case((True,), model.Body((inner,), model.Return(lambda s: s["inner"])))
    sw = model.Switch("pick", lambda s: s["row"] % 2 == 0, (case,), model.Body((), model.Return(lambda s: [])))
    outer = model.Map("rows", lambda s: [0, 1, 2], "row", model.Body((sw,), model.Return(lambda s: s["pick"])),
                      concurrency=3)
    robot = ops()
    result, _ = run(reactor(outer, end=model.Return(lambda s: s["rows"])), robot)
    assert result.value == [["done 0", "done 1"], [], ["done 20", "done 21"]]


# --- waits --------------------------------------------------------------------------------


def test_wait_event_waits_for_a_matching_event_published_after_the_step_starts():
    robot = arm(after={})
    r = model.Reactor("W", "t.W", (), ANY, "cell.Arm", model.Body((
        model.Step("gripped", model.WaitEvent("force", lambda s: s["gripped"]["newtons"] > 5.0)),
    ), model.Return(lambda s: s["gripped"])))

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, robot.publish, "force", {"newtons": 1.0})
        loop.call_later(2.0, robot.publish, "force", {"newtons": 9.0})
        return await execute(r, robot, prog=program(r))

    result, rec = run_virtual(main())
    assert result.value == {"newtons": 9.0}
    assert rec.named("step.ok")[0]["time"] == 2.0


def test_wait_state_is_done_at_once_when_already_there():
    r = model.Reactor("W", "t.W", (), STR, "cell.Arm",
                      model.Body((model.Step("s", model.WaitState(("idle", "busy"))),), model.Return(lambda s: s["s"])))
    result, _ = run(r, arm(), prog=program(r))
    assert result.value == "idle"


def test_wait_state_waits_for_the_state():
    robot = arm()
    robot.set_state("busy")
    r = model.Reactor("W", "t.W", (), STR, "cell.Arm",
                      model.Body((model.Step("s", model.WaitState(("idle",)), timeout=5.0),),
                                 model.Return(lambda s: s["s"])))

    async def main():
        asyncio.get_running_loop().call_later(3.0, robot.set_state, "idle")
        return await execute(r, robot, prog=program(r))

    result, rec = run_virtual(main())
    assert result.value == "idle" and rec.events[-1]["time"] == 3.0


def test_a_where_expression_error_fails_the_attempt():
    robot = arm()
    r = model.Reactor("W", "t.W", (), None, "cell.Arm", model.Body((
        model.Step("grip", model.CommandCall("close_gripper", lambda s: {"force": 1.0})),
        model.Step("gripped", model.WaitEvent("force", lambda s: s["gripped"]["nope"]), deps=("grip",)),
    ), None))
    result, _ = run(r, robot, prog=program(r))
    assert (result.status, result.error.code) == ("failed", "expression")
    assert robot.commands()[-1] == "open_gripper"  # close_gripper's default undo


# --- actions ------------------------------------------------------------------------------


def action_program(r, *actions):
    return program(r, robot=ops_spec(), actions=actions)


def act(name, target, result=None, pure=False):
    return model.Action(name, f"t.{name}", (), result, target, pure)


def action_step(name, action, args=lambda s: {}, **options):
    return model.Step(name, model.ActionCall(f"t.{action}", args), **options)


@pytest.fixture
def plugin_module():
    mod = types.ModuleType("bbflow_test_plugin")
    calls = []

    def locate(color):
        calls.append(color)
        return {"x": 1, "y": 2.5, "z": 0}

    async def plan(n):
        await asyncio.sleep(1.0)
        return n + 1

    def broken():
        raise RuntimeError("camera unplugged")

    mod.locate, mod.plan, mod.broken, mod.calls = locate, plan, broken, calls
    mod.helpers = types.SimpleNamespace(bad=lambda: "not a number")
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]
    resolve_action.cache_clear()


def test_sync_and_async_actions_run_and_results_are_conformed(plugin_module):
    r = reactor(
        action_step("where", "locate", lambda s: {"color": "red"}),
        action_step("next", "plan", lambda s: {"n": 41}, deps=("where",)),
        end=model.Return(lambda s: [s["where"], s["next"]]),
    )
    prog = action_program(r, act("locate", "bbflow_test_plugin:locate", POSE),
                          act("plan", "bbflow_test_plugin:plan", INT))
    result, rec = run(r, ops(), prog=prog)
    assert result.value == [{"x": 1.0, "y": 2.5, "z": 0.0}, 42]  # int widened to float by the Pose type
    assert plugin_module.calls == ["red"]
    assert rec.named("step.ok")[1]["time"] == 1.0


def test_an_action_exception_is_an_action_failure(plugin_module):
    r = reactor(action_step("x", "broken"))
    result, _ = run(r, ops(), prog=action_program(r, act("broken", "bbflow_test_plugin:broken")))
    assert (result.error.code, result.error.message) == ("action", "action broken: camera unplugged")


def _exits(code):
    sys.exit(code)


async def _exits_async():
    sys.exit(4)


def _interrupts():
    raise KeyboardInterrupt


@pytest.mark.parametrize("fn, raised", [
    (lambda: _exits(3), "SystemExit(3)"), (_exits_async, "SystemExit(4)"), (_interrupts, "KeyboardInterrupt")],
    ids=["sys.exit-in-a-thread", "sys.exit-on-the-loop", "KeyboardInterrupt"])
def test_an_action_that_exits_fails_its_step_and_the_run_rolls_back(fn, raised):
    """An action calling sys.exit() (as some vendor libraries do) ended `bbflow run` with a traceback, and the
    move before it was left un-undone."""
    r = reactor(op("m"), action_step("x", "quit", deps=("m",)))
    robot = ops()
    result, _ = run(r, robot, prog=action_program(r, act("quit", "any:where", INT)), actions=lambda target: fn)
    assert (result.error.code, result.error.message) == (
        "action", f"action quit: the action raised {raised} (an action fails by raising an Exception)")
    assert robot.tags("undo") == ["m"]


async def _stubborn():
    while True:  # an async action that swallows its cancellation
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass


def test_an_async_action_that_swallows_its_cancellation_is_left_running_after_a_grace():
    """An async action that would not stop kept its step for ever: its timeout did nothing, and `bbflow run`
    could not be interrupted (only SIGKILL ended it) and never rolled back."""
    r = reactor(op("m"), action_step("q", "stubborn", deps=("m",), timeout=1.0))
    robot = ops()
    prog = action_program(r, act("stubborn", "any:where", INT))

    async def main():
        recorder = Recorder()
        result = await run_reactor(prog, r, {}, robot=robot, observer=recorder, actions=lambda target: _stubborn)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return result, recorder, left

    result, rec, left = run_virtual(main(), grace=1.0)
    assert (result.error.code, result.error.message) == ("timeout", "q timed out after 1s")
    (error,), start = rec.named("step.error"), rec.named("step.start")[-1]
    assert error["time"] - start["time"] == pytest.approx(1.0 + ACTION_GRACE)  # told to stop at 1 s, given up 2 s on
    assert robot.tags("undo") == ["m"]
    assert len(left) == 1  # the action, left running on its own as a thread would be


async def _finishes_anyway():
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.5)
        return 7


def test_an_async_action_that_finishes_as_it_is_cancelled_completes_its_step():
    r = reactor(op("m"), action_step("q", "late", deps=("m",), timeout=1.0), end=model.Return(lambda s: s["q"]))
    result, rec = run(r, ops(), prog=action_program(r, act("late", "any:where", INT)),
                      actions=lambda target: _finishes_anyway)
    assert (result.status, result.value) == ("ok", 7)
    assert rec.named("step.ok")[-1]["time"] - rec.named("step.start")[-1]["time"] == pytest.approx(1.5)


def test_an_action_result_of_the_wrong_type_is_a_result_failure(plugin_module):
    r = reactor(action_step("x", "bad"))
    result, _ = run(r, ops(), prog=action_program(r, act("bad", "bbflow_test_plugin:helpers.bad", FLOAT)))
    assert result.error.code == "result"


@pytest.mark.parametrize("returned, declared, why", [
    (math.nan, FLOAT, "expected a finite float, got float nan"),
    (-math.inf, Optional(FLOAT), "expected a finite float, got float -inf"),
    ({"x": 1.0, "y": math.inf, "z": 0.0}, POSE, "y: expected a finite float, got float inf"),
    ([1, 2, math.nan], ListOf(FLOAT), "[2]: expected a finite float, got float nan"),
    (math.nan, ANY, "expected a finite float, got float nan"),
], ids=["nan", "optional-inf", "record-field", "list-item", "any"])
def test_an_action_that_returns_nan_or_infinity_fails_the_step_naming_the_action(returned, declared, why):
    """An action declared ``-> float`` returned NaN into the flow, where no expression makes one."""
    r = reactor(action_step("x", "sensor", retry=model.Retry(1)), end=model.Return(lambda s: s["x"]))
    result, rec = run(r, ops(), prog=action_program(r, act("sensor", "any:where", declared)),
                      actions=lambda target: lambda: returned)
    assert (result.error.code, result.error.message) == ("result", f"action sensor returned a bad value: {why}")
    assert len(rec.named("step.error")) == 2  # a bad value is a failed attempt, retried like any


def test_an_action_that_declares_no_result_gives_none_whatever_its_function_returns():
    """The checker types the call ``none``: the step's value was the function's raw return instead."""
    r = reactor(action_step("x", "notify"), end=model.Return(lambda s: s["x"] is None))
    result, rec = run(r, ops(), prog=action_program(r, act("notify", "any:where")),
                      actions=lambda target: lambda: {"status": math.nan})
    assert result.value is True
    assert rec.named("step.ok")[0]["result"] is None


def test_a_custom_resolver_is_used_for_actions():
    r = reactor(action_step("x", "thing"), end=model.Return(lambda s: s["x"]))
    looked_up = []

    def resolver(target):
        looked_up.append(target)
        return lambda: "resolved"

    result, _ = run(r, ops(), prog=action_program(r, act("thing", "anything:at_all", STR)), actions=resolver)
    assert (result.value, looked_up) == ("resolved", ["anything:at_all"])


@pytest.mark.parametrize("target, fragment", [
    ("no_colon", "not of the form"),
    ("bbflow_no_such_module_xyz:f", "cannot import"),
    ("os.path:no_such_function", "has no"),
    ("os:sep", "not callable"),
])
def test_resolve_action_explains_bad_targets(target, fragment):
    with pytest.raises(RuntimeFailure, match=fragment) as info:
        resolve_action(target)
    assert info.value.code == "action"


def test_resolve_action_caches_and_invoke_runs_sync_and_async():
    assert resolve_action("os.path:join") is resolve_action("os.path:join")

    async def double(x):
        return 2 * x

    async def main():
        return await invoke(double, {"x": 2}), await invoke(resolve_action("json:dumps"), {"obj": [1]})

    assert run_virtual(main()) == (4, "[1]")


# --- inputs -------------------------------------------------------------------------------


def with_params(*params):
    return reactor(op("a"), params=params, end=model.Return(lambda s: {k: s[k] for k in ("n", "speed", "maybe")
                                                                      if k in s}))


PARAMS = (model.Param("n", INT), model.Param("speed", FLOAT, lambda s: 0.5), model.Param("maybe", Optional(INT)))


def test_inputs_are_conformed_with_defaults_and_optional_nones():
    result, rec = run(with_params(*PARAMS), ops(), {"n": 3})
    assert result.value == {"n": 3, "speed": 0.5, "maybe": None}
    assert rec.events[0]["inputs"] == {"n": 3, "speed": 0.5, "maybe": None}


@pytest.mark.parametrize("inputs, fragment", [
    ({}, "missing input 'n'"),
    ({"n": "three"}, "input n: expected int"),
    ({"n": 1, "colour": "red"}, "no parameter 'colour'"),
    ({"n": 1, "maybe": 1.5}, "input maybe: expected int"),
])
def test_bad_inputs_are_refused_before_the_run_starts(inputs, fragment):
    robot = ops()
    r = with_params(*PARAMS)
    recorder = Recorder()
    with pytest.raises(RuntimeFailure, match=fragment) as info:
        run_virtual(run_reactor(program(r, robot=ops_spec()), r, inputs, robot=robot, observer=recorder))
    assert info.value.code == "input"
    assert robot.calls == [] and recorder.events == []


def test_list_inputs_are_conformed():
    r = reactor(params=(model.Param("xs", ListOf(FLOAT)),), end=model.Return(lambda s: s["xs"]))
    result, _ = run(r, ops(), {"xs": [1, 2.5]})
    assert result.value == [1.0, 2.5]
