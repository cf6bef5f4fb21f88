"""Suite-wide settings: hypothesis profiles and the one way to the shared conformance cases."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the suite's helper modules
from shared_cases import ABSENT, CONFORMANCE, present  # noqa: E402

# CI: derandomized, so a run is reproducible and a property test cannot flake; a failure found
# once becomes a plain regression test. "soak": many more examples, for a local campaign.
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("soak", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# `bbflow run` keeps a journal per project: in tests, never inside the checkout or ../shared.
if "BBFLOW_JOURNAL_DIR" not in os.environ:
    os.environ["BBFLOW_JOURNAL_DIR"] = tempfile.mkdtemp(prefix="bbflow-journals-")
    atexit.register(shutil.rmtree, os.environ["BBFLOW_JOURNAL_DIR"], True)


@pytest.fixture(scope="session")
def conformance() -> Path:
    """``../shared/conformance``, or a loud skip when it is not beside the checkout."""
    if not present():
        pytest.skip(ABSENT)
    return CONFORMANCE
