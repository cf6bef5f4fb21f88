"""The shared conformance cases (../shared/conformance), one pytest test per case.

The cases are run by the shared runner's own logic (run.py, imported by path)
against this checkout's bbflow (``python -m bbflow``). Cases that later work
will make pass are listed below as strict expected failures: when one starts
passing, the suite fails until it is taken off its list, so the lists only
shrink.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from collections.abc import Iterator
from types import ModuleType

import pytest

from bbflow.cli import main

CONFORMANCE = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance"

# Cases that later work will make pass: case name -> the work that will ("checker" for semantic
# check cases, "bbflow run" for run cases). Every check case passes with the parser and checker.
EXPECTED_FAILURES: dict[str, str] = {}


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bbflow_conformance_runner", CONFORMANCE / "run.py")
    assert spec is not None and spec.loader is not None
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    runner.BBFLOW = [sys.executable, "-m", "bbflow"]  # this checkout's bbflow, whatever is on PATH
    return runner


def cases(kind: str) -> list[Path]:
    """The cases of ``check/`` or ``run/``, selected as run.py selects them."""
    folder = CONFORMANCE / kind
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.iterdir())
            if not p.name.startswith((".", "_")) and not p.name.endswith(".md")
            and (p.suffix == ".flow" or p.is_dir())]


def params(kind: str) -> list[object]:
    out = []
    for case in cases(kind):
        marks = []
        if case.name in EXPECTED_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=EXPECTED_FAILURES[case.name]))
        out.append(pytest.param(case, id=case.name, marks=marks))
    return out


pytestmark = pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance is not present")


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    # The cases live in ../shared: keep their compilation caches out of it.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BBFLOW_CACHE", str(tmp_path_factory.mktemp("bbflow-cache")))
        yield load_runner()


@pytest.mark.parametrize("case", params("check"))
def test_check_case(runner: ModuleType, case: Path) -> None:
    failure = runner.check_case(case, False)
    assert failure is None, failure


@pytest.mark.parametrize("case", params("run"))
def test_run_case(runner: ModuleType, case: Path) -> None:
    # Without a `run` command, click exits 2 ("no such command"), which would make a case
    # expecting exit 2 pass vacuously; such a result means nothing, so it is a failure.
    assert "run" in main.commands, "bbflow run does not exist yet"
    failure = runner.run_case(case, False)
    assert failure is None, failure


def test_expected_failures_name_real_cases() -> None:
    """A renamed or removed case must leave the lists too, so they never hide anything."""
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not present")
    names = {c.name for c in cases("check")} | {c.name for c in cases("run")}
    assert set(EXPECTED_FAILURES) <= names
