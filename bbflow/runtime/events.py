"""Runtime events: observer fan-out, an in-memory recorder and a JSON-lines writer.

Every event is a ``dict`` with at least ``event``, ``reactor``, ``step``,
``run`` and ``time`` (the loop's monotonic clock), see docs/runtime.md. An
observer is any ``Callable[[dict], None]``; it is called synchronously on
the event loop, so it must be quick. An observer that raises never disturbs
a run: the error is logged and the event goes on to the other observers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from bbflow.runtime import jsonout
from bbflow.runtime.ports import Observer, RuntimeFailure

log = logging.getLogger("bbflow.runtime")

#: The ``version`` of every event log line (the schema of ``bbflow schema events``).
EVENT_LOG_VERSION = 1

#: Every event name the executor emits.
RUN_EVENTS = (
    "run.start",
    "run.ok",
    "run.failed",
    "run.halted",
    "step.start",
    "step.ok",
    "step.error",
    "step.retry",
    "step.skip",
    "undo.start",
    "undo.ok",
    "undo.error",
)

_SCALARS = (str, int, float, bool, type(None))


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: records and lists recursively, tuples as lists, failures as
    ``{"message", "code"}``, anything else as its ``repr`` (events must always serialise)."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, RuntimeFailure):
        return value.to_json()
    return repr(value)


def notify(observer: Observer, event: dict[str, Any]) -> None:
    """Give ``event`` to ``observer``; an exception is logged, never raised."""
    try:
        observer(event)
    except Exception:  # an observer's bug must not stop a robot mid-motion
        log.exception("event observer %r failed on %s", observer, event.get("event"))


class Fanout:
    """One observer that passes every event to several, in order."""

    __slots__ = ("observers",)

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers = tuple(observers)

    def __call__(self, event: dict[str, Any]) -> None:
        for observer in self.observers:
            notify(observer, event)


def fanout(*observers: Observer | None) -> Observer | None:
    """Combine observers (``None`` entries ignored); ``None`` when there are none."""
    present = [o for o in observers if o is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return Fanout(present)


class Recorder:
    """Keeps every event in ``events``; handy in tests and for post-mortems."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def named(self, *names: str) -> list[dict[str, Any]]:
        """The events whose ``event`` is one of ``names``, in order."""
        return [e for e in self.events if e["event"] in names]


class JsonLinesWriter:
    """Writes one compact JSON object per event and line (``bbflow run --events FILE``).

    Give it a path (opened for writing, closed by ``close``) or an open text
    stream (left open). Each line is flushed, so a crash loses no event. The
    first write that fails (a full disk, a reader gone from the pipe) ends the
    log: ``failed`` is told once, and no more events are written.
    """

    def __init__(self, target: str | Path | IO[str], *, failed: Callable[[OSError], None] | None = None) -> None:
        if isinstance(target, (str, Path)):
            self._stream: IO[str] = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._stream = target
            self._owned = False
        self._failed = failed
        self.error: OSError | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        if self.error is not None:
            return
        line = jsonout.dumps({**event, "version": EVENT_LOG_VERSION}, separators=(",", ":"), ensure_ascii=False)
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        if self._owned and not self._stream.closed:
            try:
                self._stream.close()
            except OSError as exc:  # what was left in the buffer could not be written
                if self.error is None:
                    self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        if self._failed is None:
            raise exc
        self._failed(exc)

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def warn_log_lost(stream: IO[str], events: str, goes_on: str) -> Callable[[OSError], None]:
    """A ``JsonLinesWriter``'s ``failed`` for ``--events EVENTS``: the log's end said once on ``stream`` (standard
    error), if that can still be written: a reader gone or a full disk loses the line, not what goes on."""
    def failed(exc: OSError) -> None:
        with contextlib.suppress(OSError):
            stream.write(f"warning: --events {events}: cannot write ({exc.strerror or exc}): the event log stops "
                         f"here, {goes_on}\n")
            stream.flush()
    return failed

