"""`bbflow graph REACTOR`: Mermaid and dot drawings of a reactor."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.cli import main
from shared_cases import ABSENT, cases, present



def _graph(tmp_path: Path, case: str, *args: str) -> tuple[int, str]:
    if not present():
        pytest.skip(ABSENT)
    shutil.copy(next(iter(cases("check", f"{case}_*.flow"))), tmp_path / "cell.flow")
    result = CliRunner().invoke(main, ["graph", *args, str(tmp_path / "cell.flow")])
    return result.exit_code, result.output


def test_mermaid_shows_steps_order_and_dashed_undo_edges(tmp_path: Path) -> None:
    code, out = _graph(tmp_path, "001", "PickAndPlace")
    assert code == 0, out
    assert out.startswith("flowchart TD\n")
    assert '["approach: move_to"]' in out and '(["undo home#40;#41;"])' in out
    assert "undo open_gripper#40;#41; #40;inherited#41;" in out
    assert "-.->|undo|" in out and "-->|after|" in out
    assert "#40;irreversible#41;" in out


def test_composed_reactors_and_maps_are_subgraphs(tmp_path: Path) -> None:
    code, out = _graph(tmp_path, "033", "Tour")
    assert code == 0, out
    assert 'subgraph g3["visited: each item"]' in out
    assert '["v: Visit"]' in out and "-->|runs|" in out
    assert "    end\n" in out


def test_dot_output(tmp_path: Path) -> None:
    code, out = _graph(tmp_path, "001", "PickAndPlace", "--format", "dot")
    assert code == 0, out
    assert out.startswith("digraph reactor {") and out.rstrip().endswith("}")
    assert "style=dashed" in out and 'label="after"' in out


def test_unknown_reactor_is_a_usage_error(tmp_path: Path) -> None:
    code, out = _graph(tmp_path, "001", "Nope")
    assert code == 2 and "no reactor or agent named 'Nope'" in out and "cell.PickAndPlace" in out


def test_the_graph_in_docs_build_md_is_the_examples_current_drawing() -> None:
    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "build.md").read_text(encoding="utf-8")
    drawn = doc.split("```mermaid\n", 1)[1].split("```", 1)[0]
    result = CliRunner().invoke(main, ["graph", "PickAndPlace", str(root / "examples" / "pick_and_place")])
    assert result.exit_code == 0, result.output
    assert result.output == drawn, "docs/build.md: redraw with `bbflow graph PickAndPlace examples/pick_and_place`"


def test_an_irreversible_step_has_no_inherited_undo_edge(tmp_path: Path) -> None:
    (tmp_path / "cell.flow").write_text(
        "robot Gripper {\n"
        "    command open() -> bool undo close()\n"
        "    command close() -> bool\n"
        "}\n"
        "reactor Drop() on Gripper {\n"
        '    step o = open() irreversible "the part falls"\n'
        "    step c = close() after o\n"
        "}\n")
    result = CliRunner().invoke(main, ["graph", "Drop", str(tmp_path / "cell.flow")])
    assert result.exit_code == 0, result.output
    assert "o: open #40;irreversible#41;" in result.output
    assert "undo" not in result.output
