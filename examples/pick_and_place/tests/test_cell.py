"""The example cell's own tests, with bbflow's pytest plugin (the `flow` fixture): run with `pytest` here."""

from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PICK = {"x": 0.2, "y": 0.0, "z": 0.1}
PLACE = {"x": 0.0, "y": 0.3, "z": 0.1}


def test_a_pick_places_the_part(flow):
    run = flow.project(PROJECT).run_reactor("PickAndPlace", pick=PICK, place=PLACE)
    assert run.ok and run.result == PLACE
    run.events.assert_completed("ready", "approach", "grip", "gripped", "lift", "placed", "release")
    run.events.assert_undone()


def test_a_jammed_gripper_sends_the_arm_home(flow):
    run = flow.project(PROJECT).run_reactor("PickAndPlace", pick=PICK, place=PLACE,
                                            faults=[{"command": "close_gripper", "error": "jammed"}])
    assert run.failed and "jammed" in run.summary
    run.events.assert_undone("approach")


def test_a_lost_grip_during_the_move_is_rolled_back_in_reverse(flow):
    faults = [{"command": "move_to", "call": 3, "error": "collision"}]  # the third move: placing the part
    run = flow.project(PROJECT).run_reactor("PickAndPlace", pick=PICK, place=PLACE, faults=faults)
    assert run.failed
    run.events.assert_undone("lift", "grip", "approach")


def test_the_picker_takes_one_request_at_a_time(flow):
    request = {"type": "pick.requested", "source": "/test", "data": {"pick": PICK, "place": PLACE}}
    run = flow.project(PROJECT).run_agents(request, request)
    assert run.ok
    assert run.events.emitted("pick.completed") == [{"at": PLACE}]
    assert run.events.emitted("pick.rejected") == [{"reason": "busy"}]


def test_a_slow_arm_times_out_without_waiting(flow):
    faults = [{"command": "move_to", "delay": "1h"}]  # every move hangs; the 10 s timeout fires on the virtual clock
    run = flow.project(PROJECT).run_reactor("PickAndPlace", pick=PICK, place=PLACE, faults=faults)
    assert run.failed and "timed out" in run.summary
    assert [e["attempt"] for e in run.events.named("step.error") if e["step"] == "approach"] == [1, 2, 3]
