"""Suite-wide settings: hypothesis profiles and the one way to the shared conformance cases."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(autouse=True)
def _events_follow_their_schema(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every runtime event the suite records or writes to an event log is checked against
    ``bbflow schema events`` (a test that feeds hand-made events opts out with ``free_events``)."""
    from bbflow.runtime import events, jsonout

    if request.node.get_closest_marker("free_events"):
        yield
        return
    problems: list[str] = []
    check = _event_validator()
    writer_call, recorder_call = events.JsonLinesWriter.__call__, events.Recorder.__call__

    def write(self: events.JsonLinesWriter, event: dict[str, Any]) -> None:
        problems.extend(check(json.loads(jsonout.dumps({**events.jsonable(event), "version": 1}, default=repr))))
        writer_call(self, event)

    def record(self: events.Recorder, event: dict[str, Any]) -> None:
        problems.extend(check({**events.jsonable(event), "version": 1}))
        recorder_call(self, event)

    monkeypatch.setattr(events.JsonLinesWriter, "__call__", write)
    monkeypatch.setattr(events.Recorder, "__call__", record)
    yield
    assert not problems, "events that do not follow the schema:\n" + "\n".join(problems[:5])


@functools.cache
def _event_validator() -> Callable[[dict[str, Any]], list[str]]:
    from jsonschema import Draft202012Validator

    from bbflow.schemas import schema

    validator = Draft202012Validator(schema("events"))

    def check(event: dict[str, Any]) -> list[str]:
        return [f"{event.get('event')}: {e.message} at {list(e.absolute_path)}: {event}"
                for e in validator.iter_errors(event)]

    return check
