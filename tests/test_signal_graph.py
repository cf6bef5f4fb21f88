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
TWO_ARMS = ROOT / "examples" / "two_arm_cell"

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


def _dot_nodes(out: str) -> dict[str, str]:
    """Node ids by label, from dot output."""
    nodes = dict(line.strip().split(" [label=", 1) for line in out.splitlines() if " [label=" in line
                 and "->" not in line)
    return {label.split(",")[0].strip('"'): nid for nid, label in nodes.items()}


def _dot_edges(out: str) -> set[str]:
    """The edge lines of dot output."""
    return {line.strip() for line in out.splitlines() if "->" in line}


def _two_arms_graph(folder: Path, flow: str) -> tuple[dict[str, str], set[str]]:
    """The project graph (dot) of ``flow`` with two robots ``a`` and ``b`` of ``cell.Arm``: its nodes and edges."""
    (folder / "cell.flow").write_text(flow)
    (folder / "bbflow.toml").write_text('[project]\nname = "f"\n\n[robot.a]\ninterface = "cell.Arm"\n\n'
                                        '[robot.b]\ninterface = "cell.Arm"\n')
    code, out = graph("--project", str(folder), "--format", "dot")
    assert code == 0, out
    return _dot_nodes(out), _dot_edges(out)


def test_the_project_signal_flow_includes_coordinators_and_robots(fleet: Path) -> None:
    code, out = graph("--project", str(fleet), "--format", "dot")
    assert code == 0, out
    by = _dot_nodes(out)
    assert {"Worker on Arm", "Dispatcher", "robot Arm", "task.assigned", "task.done", "order.done"} <= set(by)
    assert f'{by["Dispatcher"]} -> {by["task.assigned"]} [label="emit"];' in out
    assert f'{by["task.assigned"]} -> {by["Worker on Arm"]};' in out
    assert f'{by["Worker on Arm"]} -> {by["robot Arm"]} [label="run Go"];' in out
    assert f'{by["robot Arm"]} -> {by["Worker on Arm"]} [label="robot.event.bumped"];' in out
    assert f'{by["task.done"]} -> {by["Dispatcher"]};' in out


def test_the_project_graph_draws_the_instances_of_bbflow_toml() -> None:
    code, out = graph("--project", str(TWO_ARMS), "--format", "dot")
    assert code == 0, out
    by = _dot_nodes(out)
    # two robot instances of one interface, one Picker per arm, the coordinators once
    agents = {label for label in by if label.startswith(("Picker", "Coordinator", "Operator"))}
    assert agents == {"Picker on left", "Picker on right", "Coordinator", "Operator"}
    assert {"robot left: Arm", "robot right: Arm"} <= set(by)
    edges = _dot_edges(out)
    for arm in ("left", "right"):
        assert f'{by[f"Picker on {arm}"]} -> {by[f"robot {arm}: Arm"]} [label="run Transfer"];' in edges
        # the coordinator addresses each task to an arm chosen at run time (`to free[0]`): it may reach either
        assert f'{by["robot.task.assigned"]} -> {by[f"Picker on {arm}"]};' in edges
        # every Picker reports back to the one coordinator; the stop reaches both arms
        assert f'{by[f"Picker on {arm}"]} -> {by["robot.task.completed"]} [label="emit"];' in edges
        assert f'{by["cell.stop"]} -> {by[f"Picker on {arm}"]};' in edges
    assert f'{by["robot.task.completed"]} -> {by["Coordinator"]};' in edges
    # robot.task.* are the program's own signals, not the robot's: no edge from a robot to an agent
    assert not any(e.startswith((f'{by["robot left: Arm"]} ->', f'{by["robot right: Arm"]} ->')) for e in edges)
    code, mermaid = graph("--project", str(TWO_ARMS))
    assert code == 0 and '{{"robot left: Arm"}}' in mermaid and '["Picker on right"]' in mermaid


def test_a_signal_addressed_to_a_named_instance_reaches_that_instances_agents_only(tmp_path: Path) -> None:
    by, edges = _two_arms_graph(tmp_path, FLEET.replace("emit task.assigned {at: o.data.at}",
                                                        'emit task.assigned {at: o.data.at} to "a"'))
    assigned = by["task.assigned to a"]
    assert f'{by["Dispatcher"]} -> {assigned} [label="emit"];' in edges
    assert [e for e in edges if e.startswith(f"{assigned} ->")] == [f"{assigned} -> {by['Worker on a']};"]


def test_an_instance_gets_its_own_robots_signals(tmp_path: Path) -> None:
    by, edges = _two_arms_graph(tmp_path, FLEET)
    for arm in ("a", "b"):
        assert f'{by[f"robot {arm}: Arm"]} -> {by[f"Worker on {arm}"]} [label="robot.event.bumped"];' in edges
        assert f'{by["task.assigned"]} -> {by[f"Worker on {arm}"]};' in edges
    assert f'{by["robot a: Arm"]} -> {by["Worker on b"]} [label="robot.event.bumped"];' not in edges


def test_an_agents_emit_reaches_a_coordinators_pattern_route_for_the_programs_own_robot_signals(
        tmp_path: Path) -> None:
    """A coordinator's `on robot.task.*` matched none of the program's `robot.task.*` signals (taken for the
    robot's own): the route was a node of its own, and no edge went from the arms' emits to the coordinator."""
    flow = FLEET.replace("signal task.done: {at: Pose}", "signal robot.task.done: {at: Pose}").replace(
        "emit task.done", "emit robot.task.done").replace("on task.done as d", "on robot.task.* as d")
    by, edges = _two_arms_graph(tmp_path, flow)
    assert "robot.task.*" not in by
    assert f'{by["robot.task.done"]} -> {by["Dispatcher"]};' in edges
    for arm in ("a", "b"):
        assert f'{by[f"Worker on {arm}"]} -> {by["robot.task.done"]} [label="emit"];' in edges
    code, out = graph("Dispatcher", str(tmp_path))
    assert code == 0 and '(["robot.task.*"])' not in out and '(["robot.task.done"])' in out


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


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed: apt-get install graphviz (.ci/run installs it)")
@pytest.mark.parametrize("args", [("Go",), ("Worker",), ("--project",)])
def test_graphviz_renders_every_dot_output(fleet: Path, args: tuple[str, ...]) -> None:
    for where in (fleet, EXAMPLE, TWO_ARMS):
        code, out = graph(*args, str(where), "--format", "dot")
        if code != 0:
            assert where != fleet  # the examples have no Go nor Worker
            continue
        done = subprocess.run(["dot", "-Tsvg"], input=out, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "<svg" in done.stdout, done.stderr
        assert "Warning" not in done.stderr, done.stderr


def test_a_literal_route_is_not_matched_against_every_signal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """graph --project took 10 s for 4,000 signals each emitted by one route and handled by another: every
    route was matched against every signal, and every edge searched for among those drawn."""
    from bbflow.compiler.semantic.patterns import Pattern

    n = 50
    text = "".join(f"signal s{i}.x\n" for i in range(n))
    text += "agent A {\n" + "".join(f"    on s{i}.x {{ emit s{(i + 1) % n}.x }}\n" for i in range(n)) + "}\n"
    (tmp_path / "many.flow").write_text(text + "agent B {\n    on s1.* { }\n}\n")
    matched: list[str] = []
    real = Pattern.matches
    monkeypatch.setattr(Pattern, "matches", lambda self, signal: matched.append(self.text) or real(self, signal))
    code, out = graph("--project", str(tmp_path), "--format", "dot")
    by, edges = _dot_nodes(out), _dot_edges(out)
    assert code == 0 and set(matched) == {"s1.*"}  # only the wildcard route looks at the signals
    assert f'{by["A"]} -> {by["s7.x"]} [label="emit"];' in edges and f'{by["s7.x"]} -> {by["A"]};' in edges
    assert f'{by["s1.x"]} -> {by["B"]};' in edges and len(edges) == 2 * n + 1
