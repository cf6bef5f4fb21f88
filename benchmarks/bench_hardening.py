"""Costs that used to grow out of bounds: did-you-mean, a long string literal, the history of run endings.

    python benchmarks/bench_hardening.py

- did-you-mean: ``check`` of one file with N reactors each calling an unknown
  action among N declared ones (N suggestions, each among 2N names): seconds,
  and the ratio between sizes (near-linear: about 2 per doubling);
- a string literal of S bytes: peak memory (tracemalloc) of parsing it;
- run endings: memory held by the run board after R top-level runs that each
  ended with a 10 KB result (bounded: the same for 1,000 and 9,000 runs).
"""

from __future__ import annotations

import gc
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bbflow.compiler import compile_paths
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.source import SourceFile
from bbflow.compiler.syntax.parser import parse_module
from bbflow.runtime import model
from bbflow.runtime.liveview import Board


def unknown_names(n: int) -> float:
    """Seconds to check a file with ``n`` unknown names among ``2n`` declared ones."""
    lines = [f"reactor R{i}() {{\n    step a = helper_{i}x()\n}}\n" for i in range(n)]
    lines += [f'action helper_{i}() = "m:f"\n' for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "names.flow"
        path.write_text("".join(lines))
        gc.collect()
        started = time.perf_counter()
        result = compile_paths([path])
        seconds = time.perf_counter() - started
    assert len(result.diagnostics.items) == n
    return seconds


def literal_peak(size: int) -> float:
    """Peak MB of parsing a module holding one string literal of ``size`` characters."""
    text = 'reactor R() -> str {\n    return "' + "x" * size + '"\n}\n'
    parse_module(SourceFile("warm.flow", "reactor W() -> int {\n    return 1\n}\n"), "warm", Diagnostics())
    gc.collect()
    tracemalloc.start()
    try:
        parse_module(SourceFile("big.flow", text), "big", Diagnostics())
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def board_memory(runs: int) -> float:
    """MB still held by a run board after ``runs`` runs that each ended with a 10 KB result."""
    result = "x" * 10_000
    gc.collect()
    tracemalloc.start()
    try:
        board = Board(model.Program.__new__(model.Program))
        board._steps_of = lambda reactor: {}  # type: ignore[method-assign]
        for i in range(runs):
            event: dict[str, Any] = {"event": "run.start", "run": str(i), "reactor": "R", "parent": None, "time": 0}
            board(event)
            board({"event": "run.ok", "run": str(i), "reactor": "R", "time": 1.0, "result": result + str(i)})
        gc.collect()
        return tracemalloc.get_traced_memory()[0] / 1e6
    finally:
        tracemalloc.stop()


def main() -> int:
    for n in (500, 1_000, 2_000):
        print(f"did-you-mean, {n:,} unknown names: {unknown_names(n):.2f} s")
    for size in (1_000_000, 5_000_000):
        print(f"string literal of {size:,} bytes: peak {literal_peak(size):.1f} MB")
    for runs in (1_000, 9_000):
        print(f"run board after {runs:,} runs: {board_memory(runs):.2f} MB held")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
