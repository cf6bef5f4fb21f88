"""Diagnostics as JSON, in exactly the shape the language reference promises:

    {"version": 1, "diagnostics": [{"code", "severity", "message", "file", "line", "column",
      "end_line", "end_column", "notes": [...], "help": str|null}], "files": N}

Secondary labels have no field of their own in that shape; each becomes a note
``"<message> (file:line:col)"`` so that no information is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bbflow.compiler.diagnostics.core import Diagnostic
from bbflow.runtime import jsonout

#: The ``version`` of the output (the schema of ``bbflow schema diagnostics``).
DIAGNOSTICS_VERSION = 1


def diagnostic_dict(diag: Diagnostic) -> dict[str, Any]:
    span = diag.span
    labels = [f"{lb.message} ({lb.span.file}:{lb.span.line}:{lb.span.column})" for lb in diag.labels]
    return {
        "code": diag.code,
        "severity": diag.severity.value,
        "message": diag.message,
        "file": span.file,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
        "notes": [*diag.notes, *labels],
        "help": diag.help,
    }


def render_json(diags: Iterable[Diagnostic], files: int) -> str:
    report = {"version": DIAGNOSTICS_VERSION, "diagnostics": [diagnostic_dict(d) for d in diags], "files": files}
    return jsonout.dumps(report, indent=2, ensure_ascii=False) + "\n"  # valid UTF-8 whatever the file names
