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
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from bbflow.cli import main
from shared_cases import case_params, cases

# Cases that later work will make pass: case name -> the issue that will. Strict: a case that
# starts passing fails the suite until it is taken off.
EXPECTED_FAILURES: dict[str, str] = {
}


def load_runner(conformance: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bbflow_conformance_runner", conformance / "run.py")
    assert spec is not None and spec.loader is not None
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    runner.BBFLOW = [sys.executable, "-m", "bbflow"]  # this checkout's bbflow, whatever is on PATH
    return runner


@pytest.fixture(scope="module")
def runner(conformance: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    # The cases live in ../shared: keep their compilation caches out of it.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BBFLOW_CACHE", str(tmp_path_factory.mktemp("bbflow-cache")))
        yield load_runner(conformance)


@pytest.mark.parametrize("case", case_params(cases("check"), EXPECTED_FAILURES))
def test_check_case(runner: ModuleType, case: Path) -> None:
    failure = runner.check_case(case, False)
    assert failure is None, failure


@pytest.mark.parametrize("case", case_params(cases("run"), EXPECTED_FAILURES))
def test_run_case(runner: ModuleType, case: Path) -> None:
    # Without a `run` command, click exits 2 ("no such command"), which would make a case
    # expecting exit 2 pass vacuously; such a result means nothing, so it is a failure.
    assert "run" in main.commands, "bbflow run does not exist yet"
    failure = runner.run_case(case, False)
    assert failure is None, failure


def test_expected_failures_name_real_cases(conformance: Path) -> None:
    """A renamed or removed case must leave the lists too, so they never hide anything."""
    names = {c.name for c in cases("check")} | {c.name for c in cases("run")}
    assert set(EXPECTED_FAILURES) <= names
