"""The checker's algorithmic complexity, measured in operations (never in seconds).

A program of ``n`` cells and one of ``4 * n`` cells are checked while counting
the work: route-pattern matches (``Pattern.matches`` and ``covers``), steps of
the pattern trie (``bbflow.runtime.router._collect``) and of the signal index
(``bbflow.compiler.semantic.patterns._find``), and every Python function call the check
makes. A linear checker does about 4x the work for 4x the program; the bound
of 6x leaves room for the fixed part (the standard library) and still fails a
pass that tries every route against every signal (16x).

Each generated cell has what makes route checking expensive: its own signals,
literal and wildcard routes (some binding the signal, some guarded by
``when``), routes every agent shares (``**.failed``), robot events and emits;
the program checks clean, so no diagnostic's own search is counted.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bbflow.compiler.semantic import patterns
from bbflow.compiler.analysis import routes
from bbflow.compiler.checker import check
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.syntax.parser import parse_text
from bbflow.runtime import router

SMALL = 12
GROWTH = 4
BOUND = 6  # a linear checker stays near GROWTH; a quadratic one reaches GROWTH ** 2

COMMON = """
robot Station {
    states idle, busy
    command home() -> float
    event force: {newtons: float}
    event jam
}
signal cell.alarm: {cell: int}
"""


def cell(i: int) -> str:
    """Module text of cell ``i``: its signals, a reactor and an agent routing them."""
    return f"""
from common import Station

signal c{i}.start
signal c{i}.pick.requested: {{part: str}}
signal c{i}.pick.done: {{part: str}}
signal c{i}.failed: {{reason: str}}

reactor cycle_{i}(part: str) -> float on Station {{
    step go = home()
    return go
}}

agent Cell{i} on Station {{
    state {{ busy: bool = false }}
    on c{i}.start {{ emit c{i}.pick.requested {{part: "p{i}"}} }}
    on c{i}.pick.* as req when not busy {{ set busy = true  run cycle_{i}(part: req.data.part) }}
    on c{i}.pick.requested priority -1 {{ emit c{i}.failed {{reason: "busy"}} }}
    on c{i}.** as s priority -2 {{ set busy = false }}
    on **.failed as f {{ emit cell.alarm {{cell: {i}}} }}
    on robot.event.* {{ set busy = false }}
    on c{i}.pick.done {{ emit c{i}.pick.done {{part: "again"}} }}
}}
"""


@functools.cache
def program(cells: int) -> tuple:
    """The parsed modules of a program of ``cells`` cells (checked to parse clean; parsed once per size)."""
    sources = {"common": COMMON, **{f"cell{i}": cell(i) for i in range(cells)}}
    modules = []
    for name, text in sources.items():
        module, parsed = parse_text(text, f"{name}.flow", name)
        assert not parsed.items, [d.message for d in parsed.items]
        modules.append(module)
    return tuple(modules)


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch, counts: Counter, owner: Any, name: str) -> Iterator[None]:
    """Count the calls of ``owner.name`` (recursive calls through the module global included)."""
    original: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[name] += 1
        return original(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(owner, name, counted)
        yield


def route_work(monkeypatch: pytest.MonkeyPatch, cells: int) -> Counter:
    """The route-matching operations of checking a program of ``cells`` cells."""
    modules = program(cells)
    counts: Counter = Counter()
    diags = Diagnostics()
    with counting(monkeypatch, counts, patterns.Pattern, "matches"), \
            counting(monkeypatch, counts, patterns.Pattern, "covers"), \
            counting(monkeypatch, counts, router, "_collect"), \
            counting(monkeypatch, counts, patterns, "_find"):
        check(list(modules), diags)
    assert diags.items == [], [(d.code, d.message) for d in diags.items]
    return counts


def calls(cells: int) -> int:
    """Every Python function call made while checking a program of ``cells`` cells."""
    modules = program(cells)
    check(list(modules), Diagnostics())  # the standard library and lazy imports loaded once, outside the count
    total = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal total
        if event == "call":
            total += 1

    diags = Diagnostics()
    sys.setprofile(profile)
    try:
        check(list(modules), diags)
    finally:
        sys.setprofile(None)
    assert diags.items == []
    return total


def test_route_matching_grows_linearly(monkeypatch):
    small = route_work(monkeypatch, SMALL)
    large = route_work(monkeypatch, GROWTH * SMALL)
    for op in ("matches", "covers", "_collect", "_find"):
        assert small[op] > 0, f"{op} is never called: the count measures nothing"
    total_small, total_large = sum(small.values()), sum(large.values())
    assert total_large < BOUND * total_small, (small, large)


def test_each_route_operation_grows_linearly(monkeypatch):
    small = route_work(monkeypatch, SMALL)
    large = route_work(monkeypatch, GROWTH * SMALL)
    for op, count in small.items():
        assert large[op] < BOUND * count, (op, small, large)


def test_the_whole_check_grows_linearly():
    small, large = calls(SMALL), calls(GROWTH * SMALL)
    assert large < BOUND * small, (small, large)


def test_the_count_tells_a_quadratic_pass_apart(monkeypatch):
    """The measure is able to fail: a check that also tries every route on every signal is caught."""
    linear = routes.match_signals

    def also_every_route_on_every_signal(declared, found):
        declared, found = list(declared), list(found)
        for pattern in found:
            any(pattern.matches(s) for s in declared)
        return linear(declared, found)

    monkeypatch.setattr(routes, "match_signals", also_every_route_on_every_signal)
    small = route_work(monkeypatch, SMALL)
    large = route_work(monkeypatch, GROWTH * SMALL)
    assert large["matches"] > BOUND * small["matches"]


# --- the whole pipeline: per-module summaries and whole-program checks included ----------


def pipeline_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, cells: int) -> Counter:
    """The route-matching operations of ``compile_paths`` (no cache) on a project of ``cells`` cell files."""
    from bbflow.compiler import compile_paths

    folder = tmp_path / f"p{cells}"
    folder.mkdir()
    (folder / "common.flow").write_text(COMMON)
    for i in range(cells):
        (folder / f"cell{i}.flow").write_text(cell(i))
    counts: Counter = Counter()
    with counting(monkeypatch, counts, patterns.Pattern, "matches"), \
            counting(monkeypatch, counts, router, "_collect"), \
            counting(monkeypatch, counts, patterns, "_find"):
        result = compile_paths([str(folder)], use_cache=False)
    assert [d.message for d in result.diagnostics] == []
    return counts


def test_the_pipeline_grows_linearly(monkeypatch, tmp_path):
    """The per-module route summaries (for BBF505) use one signal index per check, not every signal per route."""
    small = pipeline_work(monkeypatch, tmp_path, SMALL)
    large = pipeline_work(monkeypatch, tmp_path, GROWTH * SMALL)
    assert sum(large.values()) < BOUND * sum(small.values()), (small, large)
