"""Diagnostics as values, the registry of their codes, and their renderings (text, JSON, SARIF)."""

from bbflow.compiler.diagnostics.codes import CODES, Code, explain, normalize
from bbflow.compiler.diagnostics.core import Diagnostic, Diagnostics, Label, Severity
from bbflow.compiler.diagnostics.render_json import render_json
from bbflow.compiler.diagnostics.render_sarif import render_sarif, render_sarif_failure
from bbflow.compiler.diagnostics.render_text import render_text
from bbflow.compiler.diagnostics.suggest import closest

__all__ = [
    "CODES", "Code", "Diagnostic", "Diagnostics", "Label", "Severity",
    "closest", "explain", "normalize", "render_json", "render_sarif", "render_sarif_failure", "render_text",
]
