"""The crash drill (``tests/crash_drill.py``) in the suite: 30 kills at random moments, then the promises checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from crash_drill import drill


@pytest.mark.slow
def test_killed_at_random_moments_the_world_comes_back_and_nothing_runs_twice(tmp_path: Path) -> None:
    counts = drill(tmp_path, trials=30, seed=15)
    assert counts["accepted"] > 0 and counts["rolled back"] > 0  # the kills did cut runs off
