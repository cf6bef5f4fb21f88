"""Loading drivers ("sim", "module:Class", entry points) and the worked example of docs/drivers.md."""

import asyncio
import importlib.metadata
import sys
import textwrap
from pathlib import Path

import pytest
from arm_spec import ARM

from bbflow.project import load_project
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.driver import DriverError
from bbflow.runtime.driver_check import check_driver
from bbflow.runtime.drivers import ENTRY_POINT_GROUP, load_driver, open_robot
from bbflow.runtime.faults import parse_faults
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.run_plan import robot_table
from bbflow.runtime.sim import SimDriver

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "drivers"

TOY_DRIVER = '''
from bbflow.runtime.driver import Driver

class Gripperless(Driver):
    async def move_to(self, target, speed):
        return target

    async def close_gripper(self, force):
        return "closed"

    async def open_gripper(self):
        return "open"

    async def home(self):
        return {"x": 0.0, "y": 0.0, "z": 1.0}

    async def read_force(self):
        return 42.0

NOT_A_DRIVER = 3
'''


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """A throwaway distribution on sys.path: a module and a dist-info advertising its driver."""
    (tmp_path / "toy_drivers.py").write_text(TOY_DRIVER)
    info = tmp_path / "toy_drivers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-drivers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [{ENTRY_POINT_GROUP}]
            gripperless = toy_drivers:Gripperless
            broken = toy_drivers:Missing
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("toy_drivers", None)


def test_sim_is_built_in():
    assert load_driver("sim") is SimDriver


def test_a_driver_by_module_and_class(toy_package):
    cls = load_driver("toy_drivers:Gripperless")
    assert cls.__name__ == "Gripperless" and check_driver(cls, ARM) == []


def test_a_driver_by_entry_point(toy_package):
    names = [p.name for p in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    assert "gripperless" in names
    cls = load_driver("gripperless")
    assert cls.__module__ == "toy_drivers" and cls.__name__ == "Gripperless"


def test_a_robot_runs_on_a_driver_found_by_entry_point(toy_package):
    async def main():
        async with open_robot("arm", ARM, {"interface": "cell.Arm", "driver": "gripperless"}) as proxy:
            await proxy.call("arm", {})
            return type(proxy.driver).__name__, await proxy.call("read_force", {}), await proxy.call("home", {})

    assert run_virtual(main()) == ("Gripperless", 42.0, {"x": 0.0, "y": 0.0, "z": 1.0})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_module:Driver", "driver 'no_such_module:Driver': cannot import no_such_module"),
        ("toy_drivers:Nope", "driver 'toy_drivers:Nope': toy_drivers has no Nope"),
        ("toy_drivers:", 'driver \'toy_drivers:\': expected "package.module:Class"'),
        ("toy_drivers:NOT_A_DRIVER", "driver 'toy_drivers:NOT_A_DRIVER' is not a class: 3"),
        ("ur5", "no driver named 'ur5' (installed: "),
        ("broken", "driver 'broken' (toy_drivers:Missing) cannot be loaded"),
    ],
)
def test_drivers_that_cannot_be_found_are_clear_errors(toy_package, name, message):
    with pytest.raises(DriverError) as info:
        load_driver(name)
    assert str(info.value).startswith(message)
    if name == "ur5":  # the installed names are listed, to help with a typo
        assert "gripperless" in str(info.value) and 'or write "package.module:Class"' in str(info.value)


@pytest.mark.parametrize(("source", "message"), [
    ("def broken(:\n    pass\n", "driver 'bad_arm:Arm': cannot import bad_arm: SyntaxError: invalid syntax"),
    ('raise RuntimeError("no licence server")\n',
     "driver 'bad_arm:Arm': cannot import bad_arm: RuntimeError: no licence server"),
])
def test_a_driver_module_that_fails_as_it_is_imported_is_a_clear_error(tmp_path, monkeypatch, source, message):
    """Only an ImportError was caught: a syntax error in the driver's module, or a vendor library that raises at
    import, was a traceback from ``bbflow run``."""
    (tmp_path / "bad_arm.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(DriverError) as info:
            load_driver("bad_arm:Arm")
    finally:
        sys.modules.pop("bad_arm", None)
    assert str(info.value).startswith(message)


def test_the_driver_defaults_to_sim_and_can_be_overridden(toy_package):
    async def driver_of(table, **override):
        async with open_robot("arm", ARM, table, **override) as proxy:
            return type(proxy.driver)

    assert run_virtual(driver_of({})) is SimDriver
    assert run_virtual(driver_of({"driver": "gripperless"})).__name__ == "Gripperless"
    assert run_virtual(driver_of({"driver": "gripperless"}, driver="sim")) is SimDriver
    with pytest.raises(DriverError, match="robot.arm.driver: expected a driver name"):
        open_robot("arm", ARM, {"driver": 7})


def test_open_robot_passes_the_table_and_the_faults():
    table = {"driver": "sim", "sim": {"commands": {"read_force": {"result": 7.5}}}}
    faults = parse_faults({"fault": [{"command": "home", "error": "blocked"}]})

    async def main():
        async with open_robot("arm", ARM, table, faults=faults) as proxy:
            await proxy.call("arm", {})
            force = await proxy.call("read_force", {})
            with pytest.raises(RuntimeFailure, match="home failed: blocked"):
                await proxy.call("home", {})
            return force, proxy.driver.options is not table

    assert run_virtual(main()) == (7.5, True)


# --- the worked example of docs/drivers.md ----------------------------------------------


@pytest.fixture
def toy_arm(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield load_driver("toy_arm:ToyArm")
    sys.modules.pop("toy_arm", None)


def test_the_example_driver_implements_the_arm(toy_arm):
    assert check_driver(toy_arm, ARM) == []


def test_the_example_driver_picks_a_part(toy_arm):
    pick = {"x": 0.3, "y": 0.4, "z": 0.5}

    async def main():
        table = {"driver": "toy_arm:ToyArm", "toy": {"max_speed": 1.0}}
        async with open_robot("arm", ARM, table) as proxy:
            states = []
            proxy.on_state(lambda old, new: states.append(new))
            driver = proxy.driver
            assert driver.connected
            await proxy.call("arm", {})
            t0 = asyncio.get_running_loop().time()
            at = await proxy.call("move_to", {"target": pick, "speed": 1.0})
            travel = asyncio.get_running_loop().time() - t0
            felt = asyncio.create_task(proxy.wait_event("force", lambda d: d["newtons"] > 5.0))
            grip = await proxy.call("close_gripper", {"force": 15.0})
            newtons = (await felt)["newtons"]
            force = await proxy.call("read_force", {})
            home = await proxy.call("home", {})
        return at, round(travel, 6), grip, newtons, force, home, states, driver.powered, driver.connected

    at, travel, grip, newtons, force, home, states, powered, connected = run_virtual(main())
    assert at == pick
    assert travel == 0.5  # 0.5 m at 1 m/s, in 10 ms ticks
    assert (grip, newtons, force) == ("closed", 15.0, 15.0)
    assert home == {"x": 0.0, "y": 0.0, "z": 0.5}
    assert states == ["busy", "idle", "busy", "idle"]
    assert (powered, connected) == (False, False)  # closing disarmed and disconnected it


def test_the_example_driver_stops_where_it_is_when_disarmed(toy_arm):
    async def main():
        async with open_robot("arm", ARM, {"driver": "toy_arm:ToyArm"}) as proxy:
            await proxy.call("arm", {})
            moving = asyncio.create_task(proxy.call("move_to", {"target": {"x": 1.0, "y": 0.0, "z": 0.5}, "speed": 1.0}))
            await asyncio.sleep(0.25)
            await proxy.call("disarm", {})
            with pytest.raises(RuntimeFailure) as info:
                await moving
            await asyncio.sleep(1.0)
            return info.value.code, proxy.driver.position["x"], proxy.state, proxy.driver.powered

    code, x, state, powered = run_virtual(main())
    assert code == "not_armed"
    assert 0.2 <= x <= 0.3 and state == "idle" and not powered


def test_the_example_driver_refuses_a_bad_speed(toy_arm):
    async def main():
        async with open_robot("arm", ARM, {"driver": "toy_arm:ToyArm"}) as proxy:
            await proxy.call("arm", {})
            with pytest.raises(RuntimeFailure) as info:
                await proxy.call("move_to", {"target": {"x": 1.0, "y": 0.0, "z": 0.5}, "speed": 2.0})
            return info.value.to_json()

    assert run_virtual(main()) == {
        "message": "move_to failed: speed must be in (0, 1], got 2.0",
        "code": "command",
        "command": "move_to",
    }


def test_a_robots_connect_timeout_comes_from_its_table(tmp_path):
    (tmp_path / "bbflow.toml").write_text('[robot.arm]\ninterface = "cell.Arm"\nconnect_timeout = "2.5s"\n')
    project = load_project(tmp_path)
    assert open_robot("arm", ARM, robot_table(project.robots["arm"], project)).connect_timeout == 2.5
    assert open_robot("arm", ARM, {}).connect_timeout == 30.0
    with pytest.raises(DriverError, match="robot.arm.connect_timeout: expected a duration above 0, got '0s'"):
        open_robot("arm", ARM, {"connect_timeout": "0s"})
