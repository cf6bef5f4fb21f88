"""Any bbflow.toml, however wrong: ``bbflow check`` reports it (BBF701 at a line of the file) and never
fails inside (no exception, no BBF900); ``load_project`` refuses it with a ``ProjectError``.

The files are generated from the schema itself (every table and key, with values of any type, unknown
keys beside them, odd strings: paths too long, NUL, line separators, huge numbers), written with LF or
CRLF, with or without a byte order mark. CI runs the derandomized profile; a failure found here becomes
a plain regression test in tests/test_project.py or tests/test_project_check.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbflow.compiler import InputError, compile_paths, report
from bbflow.project import ProjectError, load_project
from bbflow.project_schema import SCHEMA, Each, Kind, Table, Tables

FLOW = """\
signal go
enum Grip { open, closed }
robot Arm {
    states idle, busy
    command home() -> Grip
    command read_force() -> float
    event force: {newtons: float, grip: Grip?}
}
agent Picker on Arm {
    on go { run home() }
}
"""

ODD = ["", "sim", "cell.Arm", "Arm", "Picker", "arm", "cell.Picker", "flows", ".", "..", "../x", "/", "~", "a/b",
       "\x00", "a\tb", "\u2028", "\x85", "\r", "é", "日本", "🤖", "x" * 300, "20ms", "0s", "-1s", "9" * 400 + "s",
       "9" * 400 + "d", "7d", "1.5s", "x:y", ":", "zenoh", "local", "full", "hold", "one_for_all", "127.0.0.1:0",
       "home", "read_force", "force", "closed", "opne", "idle"]
TEXTS = st.one_of(st.sampled_from(ODD), st.text(max_size=8))
SCALARS = st.one_of(TEXTS, st.integers(-(2**70), 2**70), st.floats(), st.booleans())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(TEXTS, inner, max_size=3)), max_leaves=6)


def shaped(kind: Kind, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for a key of ``kind``: mostly of its shape (its keys, with anything under them), sometimes anything."""
    if depth > 5:
        return VALUES
    if isinstance(kind, Table):
        known = st.fixed_dictionaries({}, optional={k: shaped(v, depth + 1) for k, v in kind.keys.items()})
        extra = st.dictionaries(TEXTS, VALUES, max_size=2)
        return st.one_of(known, st.tuples(known, extra).map(lambda both: {**both[1], **both[0]}), VALUES)
    if isinstance(kind, Each):
        names = st.one_of(st.sampled_from(["arm", "left", "Picker", "b+a", "1x", ""]), TEXTS)
        return st.one_of(st.dictionaries(names, shaped(kind.item, depth + 1), max_size=2), VALUES)
    if isinstance(kind, Tables):
        return st.one_of(st.lists(shaped(kind.item, depth + 1), max_size=2), VALUES)
    return VALUES


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else "inf" if v == math.inf else "-inf" if v == -math.inf else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_lines(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    """``table`` as TOML: its plain keys, then its tables as [headers] and arrays of tables as [[headers]]."""
    lines, nested = [], []
    for key, value in table.items():
        table_array = bool(prefix) and isinstance(value, list) and bool(value) and all(isinstance(x, dict) for x in value)
        if (isinstance(value, dict) and (value or not prefix)) or table_array:
            nested.append((key, value))
        else:
            lines.append(f"{json.dumps(key, ensure_ascii=False)} = {toml_value(value)}")
    for key, value in nested:
        path = (*prefix, key)
        header = ".".join(json.dumps(p, ensure_ascii=False) for p in path)
        for entry in value if isinstance(value, list) else [value]:
            lines.append(f"[[{header}]]" if isinstance(value, list) else f"[{header}]")
            lines += toml_lines(entry, path)
    return lines


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project for every example: its program stays, its bbflow.toml is rewritten."""
    root = tmp_path_factory.mktemp("toml")
    (root / "flows").mkdir()
    (root / "flows" / "cell.flow").write_text(FLOW)
    return root


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much], database=None)
@given(shaped(SCHEMA).filter(lambda d: isinstance(d, dict)), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_any_project_file_is_reported_never_an_internal_error(folder: Path, data: dict[str, Any], newline: str,
                                                               bom: bool) -> None:
    text = newline.join(toml_lines(data)) + newline
    (folder / "bbflow.toml").write_bytes(("\ufeff" * bom + text).encode("utf-8", "surrogatepass"))
    try:
        result = compile_paths([folder])
    except InputError:
        return
    for fmt in ("text", "json", "sarif"):
        report(result, fmt)
    lines = text.count("\n")
    for diag in result.diagnostics.items:
        assert diag.code != "BBF900", diag.message
        if diag.span.file.endswith("bbflow.toml"):
            assert 1 <= diag.span.line <= lines, diag
    try:
        load_project(folder)
    except ProjectError:
        pass
