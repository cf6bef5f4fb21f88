"""`bbflow check --drivers`: every configured driver against its robot interface (BBF601)."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.cli import main
from bbflow.compiler import pipeline
from codegen_helpers import write_flows

ARM = """\
robot Arm {
    command move_to(target: float, speed: float = 0.5) -> float
    command beep() -> bool
}
"""
TASK = "from cell.arm import Arm\nreactor Beep() -> bool on Arm {\n    step b = beep()\n    return b\n}\n"
MODULE = "bbf601_drivers"
DRIVERS = '''
class Good:
    def __init__(self, handle, options):
        pass

    async def move_to(self, target, speed):
        return target

    async def beep(self):
        return True


class NoBeep(Good):
    beep = None


class Misnamed(Good):
    async def move_to(self, goal, speed):
        return goal
'''
ROBOTS = {
    "good": f"{MODULE}:Good",
    "lacking": f"{MODULE}:NoBeep",
    "misnamed": f"{MODULE}:Misnamed",
    "absent": "bbf601_no_such_package.arm:Driver",
    "simulated": "sim",
}


@pytest.fixture(autouse=True)
def drivers_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The drivers live in ``tmp_path/drivers``, importable; forgotten after each test."""
    folder = tmp_path / "drivers"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(DRIVERS))
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop(MODULE, None)


def project(root: Path, robots: dict[str, str], interface: str = "cell.arm.Arm") -> Path:
    toml = ['[project]\nname = "cell"\nsource = "flows"\n']
    for instance, driver in robots.items():
        toml.append(f'\n[robot.{instance}]\ninterface = "{interface}"\ndriver = "{driver}"\n')
    (root / "bbflow.toml").write_text("".join(toml))
    write_flows(root / "flows", {"cell/arm.flow": ARM, "cell/task.flow": TASK})
    return root


def check(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def bbf601(out: str) -> list[dict[str, object]]:
    return [d for d in json.loads(out)["diagnostics"] if d["code"] == "BBF601"]


def test_each_problem_is_a_bbf601_at_the_robot_declaration(tmp_path: Path) -> None:
    project(tmp_path, ROBOTS)
    code, out, _ = check("--drivers", "--format", "json", str(tmp_path))
    assert code == 1
    found = bbf601(out)
    assert {(d["file"], d["line"], d["column"]) for d in found} == {(str(tmp_path / "flows" / "cell" / "arm.flow"), 1, 7)}
    by_robot = {robot: str(d["message"]) for d in found for robot in ROBOTS if f"robot `{robot}`" in str(d["message"])}
    assert len(found) == 3 and set(by_robot) == {"absent", "lacking", "misnamed"}  # good and simulated are fine
    absent, lacking, misnamed = by_robot["absent"], by_robot["lacking"], by_robot["misnamed"]
    assert absent.startswith("the driver of robot `absent` cannot be imported: ")
    assert "bbf601_no_such_package.arm:Driver" in absent and "cannot import bbf601_no_such_package" in absent
    assert lacking == f"driver `{MODULE}:NoBeep` of robot `lacking`: missing command beep()"
    assert misnamed.startswith(f"driver `{MODULE}:Misnamed` of robot `misnamed`: move_to: parameters differ")
    assert "does not accept target by keyword" in misnamed and "requires undeclared goal" in misnamed


def test_the_text_report_underlines_the_interface_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project(tmp_path, {"lacking": ROBOTS["lacking"]})
    monkeypatch.chdir(tmp_path)
    code, out, err = check("--drivers")
    assert code == 1 and err == "1 error in 2 files\n"
    assert out.startswith(f"error[BBF601]: driver `{MODULE}:NoBeep` of robot `lacking`: missing command beep()\n")
    assert " --> flows/cell/arm.flow:1:7\n" in out and "1 | robot Arm {\n  |       ^~~\n" in out
    assert "= note: robot `lacking` in bbflow.toml uses this interface" in out


def test_good_and_simulated_drivers_pass(tmp_path: Path) -> None:
    project(tmp_path, {"good": ROBOTS["good"], "simulated": "sim"})
    assert check("--drivers", str(tmp_path)) == (0, "", "no problems in 2 files\n")
    assert MODULE in sys.modules  # it was imported and checked, not skipped


def test_without_drivers_nothing_is_imported(tmp_path: Path) -> None:
    project(tmp_path, ROBOTS)
    assert check(str(tmp_path))[0] == 0
    assert MODULE not in sys.modules


def test_driver_problems_are_found_again_when_the_program_is_replayed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project(tmp_path, {"lacking": ROBOTS["lacking"]})
    cold = check("--drivers", str(tmp_path))
    sys.modules.pop(MODULE, None)

    def no_parse_or_check(*args: object, **kwargs: object) -> None:
        raise AssertionError("the program was not replayed")

    monkeypatch.setattr(pipeline, "check", no_parse_or_check)
    warm = check("--drivers", str(tmp_path))
    assert warm == cold and "BBF601" in warm[1] and "arm.flow:1:7" in warm[1]


def test_a_fixed_driver_is_never_reported_from_the_cache(tmp_path: Path, drivers_module: Path) -> None:
    project(tmp_path, {"lacking": ROBOTS["lacking"]})
    assert check("--drivers", str(tmp_path))[0] == 1
    (drivers_module / f"{MODULE}.py").write_text(textwrap.dedent(DRIVERS).replace("    beep = None\n", "    pass\n"))
    sys.modules.pop(MODULE, None)  # a new `bbflow check` process
    assert check("--drivers", str(tmp_path))[0] == 0


def test_a_driver_module_that_fails_while_importing(tmp_path: Path, drivers_module: Path) -> None:
    (drivers_module / "bbf601_broken.py").write_text("raise RuntimeError('no CAN bus')\n")
    project(tmp_path, {"arm": "bbf601_broken:Arm"})
    try:
        code, out, _ = check("--drivers", "--format", "json", str(tmp_path))
    finally:
        sys.modules.pop("bbf601_broken", None)
    [diag] = bbf601(out)
    assert code == 1
    assert diag["message"] == ("the driver of robot `arm` cannot be imported: "
                               "driver 'bbf601_broken:Arm': cannot import bbf601_broken: RuntimeError: no CAN bus")


def test_an_interface_the_program_does_not_declare(tmp_path: Path) -> None:
    project(tmp_path, {"leg": ROBOTS["good"]}, interface="cell.arm.Leg")
    code, out, _ = check("--drivers", "--format", "json", str(tmp_path))
    [diag] = json.loads(out)["diagnostics"]  # one mistake, one diagnostic: BBF701 of the project file
    assert code == 1 and diag["code"] == "BBF701"
    assert (diag["file"], diag["line"]) == (str(tmp_path / "bbflow.toml"), 6)
    assert "`cell.arm.Leg`" in str(diag["message"]) and "cell.arm.Arm" in str(diag["message"])


def test_a_program_with_errors_is_not_driver_checked(tmp_path: Path) -> None:
    project(tmp_path, ROBOTS)
    write_flows(tmp_path / "flows", {"cell/task.flow": "reactor R() -> int {\n    return nope\n}\n"})
    code, out, _ = check("--drivers", "--format", "json", str(tmp_path))
    assert code == 1
    assert [d["code"] for d in json.loads(out)["diagnostics"]] == ["BBF101"]
    assert MODULE not in sys.modules


CONSOLE = "import sys\nfrom bbflow.cli import main\nsys.argv[0] = 'bbflow'\nmain()\n"


def test_a_driver_beside_bbflow_toml_is_found_by_the_bbflow_command_from_anywhere(tmp_path: Path) -> None:
    """The installed `bbflow` script does not put the current folder on sys.path (python -m would):
    the project's own folder is what makes its driver and actions importable, for check and run."""
    import subprocess

    project = tmp_path / "cell"
    write_flows(project, {"flows/arm.flow": "robot Arm {\n    command beep() -> bool\n}\n"
                          "reactor Beep() -> bool on Arm {\n    step b = beep()\n    return b\n}\n"})
    (project / "bbflow.toml").write_text('[project]\nname = "cell"\nsource = "flows"\n'
                                         '[robot.arm]\ninterface = "arm.Arm"\ndriver = "celldriver:Beeper"\n')
    (project / "celldriver.py").write_text(
        "class Beeper:\n    def __init__(self, handle, options):\n        pass\n"
        "    async def beep(self):\n        return True\n")
    script = tmp_path / "bbflow_script.py"
    script.write_text(CONSOLE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def bbflow(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "BBFLOW_CACHE": str(tmp_path / "cache")}
        return subprocess.run([sys.executable, "-I", str(script), *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120)

    checked = bbflow("check", "--drivers", str(project))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = bbflow("run", str(project), "--reactor", "Beep", "--arm")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "true"
