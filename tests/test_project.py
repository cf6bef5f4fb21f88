"""bbflow.toml: the project model, its defaults, and errors that name file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bbflow.project import AgentConfig, ProjectError, RobotConfig, find_project, load_project

FULL = """\
[project]
name = "cell"
source = "flows"

[robot.arm]
interface = "cell.arm.Arm"
driver = "sim"

[robot.arm.sim]
duration = "20ms"

[robot.arm.sim.commands.read_force]
result = 7.5

[[robot.arm.sim.events]]
after = "close_gripper"
event = "force"
data = {newtons = 12.0}

[robot.left]
interface = "cell.arm.Arm"
driver = "cell_drivers.arm:ArmDriver"
arm = true

[agent.Picker]
robot = "left"

[run]
agents = ["cell.picker.Picker"]
"""


def test_a_python_driver_s_own_settings_come_from_its_options_table(tmp_path: Path) -> None:
    toml = '[robot.arm]\ninterface = "Arm"\ndriver = "toy_arm:ToyArm"\n[robot.arm.options]\nmax_speed = 0.8\n'
    robot = load_project(make(tmp_path, toml, source=None)).robots["arm"]
    assert robot.options == {"max_speed": 0.8} and robot.sim == {}


def make(tmp_path: Path, toml: str, source: str | None = "flows") -> Path:
    (tmp_path / "bbflow.toml").write_text(toml)
    if source:
        (tmp_path / source).mkdir(exist_ok=True)
    return tmp_path


def test_full_project(tmp_path: Path) -> None:
    project = load_project(make(tmp_path, FULL))
    assert project.name == "cell"
    assert project.root == tmp_path.resolve()
    assert project.source_dir == (tmp_path / "flows").resolve()
    assert project.file == tmp_path.resolve() / "bbflow.toml"
    arm = project.robots["arm"]
    assert arm == RobotConfig("cell.arm.Arm", "sim", False, arm.sim)
    assert arm.is_sim
    assert arm.sim["duration"] == "20ms"
    assert arm.sim["commands"]["read_force"]["result"] == 7.5
    assert arm.sim["events"][0] == {"after": "close_gripper", "event": "force", "data": {"newtons": 12.0}}
    left = project.robots["left"]
    assert (left.driver, left.arm, left.is_sim) == ("cell_drivers.arm:ArmDriver", True, False)
    assert project.agents == {"Picker": AgentConfig("left")}
    assert project.run_agents == ("cell.picker.Picker",)


def test_defaults(tmp_path: Path) -> None:
    folder = tmp_path / "mycell"
    folder.mkdir()
    project = load_project(make(folder, '[robot.arm]\ninterface = "Arm"\n', source=None))
    assert project.name == "mycell"
    assert project.source_dir == folder.resolve()
    assert project.robots["arm"] == RobotConfig("Arm")
    assert project.agents == {}
    assert project.run_agents == ()


def test_load_from_the_toml_file_itself(tmp_path: Path) -> None:
    assert load_project(make(tmp_path, FULL) / "bbflow.toml").name == "cell"


@pytest.mark.parametrize(
    ("toml", "key", "problem"),
    [
        ('[project]\nname = 3\nsource = "flows"', "project.name", "expected a non-empty string, found an integer"),
        ('[project]\nsource = "nowhere"', "project.source", "does not exist"),
        ('[project]\nsorce = "flows"', "project.sorce", "unknown key"),
        ('[robot.arm]\ndriver = "sim"', "robot.arm.interface", "missing (required"),
        ('[robot.arm]\ninterfce = "Arm"', "robot.arm.interfce", "unknown key"),
        ('[robot.arm]\ninterface = "Arm"\narm = "yes"', "robot.arm.arm", "expected true or false"),
        ('[robot.arm]\ninterface = "Arm"\ndriver = "mydriver"', "robot.arm.driver", "package.module:Class"),
        ('[robot.arm]\ninterface = "Arm"\nsim = 3', "robot.arm.sim", "expected a table"),
        ('[robot.arm]\ninterface = "Arm"\noptions = 3', "robot.arm.options", "expected a table"),
        ('[robot.arm]\ninterface = "Arm"\n[robot.arm.toy]\nspeed = 1', "robot.arm.toy", "unknown key"),
        ('robot = 3', "robot", "expected a table"),
        ('[agent.Picker]\nrobot = "right"', "agent.Picker.robot", "no robot instance 'right'"),
        ('[run]\nagents = "cell.Picker"', "run.agents", "expected a list"),
        ('[runn]\nagents = []', "runn", "unknown key"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, toml: str, key: str, problem: str) -> None:
    make(tmp_path, toml)
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'bbflow.toml'}: {key}: ")
    assert problem in message


def test_invalid_toml(tmp_path: Path) -> None:
    make(tmp_path, "[project\nname = 1")
    with pytest.raises(ProjectError, match=r"bbflow.toml: invalid TOML: .*line 1"):
        load_project(tmp_path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="cannot read"):
        load_project(tmp_path)


def test_find_project_walks_up(tmp_path: Path) -> None:
    make(tmp_path, FULL)
    deep = tmp_path / "flows" / "cell"
    deep.mkdir()
    (deep / "arm.flow").write_text("")
    assert find_project(deep / "arm.flow") == tmp_path.resolve()
    assert find_project(deep) == tmp_path.resolve()
    assert find_project(tmp_path) == tmp_path.resolve()


def test_find_project_none(tmp_path: Path) -> None:
    lonely = tmp_path / "a"
    lonely.mkdir()
    assert find_project(lonely) is None


def test_no_compiler_imports() -> None:
    """The runtime imports bbflow.project, so it must not pull in the compiler, lark or networkx."""
    code = ("import sys, bbflow.project; "
            "bad = [m for m in sys.modules if m.startswith(('bbflow.compiler', 'lark', 'networkx'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
