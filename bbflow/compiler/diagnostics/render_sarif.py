"""Diagnostics as SARIF 2.1.0, for code scanning (GitHub's included).

One run, tool ``bbflow`` with one rule per code of the registry (id, short
description, help from the ``bbflow explain`` page, default level), and one
result per diagnostic with its rule, level, message, a physical location and
a ``partialFingerprints`` entry that follows the finding when lines move
(code, file, the text of the offending line, the message, and which
occurrence of those it is). File locations inside the folder bbflow runs in
are relative URIs against ``%SRCROOT%`` (declared in ``originalUriBaseIds``),
so a code-scanning service resolves them against its checkout; files outside
it are absolute ``file:`` URIs. ``invocations[0]`` says whether the check
ran: when it could not (a broken ``bbflow.toml``, a missing path),
``executionSuccessful`` is false and the reason is a
``toolExecutionNotifications`` entry, and the log is still valid SARIF.
Columns count Unicode code points, as the compiler's spans do, so the run
says ``columnKind: unicodeCodePoints``. There is no ``informationUri``: the
project has no public home page to point to yet.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from bbflow import __version__
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.codes import CODES, explain
from bbflow.compiler.diagnostics.core import Diagnostic
from bbflow.compiler.source import SourceFile, Span
from bbflow.runtime import jsonout

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"
FINGERPRINT = "bbflow/v1"
_RULE_INDEX = {code: i for i, code in enumerate(CODES)}
_UNREADABLE = ("invalid TOML", "cannot read", "not UTF-8")  # a bbflow.toml that could not be read at all


def render_sarif(diags: Iterable[Diagnostic], sources: Mapping[str, SourceFile] | None = None) -> str:
    return jsonout.dumps(sarif_log(diags, sources), indent=2, ensure_ascii=False) + "\n"


def render_sarif_failure(message: str) -> str:
    """The log of a check that could not run (``executionSuccessful: false``, the reason as a notification)."""
    log = sarif_log([], None, successful=False)
    log["runs"][0]["invocations"][0]["toolExecutionNotifications"] = [_notification(message)]
    return jsonout.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _notification(message: str, file: str | None = None) -> dict[str, Any]:
    notification: dict[str, Any] = {"level": "error", "message": {"text": message},
                                    "descriptor": {"id": "bbflow/project"}}
    if file is not None:
        notification["locations"] = [{"physicalLocation": {"artifactLocation": _artifact(file)}}]
    return notification


def sarif_log(diags: Iterable[Diagnostic], sources: Mapping[str, SourceFile] | None = None, *,
              successful: bool = True) -> dict[str, Any]:
    seen: dict[str, int] = {}
    diags = list(diags)
    broken = [d for d in diags if d.code == codes.BBF701.code and d.message.startswith(_UNREADABLE)]
    log: dict[str, Any] = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bbflow",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": [_rule(code) for code in CODES],
                    }
                },
                "invocations": [{"executionSuccessful": successful}],
                "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": [_result(d, sources or {}, seen) for d in diags],
            }
        ],
    }
    if broken:  # the program was checked without its project's configuration: say so to the service too
        log["runs"][0]["invocations"][0]["toolExecutionNotifications"] = [
            _notification(f"{d.span.file}: {d.message}", d.span.file) for d in broken]
    return log


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


def _result(diag: Diagnostic, sources: Mapping[str, SourceFile], seen: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": diag.code,
        "level": diag.severity.value,
        "message": {"text": _message(diag)},
        "locations": [{"physicalLocation": _physical(diag.span)}],
        "partialFingerprints": {FINGERPRINT: _fingerprint(diag, sources, seen)},
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


def _fingerprint(diag: Diagnostic, sources: Mapping[str, SourceFile], seen: dict[str, int]) -> str:
    """Stable across edits elsewhere in the file: no line number, the offending line's text instead."""
    source = sources.get(diag.span.file)
    line = ""
    if source is not None:
        lines = source.text.split("\n")
        line = lines[diag.span.line - 1].strip() if 0 < diag.span.line <= len(lines) else ""
    key = "\0".join((diag.code, _artifact(diag.span.file)["uri"], " ".join(line.split()), diag.message))
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    seen[digest] = seen.get(digest, 0) + 1
    return f"{digest}:{seen[digest]}"


def _artifact(file: str) -> dict[str, Any]:
    """Relative to ``%SRCROOT%`` (the current folder) when inside it, else an absolute ``file:`` URI."""
    if file.startswith("<"):  # the standard library, shipped inside bbflow: no file of the checkout
        return {"uri": quote(file.replace("<", "").replace(">", ""))}
    path = PurePath(file)
    if path.is_absolute():
        try:
            path = PurePath(os.path.relpath(file))
        except ValueError:  # another drive on Windows
            return {"uri": Path(file).as_uri()}
        if path.parts[:1] == ("..",):
            return {"uri": Path(file).as_uri()}
    if path.parts[:1] == ("..",):
        return {"uri": Path(os.path.abspath(file)).as_uri()}
    return {"uri": file_uri(path.as_posix()), "uriBaseId": SRCROOT}


def _physical(span: Span) -> dict[str, Any]:
    return {
        "artifactLocation": _artifact(span.file),
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
    return quote(path.as_posix().encode("utf-8", "surrogateescape"))  # a name of any bytes: each one %XX
