"""What a checked expression means when it runs: the language's meaning, never Python's.

Each case is a reactor of one module, compiled once, run on the simulated robot and a virtual clock. A value
the checker could not prove (`any`) is checked where it is used; arithmetic never makes a NaN or an infinity;
a run's value has the type its reactor declares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bbflow.testing import Flow, FlowProject

CELL = """
reactor Widened() -> float { return min(1, 2.5) }
reactor Branches(k: int) -> float {
    switch out on k { case 1 { return 1 } default { return 2.5 } }
    return out
}
"""


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> FlowProject:
    return Flow(Path(tmp_path_factory.mktemp("cell"))).source(CELL)


@pytest.mark.parametrize(("reactor", "inputs"), [("Widened", {}), ("Branches", {"k": 1})])
def test_a_run_value_has_its_declared_type(cell: FlowProject, reactor: str, inputs: dict[str, Any]) -> None:
    run = cell.run_reactor(reactor, inputs)
    assert run.ok and run.result == 1.0 and isinstance(run.result, float), run.result
