"""Point an exception raised in generated code at the ``.flow`` line it comes from.

Every generated module carries ``__bbflow_file__`` (``cell/arm.flow``) and
``__bbflow_lines__`` (generated line -> ``.flow`` line). When an expression
fails (a division by zero, an index out of range), the runtime calls
``add_flow_note`` on the exception: it walks the traceback to the innermost
frame of generated code and adds a PEP 678 note ``at cell/arm.flow:12``, the
way Jinja2 and Mako point template errors at the template line.
"""

from __future__ import annotations

import traceback

NOTE_PREFIX = "at "


def flow_location(exc: BaseException) -> str | None:
    """``file.flow:LINE`` of the innermost generated-code frame in ``exc``'s traceback, if any."""
    found: str | None = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        lines = frame.f_globals.get("__bbflow_lines__")
        file = frame.f_globals.get("__bbflow_file__")
        if isinstance(lines, dict) and isinstance(file, str) and lineno in lines:
            found = f"{file}:{lines[lineno]}"
    return found


def add_flow_note(exc: BaseException) -> str | None:
    """Add the note ``at file.flow:LINE`` to ``exc`` (once); returns the location, or None if not from generated code."""
    where = flow_location(exc)
    if where is not None:
        note = NOTE_PREFIX + where
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
    return where
