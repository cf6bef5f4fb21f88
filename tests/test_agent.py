"""The agent server and the bus: turns, transactions, non-blocking runs, mailbox, robot signals, idle."""

import asyncio
import contextlib

import pytest
from runtime_fakes import receive_json

from bbflow.runtime import model
from bbflow.runtime.agent import AgentServer, CallRunner
from bbflow.runtime.bus import Bus, RobotSignals
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.signals import STANDARD_SIGNALS, Envelope, SignalCatalog, SignalRejected
from bbflow.runtime.types import ANY, BOOL, FLOAT, INT, STR, Record

POSE = Record((("x", FLOAT), ("y", FLOAT), ("z", FLOAT)))
SIGNALS = (
    model.Signal("pick.requested", Record((("pick", POSE),))),
    model.Signal("pick.completed", Record((("at", POSE),))),
    model.Signal("pick.failed", Record((("reason", STR), ("code", STR)))),
    model.Signal("pick.rejected", Record((("reason", STR),))),
    model.Signal("tick"),
    model.Signal("ping", Record((("n", INT),))),
    model.Signal("poke", ANY),
    *STANDARD_SIGNALS,
    model.Signal("robot.event.force", Record((("newtons", FLOAT),))),
)
PICK = model.ReactorCall("cell.PickAndPlace", lambda s: {"pick": s["req"]["data"]["pick"]})
POSE_A = {"x": 0.2, "y": 0.0, "z": 0.1}


def field(name, rtype, default):
    return model.StateField(name, rtype, lambda _s: default)


def route(pattern, *body, bind=None, when=None, priority=0, index=0):
    return model.Route(pattern=pattern, body=tuple(body), bind=bind, when=when, priority=priority, index=index)


def agent(name, state, *routes, robot=None):
    numbered = tuple(
        model.Route(r.pattern, r.body, r.bind, r.when, r.priority, i, r.line) for i, r in enumerate(routes)
    )
    return model.Agent(name=name, qualname=f"cell.{name}", robot=robot, state=tuple(state), routes=numbered)


def picker():
    """The agent of docs/language.md (agents)."""
    return agent(
        "Picker",
        [field("busy", BOOL, False), field("done", INT, 0)],
        route(
            "pick.requested",
            model.Set("busy", lambda s: True),
            model.Run(
                PICK,
                then=(
                    model.Set("busy", lambda s: False),
                    model.Set("done", lambda s: s["done"] + 1),
                    model.Emit("pick.completed", lambda s: {"at": s["result"]}),
                ),
                else_=(
                    model.Set("busy", lambda s: False),
                    model.Emit("pick.failed", lambda s: {"reason": s["error"]["message"], "code": s["error"]["code"]}),
                ),
            ),
            bind="req",
            when=lambda s: not s["busy"],
        ),
        route("pick.requested", model.Emit("pick.rejected", lambda s: {"reason": "busy"}), priority=-1),
        route("pick.**", priority=-2),  # below the rejecting route, or it would catch the requests
    )


class Recorder:
    """An observer that keeps every event."""

    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def of(self, name, **fields):
        return [e for e in self.events if e["event"] == name and all(e.get(k) == v for k, v in fields.items())]

    def emitted(self):
        return [e["type"] for e in self.events if e["event"] == "signal.emit"]


class FakeRunner:
    """A run CALL whose outcome the test decides: each call waits for its own future."""

    def __init__(self):
        self.calls = []
        self.pending = []

    async def __call__(self, call, args, **_):
        fut = asyncio.get_running_loop().create_future()
        self.calls.append((call, args))
        self.pending.append(fut)
        return await fut


class TimedRunner:
    """A run CALL that takes ``duration`` (virtual) seconds and returns its arguments, or fails."""

    def __init__(self, duration=1.0, fail=None):
        self.duration = duration
        self.fail = fail
        self.calls = 0

    async def __call__(self, call, args, **_):
        self.calls += 1
        await asyncio.sleep(self.duration)
        if self.fail is not None:
            raise self.fail
        return args.get("pick", args)


def make_bus():
    rec = Recorder()
    return Bus(SignalCatalog.of(*SIGNALS), observer=rec), rec


def send(bus, signal_type, data=None, source="/test"):
    bus.receive(Envelope(type=signal_type, source=source, data=data))


@contextlib.asynccontextmanager
async def serving(*servers):
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def settle():
    """Until every task waits: virtual time moves only then (nothing else has a timer here)."""
    await asyncio.sleep(0.001)


# --- dispatch ------------------------------------------------------------------------


def test_picker_runs_then_reports_completion():
    async def main():
        bus, rec = make_bus()
        server = AgentServer(picker(), bus, runner=TimedRunner())
        async with serving(server):
            send(bus, "pick.requested", {"pick": POSE_A})
            await bus.wait_idle()
        return server, rec

    server, rec = run_virtual(main())
    assert server.state == {"busy": False, "done": 1}
    assert rec.emitted() == ["pick.completed"]
    assert rec.of("signal.emit")[0]["data"] == {"at": POSE_A}
    assert rec.of("signal.routed", type="pick.requested")[0]["route"] == "pick.requested"
    assert rec.of("signal.routed", type="pick.completed")[0]["route"] == "pick.**"
    assert not rec.of("agent.error")


def test_single_handler_first_route_whose_when_holds():
    async def main():
        bus, rec = make_bus()
        runner = FakeRunner()
        server = AgentServer(picker(), bus, runner=runner)
        async with serving(server):
            send(bus, "pick.requested", {"pick": POSE_A})
            send(bus, "pick.requested", {"pick": POSE_A})
            await settle()
            state_while_running = dict(server.state)
            runner.pending[0].set_result(POSE_A)
            await bus.wait_idle()
        return server, rec, runner, state_while_running

    server, rec, runner, during = run_virtual(main())
    assert len(runner.calls) == 1  # the second request was rejected, not run
    assert during == {"busy": True, "done": 0}
    assert rec.emitted() == ["pick.rejected", "pick.completed"]
    assert server.state == {"busy": False, "done": 1}


def test_unmatched_signal_and_no_guard_holding_are_counted_drops():
    async def main():
        bus, rec = make_bus()
        a = agent("A", [], route("ping", when=lambda s: s["p"]["data"]["n"] > 5, bind="p"))
        server = AgentServer(a, bus)
        async with serving(server):
            send(bus, "tick")
            send(bus, "ping", {"n": 1})
            send(bus, "ping", {"n": 9})
            await bus.wait_idle()
        return server, rec, bus

    server, rec, bus = run_virtual(main())
    assert server.stats.dropped_unmatched == 1 and server.stats.handled == 1
    reasons = [(e["type"], e["reason"], e["unrouted"]) for e in rec.of("signal.dropped")]
    assert reasons == [("tick", "no agent routes it", True), ("ping", "no route's `when` holds", True)]
    assert bus.dropped == bus.unrouted == 2


def test_a_drop_is_reported_once_per_signal_and_only_when_no_agent_handles_it():
    """An agent without a route for a signal another agent handles ignores it: no drop. A signal that every
    agent that routes it lets pass (no `when` holds) is one drop, whatever the number of agents."""
    async def main():
        bus, rec = make_bus()
        servers = [AgentServer(agent("A", [], route("ping", when=lambda s: s["p"]["data"]["n"] > 5, bind="p")), bus),
                   AgentServer(agent("B", [], route("ping", when=lambda s: s["p"]["data"]["n"] > 7, bind="p")), bus),
                   AgentServer(agent("C", [], route("tick")), bus)]
        async with serving(*servers):
            for n in (9, 6, 1):
                send(bus, "ping", {"n": n})
            send(bus, "tick")
            await bus.wait_idle()
        return rec, bus

    rec, bus = run_virtual(main())
    assert sorted((e["agent"], e["type"]) for e in rec.of("signal.routed")) == [
        ("A", "ping"), ("A", "ping"), ("B", "ping"), ("C", "tick")]
    assert [(e["type"], e["reason"]) for e in rec.of("signal.dropped")] == [("ping", "no route's `when` holds")]
    assert bus.dropped == 1


def test_a_signal_taken_only_by_a_waiting_step_is_no_drop():
    """A `wait_signal` step handles its signal as a route does: taken by a wait and routed by no agent, it is
    not a drop (nor when the agents that route it let it pass); one the wait's `where` refuses still is."""
    async def main():
        bus, rec = make_bus()
        a = AgentServer(agent("A", [], route("ping", when=lambda s: s["p"]["data"]["n"] > 5, bind="p")), bus)
        async with serving(a):
            for signal_type, data, where in (("tick", None, None), ("ping", {"n": 1}, None),
                                             ("tick", None, lambda b: False)):
                wait = asyncio.ensure_future(bus.waits.wait(signal_type, where))
                await asyncio.sleep(0)  # the step is waiting
                send(bus, signal_type, data)
                await bus.wait_idle()
                if where is None:
                    assert (await wait)["type"] == signal_type
                else:
                    wait.cancel()
        return rec, bus

    rec, bus = run_virtual(main())
    assert [(e["type"], e["reason"]) for e in rec.of("signal.dropped")] == [("tick", "no agent routes it")]
    assert bus.dropped == bus.unrouted == 1


def test_if_statement_takes_the_right_branch():
    async def main():
        bus, _ = make_bus()
        a = agent(
            "A",
            [field("small", INT, 0), field("big", INT, 0)],
            route(
                "ping",
                model.If(
                    lambda s: s["p"]["data"]["n"] > 5,
                    then=(model.Set("big", lambda s: s["big"] + 1),),
                    else_=(model.Set("small", lambda s: s["small"] + 1),),
                ),
                bind="p",
            ),
        )
        server = AgentServer(a, bus)
        async with serving(server):
            for n in (1, 7, 9, 2, 8):
                send(bus, "ping", {"n": n})
            await bus.wait_idle()
        return server.state

    assert run_virtual(main()) == {"small": 2, "big": 3}


def test_a_set_is_visible_to_later_statements_of_the_same_turn():
    async def main():
        bus, rec = make_bus()
        a = agent(
            "A",
            [field("n", INT, 0)],
            route(
                "tick",
                model.Set("n", lambda s: s["n"] + 1),
                model.Emit("ping", lambda s: {"n": s["n"] * 10}),
            ),
            route("ping"),
        )
        server = AgentServer(a, bus)
        async with serving(server):
            send(bus, "tick")
            await bus.wait_idle()
        return rec

    rec = run_virtual(main())
    assert rec.of("signal.emit")[0]["data"] == {"n": 10}


# --- transactions --------------------------------------------------------------------


def failing_agent(bad_stmt):
    return agent(
        "A",
        [field("n", INT, 0), field("label", STR, "start")],
        route("tick", model.Set("n", lambda s: s["n"] + 1), model.Emit("ping", lambda s: {"n": 1}), bad_stmt),
        route("ping", model.Set("label", lambda s: "pinged")),
        route("poke", model.Set("n", lambda s: 100)),
    )


@pytest.mark.parametrize(
    "bad_stmt, words",
    [
        (model.Set("label", lambda s: s["nothing"], line=7), "KeyError"),
        (model.Set("label", lambda s: 42), "set label: label: expected str, got int 42"),
        (model.Emit("pick.failed", lambda s: {"reason": 1, "code": "x"}), "emit pick.failed: bad data: data.reason"),
        (model.Schedule("pick.failed", 1.0, lambda s: {}), "schedule pick.failed"),
        (model.If(lambda s: 1 / 0, then=()), "if: division by zero"),
        (model.Set("ghost", lambda s: 1), "no state field 'ghost'"),
        (model.Emit("pick.exploded"), "undeclared signal type"),
    ],
    ids=["expression", "set-type", "emit-data", "schedule-data", "if-cond", "unknown-field", "undeclared-emit"],
)
def test_a_failing_handler_leaves_state_unchanged_sends_nothing_and_the_agent_goes_on(bad_stmt, words):
    async def main():
        bus, rec = make_bus()
        server = AgentServer(failing_agent(bad_stmt), bus)
        async with serving(server):
            send(bus, "tick")
            await bus.wait_idle()
            after_failure = dict(server.state)
            send(bus, "poke", "x")
            await bus.wait_idle()
        return server, rec, after_failure

    server, rec, after_failure = run_virtual(main())
    assert after_failure == {"n": 0, "label": "start"}
    assert rec.emitted() == []  # the emit before the failure was never sent
    (error,) = rec.of("agent.error")
    assert error["agent"] == "A" and error["route"] == "tick"
    assert words in error["error"]["message"]
    assert error["error"]["code"] == "expression"
    assert server.stats.errors == 1
    assert server.state["n"] == 100  # the agent went on


def test_a_failing_when_is_an_agent_error():
    async def main():
        bus, rec = make_bus()
        a = agent("A", [], route("tick", when=lambda s: s["missing"]), route("tick", model.Emit("ping", lambda s: {"n": 1})))
        server = AgentServer(a, bus)
        async with serving(server):
            send(bus, "tick")
            await bus.wait_idle()
        return rec

    rec = run_virtual(main())
    assert "when: KeyError" in rec.of("agent.error")[0]["error"]["message"]
    assert rec.emitted() == []


# --- runs ----------------------------------------------------------------------------


def test_run_does_not_block_the_agent():
    async def main():
        bus, rec = make_bus()
        runner = FakeRunner()
        a = agent(
            "A",
            [field("ticks", INT, 0), field("result", ANY, None)],
            route("pick.requested", model.Run(PICK, then=(model.Set("result", lambda s: s["result"]),)), bind="req"),
            route("tick", model.Set("ticks", lambda s: s["ticks"] + 1)),
        )
        server = AgentServer(a, bus, runner=runner)
        async with serving(server):
            send(bus, "pick.requested", {"pick": POSE_A})
            for _ in range(5):
                send(bus, "tick")
            await settle()
            during = (dict(server.state), server.stats.runs_in_flight, bus.activity.count)
            runner.pending[0].set_result("placed")
            await bus.wait_idle()
        return server, during, runner

    server, (state, in_flight, activity), runner = run_virtual(main())
    assert state == {"ticks": 5, "result": None}  # five turns ran while the run was in flight
    assert in_flight == 1 and activity == 1  # only the run is left
    assert runner.calls[0][1] == {"pick": POSE_A}
    assert server.state == {"ticks": 5, "result": "placed"}
    assert server.stats.runs_in_flight == 0


def test_else_turn_sees_error_and_the_binding_of_the_starting_route():
    async def main():
        bus, rec = make_bus()
        seen = []
        a = agent(
            "A",
            [],
            route(
                "pick.requested",
                model.Run(
                    PICK,
                    else_=(
                        model.Emit(
                            "pick.failed",
                            lambda s: seen.append(s["req"]["data"]) or {"reason": s["error"]["message"], "code": s["error"]["code"]},
                        ),
                    ),
                ),
                bind="req",
            ),
            route("pick.failed"),
        )
        server = AgentServer(a, bus, runner=TimedRunner(fail=RuntimeFailure("jammed", "command")))
        async with serving(server):
            send(bus, "pick.requested", {"pick": POSE_A})
            await bus.wait_idle()
        return rec, seen

    rec, seen = run_virtual(main())
    assert rec.of("signal.emit")[0]["data"] == {"reason": "jammed", "code": "command"}
    assert seen == [{"pick": POSE_A}]


def test_a_crashing_runner_becomes_an_else_with_code_internal():
    async def main():
        bus, rec = make_bus()
        server = AgentServer(picker(), bus, runner=TimedRunner(fail=ValueError("boom")))
        async with serving(server):
            send(bus, "pick.requested", {"pick": POSE_A})
            await bus.wait_idle()
        return server, rec

    server, rec = run_virtual(main())
    assert rec.of("signal.emit")[0]["data"] == {"reason": "boom", "code": "internal"}
    assert server.state == {"busy": False, "done": 0}


def test_a_failed_turn_starts_no_run():
    async def main():
        bus, _ = make_bus()
        runner = TimedRunner()
        a = agent("A", [], route("tick", model.Run(model.ReactorCall("R", lambda s: {})), model.Set("ghost", lambda s: 1)))
        server = AgentServer(a, bus, runner=runner)
        async with serving(server):
            send(bus, "tick")
            await bus.wait_idle()
        return runner, server

    runner, server = run_virtual(main())
    assert runner.calls == 0 and server.stats.runs_started == 0


def test_stopping_the_agent_cancels_runs_in_flight():
    async def main():
        bus, _ = make_bus()
        cancelled = []

        async def runner(call, args, **_):
            try:
                await asyncio.sleep(100)
            except asyncio.CancelledError:
                cancelled.append(call)
                raise

        server = AgentServer(picker(), bus, runner=runner)
        async with serving(server):
            send(bus, "pick.requested", {"pick": POSE_A})
            await asyncio.sleep(1)
        return cancelled, bus.activity.count, server.stats.runs_in_flight

    cancelled, activity, in_flight = run_virtual(main())
    assert cancelled == [PICK]
    assert activity == 0 and in_flight == 0


# --- schedule ------------------------------------------------------------------------


def test_schedule_publishes_later_and_is_cancelled_when_the_agent_stops():
    async def main():
        bus, rec = make_bus()
        a = agent(
            "A",
            [field("pings", INT, 0)],
            route("tick", model.Schedule("ping", 5.0, lambda s: {"n": 1})),
            route("poke", model.Schedule("ping", 50.0, lambda s: {"n": 2})),
            route("ping", model.Set("pings", lambda s: s["pings"] + 1)),
        )
        server = AgentServer(a, bus)
        loop = asyncio.get_running_loop()
        async with serving(server):
            send(bus, "tick")
            await bus.wait_idle()
            idle_at = loop.time()
            pings = server.state["pings"]
            send(bus, "poke", 0)
            await asyncio.sleep(10)
        return rec, idle_at, pings, bus.activity.count

    rec, idle_at, pings, activity = run_virtual(main())
    assert idle_at == 5.0  # not idle while the signal was scheduled
    assert pings == 1
    assert [e["data"] for e in rec.of("signal.emit")] == [{"n": 1}]  # the 50 s one was cancelled
    assert activity == 0


# --- mailbox -------------------------------------------------------------------------


def test_mailbox_overflow_is_counted_and_reported():
    async def main():
        bus, rec = make_bus()
        a = agent("A", [field("n", INT, 0)], route("tick", model.Set("n", lambda s: s["n"] + 1)))
        server = AgentServer(a, bus, mailbox_size=3)
        for _ in range(5):  # not served yet: the mailbox fills
            send(bus, "tick")
        depth = server.queue_depth
        async with serving(server):
            await bus.wait_idle()
        return server, rec, depth

    server, rec, depth = run_virtual(main())
    assert depth == 3
    assert server.stats.dropped_overflow == 2
    assert [e["reason"] for e in rec.of("signal.dropped")] == ["the mailbox of A is full (3)"] * 2
    assert server.state == {"n": 3}


def test_a_long_mailbox_does_not_starve_the_loop():
    async def main():
        bus, _ = make_bus()
        a = agent("A", [field("n", INT, 0)], route("tick", model.Set("n", lambda s: s["n"] + 1)))
        server = AgentServer(a, bus)
        seen = []
        async with serving(server):
            for _ in range(100):
                send(bus, "tick")
            while server.state["n"] < 100:
                await asyncio.sleep(0)  # this task gets turns while the agent works through its mailbox
                seen.append(server.state["n"])
        return seen

    seen = run_virtual(main())
    assert any(0 < n < 100 for n in seen)


def test_run_outcomes_are_never_dropped_by_a_full_mailbox():
    async def main():
        bus, _ = make_bus()
        runner = FakeRunner()
        a = agent(
            "A",
            [field("done", BOOL, False)],
            route("pick.requested", model.Run(PICK, then=(model.Set("done", lambda s: True),)), bind="req"),
            route("tick"),
        )
        server = AgentServer(a, bus, runner=runner, mailbox_size=2)
        async with serving(server):
            send(bus, "pick.requested", {"pick": POSE_A})
            await settle()
            server.mailbox.offer(Envelope(type="tick", source="/t"))  # fill it behind the bus's back
            server.mailbox.offer(Envelope(type="tick", source="/t"))
            bus.activity.begin()
            bus.activity.begin()
            runner.pending[0].set_result(1)
            await bus.wait_idle()
        return server

    assert run_virtual(main()).state == {"done": True}


# --- the bus -------------------------------------------------------------------------


def test_emit_reaches_every_agent_including_the_sender():
    async def main():
        bus, rec = make_bus()
        counting = [field("n", INT, 0)]
        a = AgentServer(agent("A", counting, route("tick", model.Emit("ping", lambda s: {"n": 1})), route("ping", model.Set("n", lambda s: s["n"] + 1))), bus)
        b = AgentServer(agent("B", counting, route("ping", model.Set("n", lambda s: s["n"] + 1))), bus)
        async with serving(a, b):
            send(bus, "tick")
            await bus.wait_idle()
        return a, b, rec

    a, b, rec = run_virtual(main())
    assert a.state == {"n": 1} and b.state == {"n": 1}
    assert rec.of("signal.emit")[0]["agent"] == "A"


class FakePort:
    """A robot port with the callbacks a driver would fire."""

    def __init__(self, instance):
        self.instance = instance
        self.spec = model.Robot(
            name="Arm",
            qualname="cell.Arm",
            states=("idle", "busy"),
            limits=(),
            commands={"home": model.Command("home", (), POSE, timeout=3.0)},
            events={"force": model.Event("force", Record((("newtons", FLOAT),)))},
        )
        self.safety = "disarmed"
        self.state = "idle"
        self.callbacks = {"safety": [], "state": [], "event": [], "error": []}
        self.calls = []

    def _subscribe(self, kind, cb):
        self.callbacks[kind].append(cb)
        return lambda: self.callbacks[kind].remove(cb)

    def on_safety(self, cb):
        return self._subscribe("safety", cb)

    def on_state(self, cb):
        return self._subscribe("state", cb)

    def on_event(self, cb):
        return self._subscribe("event", cb)

    def on_error(self, cb):
        return self._subscribe("error", cb)

    def fire(self, kind, *args):
        for cb in list(self.callbacks[kind]):
            cb(*args)

    async def call(self, command, kwargs, *, timeout=None):
        self.calls.append((command, kwargs, timeout))
        if command == "explode":
            raise RuntimeFailure("driver says no", "command", command=command)
        return {"x": 0.0, "y": 0.0, "z": 0.0}


def test_robot_signals_reach_only_agents_bound_to_that_robot():
    async def main():
        bus, rec = make_bus()
        seen = {}

        def watcher(name, instance):
            seen[name] = []
            a = agent(
                name,
                [],
                route("robot.**", model.Emit("poke", lambda s, n=name: seen[n].append((s["r"]["type"], s["r"]["source"], s["r"]["data"])) or n), bind="r"),
                route("poke"),
            )
            return AgentServer(a, bus, robot_instance=instance)

        left, right, free = watcher("Left", "left"), watcher("Right", "right"), watcher("Free", None)
        left_port, right_port = FakePort("left"), FakePort("right")
        disconnect = RobotSignals(bus, left_port).connect()
        RobotSignals(bus, right_port).connect()
        async with serving(left, right, free):
            left_port.fire("safety", "disarmed", "armed")
            right_port.fire("state", "idle", "busy")
            left_port.fire("event", "force", {"newtons": 12})
            left_port.fire("error", "gripper overheated")
            left_port.fire("event", "force", {"newtons": "a lot"})  # bad data: dropped
            left_port.fire("event", "smell", {})  # undeclared event: dropped
            await bus.wait_idle()
            disconnect()
            left_port.fire("safety", "armed", "fault")  # no longer connected
            await bus.wait_idle()
        return seen, rec

    seen, rec = run_virtual(main())
    assert seen["Left"] == [
        ("robot.safety.changed", "/robot/left", {"from": "disarmed", "to": "armed"}),
        ("robot.event.force", "/robot/left", {"newtons": 12.0}),
        ("robot.error", "/robot/left", {"message": "gripper overheated"}),
    ]
    assert seen["Right"] == [("robot.state.changed", "/robot/right", {"from": "idle", "to": "busy"})]
    assert seen["Free"] == []
    dropped = rec.of("signal.dropped", type="robot.event.force")
    assert len(dropped) == 1 and "data.newtons" in dropped[0]["reason"]
    assert rec.of("signal.dropped", type="robot.event.smell")
    assert [e["type"] for e in rec.of("signal.in")][:1] == ["robot.safety.changed"]


def test_robot_signal_from_outside_is_refused_at_the_door():
    bus, rec = make_bus()
    receive_json(bus, {"type": "robot.error", "source": "/test", "data": {"message": "x"}})
    receive_json(bus, {"type": "robot.error", "source": "/robot/arm", "data": {"message": "x"}})
    assert bus.dropped == 2
    assert all("only the robot's own driver" in e["reason"] for e in rec.of("signal.dropped"))
    assert not rec.of("signal.in")


def test_receive_json_drops_bad_data_and_raises_on_non_signals():
    async def main():
        bus, rec = make_bus()
        server = AgentServer(picker(), bus, runner=TimedRunner())
        async with serving(server):
            assert receive_json(bus, {"type": "pick.requested", "data": {"pick": "over there"}}) is None
            with pytest.raises(SignalRejected):
                receive_json(bus, ["not", "a", "signal"])
            env = receive_json(bus, {"type": "pick.requested", "data": {"pick": POSE_A}})
            await bus.wait_idle()
        return rec, env

    rec, env = run_virtual(main())
    (dropped,) = rec.of("signal.dropped")
    assert dropped["type"] == "pick.requested" and "data.pick" in dropped["reason"]
    assert rec.of("signal.in")[0]["data"] == {"pick": POSE_A}
    assert env.source == "/stdin"
    assert rec.emitted() == ["pick.completed"]


# --- idle ----------------------------------------------------------------------------


def test_wait_idle_covers_a_run_whose_then_emits_a_signal():
    async def main():
        bus, _ = make_bus()
        a = agent(
            "A",
            [field("chain", INT, 0)],
            route("pick.requested", model.Run(PICK, then=(model.Emit("tick"),)), bind="req"),
            route("tick", model.Schedule("ping", 2.0, lambda s: {"n": 1})),
            route("ping", model.Set("chain", lambda s: s["chain"] + 1)),
        )
        server = AgentServer(a, bus, runner=TimedRunner(duration=3.0))
        loop = asyncio.get_running_loop()
        async with serving(server):
            send(bus, "pick.requested", {"pick": POSE_A})
            await bus.wait_idle()
            return server.state, loop.time()

    state, t = run_virtual(main())
    assert state == {"chain": 1}
    assert t == 5.0


def test_wait_idle_returns_at_once_when_nothing_happens():
    async def main():
        bus, _ = make_bus()
        await bus.wait_idle()
        return bus.activity.count

    assert run_virtual(main()) == 0


# --- running a CALL ------------------------------------------------------------------


class Result:
    def __init__(self, status, value=None, error=None):
        self.status, self.value, self.error = status, value, error


def runner_program():
    program = model.Program()
    program.add(model.Action("locate", "cell.locate", (), POSE, "cell.vision:locate"))
    program.add(model.Action("crash", "cell.crash", (), None, "cell.vision:crash"))
    program.add(model.Action("liar", "cell.liar", (), INT, "cell.vision:liar"))
    program.add(model.Reactor("PickAndPlace", "cell.PickAndPlace", (), POSE, "cell.Arm", model.Body(())))
    return program


def call_runner(status="ok", port=None):
    async def run_reactor(program, reactor, inputs, *, robot=None, observer=None, actions=None):
        return {
            "ok": Result("ok", value={"placed": inputs}),
            "failed": Result("failed", error=RuntimeFailure("jammed", "command")),
            "halted": Result("halted", error=RuntimeFailure("robot disarmed", "halted")),
        }[status]

    async def locate():
        return {"x": 1, "y": 2, "z": 3}

    def crash():
        raise OSError("camera gone")

    targets = {"cell.vision:locate": locate, "cell.vision:crash": crash, "cell.vision:liar": lambda: "seven"}
    return CallRunner(runner_program(), run_reactor=run_reactor, robot=port, actions=targets.__getitem__)


def test_call_runner_reactor_outcomes():
    async def main(status):
        try:
            return await call_runner(status)(model.ReactorCall("PickAndPlace", None), {"a": 1})
        except RuntimeFailure as f:
            return (f.message, f.code)

    assert run_virtual(main("ok")) == {"placed": {"a": 1}}
    assert run_virtual(main("failed")) == ("jammed", "command")
    assert run_virtual(main("halted")) == ("robot disarmed", "halted")


def test_call_runner_actions_and_commands():
    async def main():
        port = FakePort("arm")
        runner = call_runner(port=port)
        out = [await runner(model.ActionCall("locate", None), {})]
        for name in ("crash", "liar"):
            with pytest.raises(RuntimeFailure) as info:
                await runner(model.ActionCall(name, None), {})
            out.append((info.value.code, info.value.message))
        out.append(await runner(model.CommandCall("home", None), {}))
        out.append(port.calls)
        with pytest.raises(RuntimeFailure) as info:
            await call_runner()(model.CommandCall("home", None), {})
        out.append(info.value.code)
        return out

    located, crash, liar, homed, calls, no_robot = run_virtual(main())
    assert located == {"x": 1.0, "y": 2.0, "z": 3.0}
    assert crash == ("action", "action crash: camera gone")  # worded as a reactor's step says it
    assert liar == ("result", "action liar returned a bad value: expected int, got str 'seven'")
    assert homed == {"x": 0.0, "y": 0.0, "z": 0.0}
    assert calls == [("home", {}, 3.0)]
    assert no_robot == "state"


def test_an_agent_runs_a_real_reactor_through_the_executor():
    program = model.Program()
    program.add(model.Action("double", "cell.double", (model.Param("x", INT),), INT, "cell.math:double", pure=True))
    program.add(
        model.Reactor(
            "Double",
            "cell.Double",
            (model.Param("x", INT),),
            INT,
            None,
            model.Body(
                (model.Step("d", model.ActionCall("cell.double", lambda s: {"x": s["x"]})),),
                model.Return(lambda s: s["d"]),
            ),
        )
    )

    async def double(x):
        await asyncio.sleep(1)
        return x * 2

    async def main():
        bus, rec = make_bus()
        a = agent(
            "A",
            [field("last", INT, 0)],
            route(
                "ping",
                model.Run(model.ReactorCall("cell.Double", lambda s: {"x": s["p"]["data"]["n"]}), then=(model.Set("last", lambda s: s["result"]),)),
                bind="p",
            ),
        )
        runner = CallRunner(program, actions={"cell.math:double": double}.__getitem__, observer=rec)
        server = AgentServer(a, bus, runner=runner)
        async with serving(server):
            send(bus, "ping", {"n": 21})
            await bus.wait_idle()
        return server, rec

    server, rec = run_virtual(main())
    assert server.state == {"last": 42}
    assert [e["event"] for e in rec.events if e["event"].startswith("run.")] == ["run.start", "run.ok"]


def test_a_run_begins_before_the_next_turn_even_in_a_burst():
    """Signals queued together behave as if they had come apart: the run a turn
    starts is under way (its runner called) before the agent takes the next signal."""

    async def main():
        bus, rec = make_bus()
        order = []

        async def runner(call, args, **_):
            order.append("run begins")
            await asyncio.sleep(1.0)
            return args["pick"]

        server = AgentServer(picker(), bus, runner=runner)
        bus.observer = lambda e: (order.append(e["type"]) if e["event"] == "signal.emit" else None, rec(e))
        send(bus, "pick.requested", {"pick": POSE_A})
        send(bus, "pick.requested", {"pick": POSE_A})
        async with serving(server):
            await bus.wait_idle()
        return order

    assert run_virtual(main()) == ["run begins", "pick.rejected", "pick.completed"]
