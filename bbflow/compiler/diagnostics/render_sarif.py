"""Diagnostics as SARIF 2.1.0, the subset GitHub code scanning reads.

One run, tool ``bbflow`` with one rule per code of the registry (id, short
description, help from the ``bbflow explain`` page, default level), and one
result per diagnostic with its rule, level, message and a physical location.
Columns count Unicode code points, as the compiler's spans do, so the run says
``columnKind: unicodeCodePoints``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from bbflow import __version__
from bbflow.compiler.diagnostics.codes import CODES, explain
from bbflow.compiler.diagnostics.core import Diagnostic
from bbflow.compiler.source import Span

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/bbflow/bbflow"
_RULE_INDEX = {code: i for i, code in enumerate(CODES)}


def render_sarif(diags: Iterable[Diagnostic]) -> str:
    return json.dumps(sarif_log(diags), indent=2, ensure_ascii=False) + "\n"


def sarif_log(diags: Iterable[Diagnostic]) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bbflow",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(code) for code in CODES],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": [_result(d) for d in diags],
            }
        ],
    }


def _rule(code: str) -> dict[str, Any]:
    entry = CODES[code]
    page = explain(code)
    return {
        "id": code,
        "shortDescription": {"text": entry.title},
        "fullDescription": {"text": entry.title},
        "help": {"text": page, "markdown": page},
        "defaultConfiguration": {"level": entry.severity.value},
    }


def _result(diag: Diagnostic) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": diag.code,
        "level": diag.severity.value,
        "message": {"text": _message(diag)},
        "locations": [{"physicalLocation": _physical(diag.span)}],
    }
    if diag.code in _RULE_INDEX:
        result["ruleIndex"] = _RULE_INDEX[diag.code]
    if diag.labels:
        result["relatedLocations"] = [
            {"id": i, "physicalLocation": _physical(lb.span), "message": {"text": lb.message}}
            for i, lb in enumerate(diag.labels)
        ]
    return result


def _message(diag: Diagnostic) -> str:
    """The message, then its notes and help on lines of their own."""
    lines = [diag.message, *(f"note: {n}" for n in diag.notes)]
    if diag.help:
        lines.append(f"help: {diag.help}")
    return "\n".join(lines)


def _physical(span: Span) -> dict[str, Any]:
    return {
        "artifactLocation": {"uri": file_uri(span.file)},
        "region": {
            "startLine": span.line,
            "startColumn": span.column,
            "endLine": max(span.end_line, span.line),
            "endColumn": max(span.end_column, 1),
        },
    }


def file_uri(file: str) -> str:
    """A relative path stays relative (GitHub resolves it against the checkout); others become file: URIs."""
    path = PurePath(file)
    if path.is_absolute():
        return Path(file).as_uri()
    return quote(path.as_posix())
