"""Supervision: strategies, restart policies, intensity, escalation to a safe stop, and agents under it."""

import asyncio

import pytest

from bbflow.runtime import model
from bbflow.runtime.agent import AgentServer
from bbflow.runtime.bus import Bus
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.signals import Envelope, SignalCatalog
from bbflow.runtime.supervisor import Child, GaveUp, Restart, Strategy, Supervisor, disarm_all, service_child
from bbflow.runtime.types import INT


class Log:
    def __init__(self):
        self.lines = []

    def __call__(self, line):
        self.lines.append(line)


def worker(log, name, *, crash_after=None, crashes=1, exit_after=None):
    """A child that logs starts and stops; crashes ``crashes`` times after ``crash_after`` seconds."""
    state = {"crashes": 0}

    async def run():
        log(f"start {name}")
        try:
            if crash_after is not None and state["crashes"] < crashes:
                await asyncio.sleep(crash_after)
                state["crashes"] += 1
                raise RuntimeError(f"{name} broke")
            if exit_after is not None:
                await asyncio.sleep(exit_after)
                log(f"exit {name}")
                return
            await asyncio.sleep(1e9)
        except asyncio.CancelledError:
            log(f"stop {name}")
            raise

    return run


async def run_for(supervisor, seconds):
    task = asyncio.create_task(supervisor.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return task


def test_one_for_one_restarts_only_the_failed_child():
    log = Log()
    sup = Supervisor("root", [Child("a", worker(log, "a", crash_after=1)), Child("b", worker(log, "b"))])
    run_virtual(run_for(sup, 10))
    assert log.lines == ["start a", "start b", "start a", "stop b", "stop a"]
    assert sup.restarts == 1


def test_one_for_all_restarts_every_child():
    log = Log()
    children = [Child("a", worker(log, "a")), Child("b", worker(log, "b", crash_after=1)), Child("c", worker(log, "c"))]
    sup = Supervisor("root", children, strategy=Strategy.ONE_FOR_ALL)
    run_virtual(run_for(sup, 10))
    assert log.lines == [
        "start a", "start b", "start c",
        "stop c", "stop a",  # the others, in reverse start order
        "start a", "start b", "start c",
        "stop c", "stop b", "stop a",  # the supervisor is cancelled
    ]  # fmt: skip


def test_rest_for_one_restarts_the_failed_child_and_those_after_it():
    log = Log()
    children = [Child("a", worker(log, "a")), Child("b", worker(log, "b", crash_after=1)), Child("c", worker(log, "c"))]
    sup = Supervisor("root", children, strategy=Strategy.REST_FOR_ONE)
    run_virtual(run_for(sup, 10))
    assert log.lines == [
        "start a", "start b", "start c",
        "stop c",
        "start b", "start c",
        "stop c", "stop b", "stop a",
    ]  # fmt: skip


def test_restart_policies():
    log = Log()
    children = [
        Child("perm", worker(log, "perm", exit_after=1), Restart.PERMANENT),
        Child("trans_ok", worker(log, "trans_ok", exit_after=1), Restart.TRANSIENT),
        Child("trans_bad", worker(log, "trans_bad", crash_after=1), Restart.TRANSIENT),
        Child("temp_bad", worker(log, "temp_bad", crash_after=1), Restart.TEMPORARY),
    ]
    sup = Supervisor("root", children, max_restarts=10)
    run_virtual(run_for(sup, 1.5))
    starts = [line.split()[1] for line in log.lines if line.startswith("start")]
    assert starts.count("perm") == 2  # a permanent child that exits is restarted
    assert starts.count("trans_ok") == 1  # a transient one only after a failure
    assert starts.count("trans_bad") == 2
    assert starts.count("temp_bad") == 1  # a temporary one never


def test_a_supervisor_whose_children_all_end_for_good_returns():
    log = Log()
    sup = Supervisor("root", [Child("t", worker(log, "t", exit_after=1), Restart.TRANSIENT)])
    assert run_virtual(sup.run()) is None
    assert log.lines == ["start t", "exit t"]


def test_restart_intensity_exceeded_gives_up_stops_everyone_and_escalates():
    log = Log()
    escalations = []
    events = []

    async def safe_stop(gave_up):
        await asyncio.sleep(0.5)  # the hook may await (disarming takes time)
        escalations.append(gave_up.reason)

    children = [Child("steady", worker(log, "steady")), Child("flaky", worker(log, "flaky", crash_after=0.1, crashes=99))]
    sup = Supervisor("root", children, max_restarts=3, period=5.0, on_give_up=safe_stop, observer=events.append)

    async def main():
        with pytest.raises(GaveUp) as info:
            await sup.run()
        return info.value

    gave_up = run_virtual(main())
    assert log.lines.count("start flaky") == 4  # the first start and three restarts
    assert log.lines[-1] == "stop steady"
    assert escalations == [gave_up.reason]
    assert "child 'flaky' failed: RuntimeError: flaky broke" in gave_up.reason
    assert "3 restarts within 5s" in gave_up.reason
    assert [e["event"] for e in events].count("supervisor.restart") == 3
    assert events[-1]["event"] == "supervisor.gave_up"


def test_failures_spread_out_in_time_stay_within_intensity():
    log = Log()
    sup = Supervisor("root", [Child("slow", worker(log, "slow", crash_after=3.0, crashes=20))], max_restarts=2, period=5.0)
    task = run_virtual(run_for(sup, 29))
    assert task.cancelled()  # it never gave up: at most two failures in any 5 s
    assert sup.restarts == 9


def test_a_child_supervisor_giving_up_escalates_through_the_tree_to_a_safe_stop():
    log = Log()

    class Robot:
        def __init__(self, instance, fail=False):
            self.instance, self.fail, self.calls = instance, fail, []

        async def call(self, command, kwargs, *, timeout=None):
            self.calls.append(command)
            if self.fail:
                raise RuntimeFailure("e-stop wiring", "command")

    robots = [Robot("left", fail=True), Robot("right")]
    disarm_errors = []

    async def safe_stop(gave_up):
        disarm_errors.extend(await disarm_all(robots))

    inner = Supervisor("agents", [Child("bad", worker(log, "bad", crash_after=0.1, crashes=99))], max_restarts=1)
    root = Supervisor("root", [Child("agents", inner.run)], max_restarts=2, on_give_up=safe_stop)

    async def main():
        with pytest.raises(GaveUp) as info:
            await root.run()
        return info.value

    gave_up = run_virtual(main())
    assert gave_up.supervisor == "root" and gave_up.child == "agents"
    assert "supervisor 'agents' gave up" in gave_up.reason
    assert log.lines.count("start bad") == 6  # 3 lives of the inner supervisor, 2 starts each
    assert [r.calls for r in robots] == [["disarm"], ["disarm"]]  # both asked, even after one failed
    assert disarm_errors == ["left: e-stop wiring"]


def test_cancelling_a_supervisor_waits_for_children_to_clean_up():
    cleaned = []

    async def slow_cleanup():
        try:
            await asyncio.sleep(1e9)
        except asyncio.CancelledError:
            await asyncio.sleep(2)  # rolling back takes time
            cleaned.append(asyncio.get_running_loop().time())
            raise

    sup = Supervisor("root", [Child("run", slow_cleanup)])

    async def main():
        task = asyncio.create_task(sup.run())
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task.cancelled(), asyncio.get_running_loop().time()

    cancelled, t = run_virtual(main())
    assert cancelled and cleaned == [3.0] and t == 3.0


def test_service_child_starts_and_stops_the_service():
    log = Log()

    class Service:
        async def start(self):
            log("service start")

        async def stop(self):
            log("service stop")

    sup = Supervisor("root", [service_child("svc", Service())])
    run_virtual(run_for(sup, 1))
    assert log.lines == ["service start", "service stop"]


def test_duplicate_child_names_are_refused():
    with pytest.raises(ValueError):
        Supervisor("root", [Child("a", worker(Log(), "a")), Child("a", worker(Log(), "a"))])


# --- agents under supervision --------------------------------------------------------


def test_a_crashed_agent_restarts_with_its_initial_state_and_keeps_its_mailbox():
    bus = Bus(SignalCatalog.of(model.Signal("tick"), model.Signal("boom")))
    spec = model.Agent(
        name="Counter",
        qualname="cell.Counter",
        robot=None,
        state=(model.StateField("n", INT, lambda s: 0),),
        routes=(
            model.Route("tick", (model.Set("n", lambda s: s["n"] + 1),), index=0),
            model.Route("boom", (), index=1),
        ),
    )
    server = AgentServer(spec, bus)
    real_turn = server.turn

    def turn(item):
        if item.type == "boom":
            raise AssertionError("a bug in the server")  # not a failing handler: the server itself dies
        real_turn(item)

    server.turn = turn
    sup = Supervisor("agents", [Child("Counter", server.serve)])

    async def main():
        task = asyncio.create_task(sup.run())
        for t in ("tick", "tick", "boom", "tick"):
            bus.publish(Envelope(type=t, source="/test"))
        await bus.wait_idle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run_virtual(main())
    assert server.stats.crashes == 1
    assert sup.restarts == 1
    assert server.state == {"n": 1}  # two ticks forgotten with the crash, the queued one handled after it
