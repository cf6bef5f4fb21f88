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
