"""What ``bbflow check`` prints and how it exits, from a ``CompileResult``."""

from __future__ import annotations

import attrs

from bbflow.compiler.diagnostics.render_json import render_json
from bbflow.compiler.diagnostics.render_sarif import render_sarif
from bbflow.compiler.diagnostics.render_text import render_text
from bbflow.compiler.pipeline import CompileResult


@attrs.frozen(slots=True)
class Report:
    body: str  # for standard output
    summary: str | None  # for standard error (text format only)
    errors: int
    warnings: int

    def exit_code(self, strict: bool) -> int:
        """0 no errors, 1 errors (warnings count as errors with ``strict``)."""
        return 1 if self.errors or (strict and self.warnings) else 0


def report(result: CompileResult, fmt: str, *, color: bool = False) -> Report:
    diags = result.diagnostics.sorted()
    errors = sum(d.is_error for d in diags)
    warnings = len(result.diagnostics.warnings)
    if fmt == "json":
        return Report(render_json(diags, result.files), None, errors, warnings)
    if fmt == "sarif":
        return Report(render_sarif(diags, result.shown_sources), None, errors, warnings)
    return Report(render_text(diags, result.shown_sources, color=color), summary(errors, warnings, result.files),
                  errors, warnings)


def summary(errors: int, warnings: int, files: int) -> str:
    """``2 errors, 1 warning in 14 files``; ``no problems in 3 files``."""
    parts = [_plural(n, word) for n, word in ((errors, "error"), (warnings, "warning")) if n]
    return f"{', '.join(parts) or 'no problems'} in {_plural(files, 'file')}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
