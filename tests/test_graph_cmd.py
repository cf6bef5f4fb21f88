"""`bbflow graph REACTOR`: Mermaid and dot drawings of a reactor."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.cli import main
from bbflow.compiler.analysis.graphviz import DEEPEST_BOX
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


def _draw(tmp_path: Path, text: str, name: str, *args: str) -> str:
    (tmp_path / "cell.flow").write_text(text)
    result = CliRunner().invoke(main, ["graph", name, *args, str(tmp_path / "cell.flow")])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_reactor_with_only_a_return_draws_its_input_flowing_to_its_return(tmp_path: Path) -> None:
    out = _draw(tmp_path, "reactor Same(n: int) -> int {\n    return n\n}\n", "Same")
    assert out == 'flowchart TD\n    i1[/"n: int"\\]\n    r2[\\"return: int"/]\n    i1 --> r2\n'


def test_inputs_have_edges_to_what_uses_them_and_the_return_from_what_it_returns(tmp_path: Path) -> None:
    text = ("reactor Sum(a: int, b: int, unused: str) -> int {\n"
            "    let s = b + a\n"
            "    switch big on s > 10 {\n"
            "        case true { let t = s + a  return t }\n"
            "        default { return s }\n"
            "    }\n"
            "    return big\n"
            "}\n")
    out = _draw(tmp_path, text, "Sum")
    ids = {label: nid for nid, label in re.findall(r'^\s+(\w+)\W+"([^"]+)"', out, re.M)}
    edges = set(re.findall(r"^\s+(\w+) --> (\w+)$", out, re.M))
    assert {(ids["a: int"], ids["let s"]), (ids["b: int"], ids["let s"]), (ids["a: int"], ids["let t"]),
            (ids["switch big"], ids["return: int"])} <= edges
    assert not any(ids["unused: str"] in edge for edge in edges)
    dot = _draw(tmp_path, text, "Sum", "--format", "dot")
    assert 'label="a: int", shape=trapezium' in dot and 'label="return: int", shape=invtrapezium' in dot


def test_a_reactor_without_inputs_or_result_draws_neither(tmp_path: Path) -> None:
    out = _draw(tmp_path, "action ping() -> bool = \"m:ping\"\nreactor P() {\n    step p = ping() irreversible \"x\"\n}\n",
                "P")
    assert "i" not in {line.split()[0][0] for line in out.splitlines()[1:]} and "return" not in out


def test_a_chain_of_hundreds_of_composed_reactors_draws_the_first_levels(tmp_path: Path) -> None:
    # each level drawn inside the one above took Python frames: 400 levels crashed with RecursionError
    depth = 400
    text = "".join(f"reactor C{i}(n: int) -> int {{\n    step r = C{i + 1}(n: n)\n    return r\n}}\n"
                   for i in range(depth))
    text += f"reactor C{depth}(n: int) -> int {{\n    let r = n\n    return r\n}}\n"
    for fmt in ("mermaid", "dot"):
        out = _draw(tmp_path, text, "C0", "--format", fmt)
        assert out.count("subgraph") == DEEPEST_BOX
        assert f"r: C{DEEPEST_BOX + 1} #40;not drawn: {DEEPEST_BOX} boxes deep#41;" in out or \
            f"r: C{DEEPEST_BOX + 1} (not drawn: {DEEPEST_BOX} boxes deep)" in out


def test_an_unknown_name_suggests_the_nearest_reactor_or_agent_and_lists_at_most_20(tmp_path: Path) -> None:
    text = "".join(f"reactor Task{i}() -> int {{\n    let x = {i}\n    return x\n}}\n" for i in range(30))
    text += "signal go\nagent Fetcher {\n    on go { }\n}\n"
    (tmp_path / "cell.flow").write_text(text)
    result = CliRunner().invoke(main, ["graph", "Fetchr", str(tmp_path / "cell.flow")])
    assert result.exit_code == 2
    assert "did you mean 'Fetcher'?" in result.output and "and 10 more" in result.output
    assert "cell.Task29" not in result.output
