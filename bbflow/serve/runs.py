"""The runs the control plane shows: those in flight and the latest finished, with their events.

``RunLog`` is an observer. It keeps, per top-level run, the run's own events
and those of the runs it composed (``parent``), bounded per run, so that a
page that opens late can draw each run's timeline (steps, retries, the undo
order of a rollback) from ``GET /api/state`` exactly as it would have from
``GET /events``: the dashboard has one way to read runs, from events.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

KEEP_FINISHED = 50  # finished runs kept for a page that opens late
KEEP_EVENTS = 400  # events kept per run (a long retrying run keeps its latest)
ENDINGS = ("run.ok", "run.failed", "run.halted")


@attrs.define
class RunRecord:
    id: str
    reactor: str
    status: str = "running"  # running, ok, failed, halted
    events: deque[dict[str, Any]] = attrs.Factory(lambda: deque(maxlen=KEEP_EVENTS))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "reactor": self.reactor, "status": self.status, "events": list(self.events)}


class RunLog:
    """Top-level runs in flight and the last ``KEEP_FINISHED`` finished, with their events."""

    def __init__(self, keep: int = KEEP_FINISHED) -> None:
        self.running: dict[str, RunRecord] = {}
        self.finished: deque[RunRecord] = deque(maxlen=keep)
        self._top: dict[str, str] = {}  # run (composed ones included) -> its top-level run

    def __call__(self, event: dict[str, Any]) -> None:
        run = event.get("run")
        if run is None:
            return
        name = event.get("event")
        parent = event.get("parent")
        if name == "run.start":
            if parent is None:
                self.running[run] = RunRecord(run, event.get("reactor") or event.get("command") or "?")
                self._top[run] = run
            elif parent in self._top:
                self._top[run] = self._top[parent]
        top = self._top.get(run)
        record = self.running.get(top) if top is not None else None
        if record is None:
            return
        record.events.append(event)
        if name in ENDINGS:
            del self._top[run]
            if run == top:
                record.status = name.split(".", 1)[1]
                del self.running[run]
                self.finished.append(record)

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "running": [r.to_json() for r in self.running.values()],
            "recent": [r.to_json() for r in reversed(self.finished)],
        }
