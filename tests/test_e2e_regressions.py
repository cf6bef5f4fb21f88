"""Regressions found by the end-to-end tests (tests/test_e2e_properties.py, tests/test_e2e_agents.py),
each pinned on the real chain: .flow source -> compiler -> loader -> executor -> RobotProxy -> sim."""

from __future__ import annotations

from bbflow.runtime.faults import Fault
from e2e_flows import ROBOT, Generated, StepInfo, build, run_on_sim


def _generated(body: str, steps: dict[str, StepInfo], faults: tuple[Fault, ...], n: int = 0) -> Generated:
    source = ROBOT + "\nreactor Main(n: int) -> int on R {\n" + body + "    return n\n}\n"
    return Generated(source, {k: v.deps for k, v in steps.items()}, steps, {"n": n}, faults, {})


def test_a_disarm_fault_leaves_no_command_running_when_the_run_halts() -> None:
    # The disarm cancels the run while the proxy itself is pulling the plug: the proxy used to
    # return without awaiting the command's task, so the driver was still "moving" afterwards.
    gen = _generated(
        "    step s1 = m0(v: n) timeout 50ms undo back(v: s1)\n"
        "    step s2 = m0(v: n) after s1 undo back(v: s2)\n",
        {"s1": StepInfo("s1", "s1", set(), True), "s2": StepInfo("s2", "s2", {"s1"}, True)},
        (Fault(1, "m0", 1, disarm=True),),
    )
    out = run_on_sim(build(gen.source), gen)
    assert out.result.status == "halted"
    assert out.driver.active["motion"] == 0
    assert out.inflight_left == 0
    assert out.tasks_left == 0


def test_a_command_that_declares_no_result_is_none_in_the_flow_whatever_its_driver_returns() -> None:
    """The checker types such a step ``none``; the generated model took the command's result as ``any``, so
    whatever the driver returned (a vendor SDK's status object) went into the flow: ``str(b)`` then failed
    with Python's "Object of type object is not JSON serializable"."""
    from typing import Any

    from bbflow.runtime.clock import run_virtual
    from bbflow.runtime.executor import run_reactor
    from bbflow.runtime.proxy import RobotProxy
    from bbflow.runtime.sim import SimDriver

    program = build("robot Beeper {\n    command beep()\n}\n"
                    "reactor Main() -> str on Beeper {\n    step b = beep()\n    let s = str(b)\n    return s\n}\n")

    class Chatty(SimDriver):
        async def run_command(self, name: str, kwargs: dict[str, Any]) -> Any:
            await super().run_command(name, kwargs)
            return object()

    async def main() -> Any:
        async with RobotProxy(program.find("robots", "Beeper"), "beeper", Chatty, options={}) as proxy:
            await proxy.call("arm", {})
            return await run_reactor(program, "Main", {}, robot=proxy, run_id="root")

    result = run_virtual(main())
    assert (result.status, result.value) == ("ok", "none"), result
