"""``bbflow graph AGENT`` and ``--project``, the dot fixes (compound clusters, one font, case values), and
rendering every format with Graphviz when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pick_and_place"

FLEET = """
type Pose = {x: float, y: float, z: float}
enum Mode { fast, careful }
signal order.placed: {at: Pose}
signal task.assigned: {at: Pose}
signal task.done: {at: Pose}
signal order.done: {at: Pose}

robot Arm {
    limit motion 1
    command move_to(target: Pose) -> Pose category motion
    command home() -> Pose category motion
    event bumped
}

reactor Go(at: Pose, mode: Mode) -> Pose on Arm {
    step there = move_to(target: at) undo home()
    switch how on mode {
        case fast { return there }
        case careful { step slow = move_to(target: at) after there  return slow }
    }
    return how
}

agent Worker on Arm {
    on task.assigned as t { run Go(at: t.data.at, mode: careful) then { emit task.done {at: result} } }
    on robot.event.bumped { }
    on robot.** { }
}

agent Dispatcher {
    on order.placed as o { emit task.assigned {at: o.data.at} }
    on task.done as d { emit order.done {at: d.data.at} }
    on order.done { }
}
"""


def graph(*argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["graph", *argv])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet")
    (folder / "fleet.flow").write_text(FLEET)
    return folder


def test_an_agents_routes_runs_and_emits(fleet: Path) -> None:
    code, out = graph("Worker", str(fleet))
    assert code == 0, out
    assert 'subgraph g1["agent Worker on Arm"]' in out
    assert '(["task.assigned"])' in out and '[["Go"]]' in out and '(["robot.event.bumped"])' in out
    assert "-->|run|" in out and "-->|then: emit|" in out


def test_the_project_signal_flow_includes_coordinators_and_robots(fleet: Path) -> None:
    code, out = graph("--project", str(fleet), "--format", "dot")
    assert code == 0, out
    nodes = dict(line.strip().split(" [label=", 1) for line in out.splitlines() if " [label=" in line
                 and "->" not in line)
    by = {label.split(",")[0].strip('"'): nid for nid, label in nodes.items()}
    assert {"Worker on Arm", "Dispatcher", "robot Arm", "task.assigned", "task.done", "order.done"} <= set(by)
    assert f'{by["Dispatcher"]} -> {by["task.assigned"]} [label="emit"];' in out
    assert f'{by["task.assigned"]} -> {by["Worker on Arm"]};' in out
    assert f'{by["Worker on Arm"]} -> {by["robot Arm"]} [label="run Go"];' in out
    assert f'{by["robot Arm"]} -> {by["Worker on Arm"]} [label="robot.event.bumped"];' in out
    assert f'{by["task.done"]} -> {by["Dispatcher"]};' in out


def test_dot_clusters_are_entered_with_lhead_in_one_font_and_cases_show_their_values(fleet: Path) -> None:
    code, out = graph("Go", str(fleet), "--format", "dot")
    assert code == 0, out
    assert "compound=true;" in out and out.count('fontname="Helvetica"') == 3
    assert "fontname" not in "".join(line for line in out.splitlines() if "->" in line or "[label=" in line)
    assert 'label="how: case fast";' in out and 'label="how: case careful";' in out
    into = [line for line in out.splitlines() if "lhead=cluster_" in line]
    assert len(into) == 2  # the switch into each of its cases' boxes
    code, out = graph("Go", str(fleet))
    assert 'subgraph g' in out and "how: case careful" in out


def test_unknown_names_and_usage(fleet: Path) -> None:
    code, out = graph("Nope", str(fleet))
    assert code == 2 and "no reactor or agent named 'Nope'" in out
    assert graph()[0] == 2


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")
@pytest.mark.parametrize("args", [("Go",), ("Worker",), ("--project",)])
def test_graphviz_renders_every_dot_output(fleet: Path, args: tuple[str, ...]) -> None:
    for where in (fleet, EXAMPLE):
        code, out = graph(*args, str(where), "--format", "dot")
        if code != 0:
            assert where == EXAMPLE  # the example has no Go nor Worker
            continue
        done = subprocess.run(["dot", "-Tsvg"], input=out, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "<svg" in done.stdout, done.stderr
        assert "Warning" not in done.stderr, done.stderr
