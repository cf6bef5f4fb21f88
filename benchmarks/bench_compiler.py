"""Compiler throughput, memory, phases and cache on generated projects of 1k, 10k and 100k lines.

    python benchmarks/bench_compiler.py [--sizes 1000 10000] [--repeat 3] [--cache 1000 10000]

For each size (a project written by ``gen_project``), it measures:

- **check, warm process**: ``compile_paths`` without the cache (what
  ``bbflow check --no-cache`` runs) in this process, the parser already
  built: lines per second. The compiler is linear when lines/s stays flat
  across sizes. With one round (the 100k project), the check timed is the
  one of the phases run below (the same work: read, parse, check).
- **check, cold process**: ``python -m bbflow check --no-cache PROJECT`` in a
  fresh interpreter, as a user runs it (imports and the grammar's LALR tables
  included), with the process's peak resident memory (``wait4``'s
  ``ru_maxrss``); and once, a process that only imports the compiler and
  builds the parser (the fixed cost every check pays).
- **phases**: one check taken apart: lark (``SyntaxDriver``, which feeds
  lark's LALR parser token by token for error recovery), building our AST
  from lark's tree, and our passes (the checker: names, types, graph,
  compensation, routes). Plain ``Lark.parse`` of the same files is given for
  reference: what lark costs without our driver.
- **cache**: ``bbflow check`` through ``.bbflow/cache``: a cold cache (empty)
  against a warm one (the unchanged program is replayed), a check after one
  module was edited, and the warm cache from a fresh process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from bbflow.compiler.syntax.build_ast import build_module
from bbflow.compiler.checker import check
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.syntax.parser import flow_parser, parse_module
from bbflow.compiler.pipeline import CompileResult, compile_paths, discover, read_source
from bbflow.compiler.syntax.recovery import SyntaxDriver
from bbflow.compiler.source import SourceFile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MiB, Figure, Stats, compare, ratios, sync_timer  # noqa: E402
from gen_project import generate  # noqa: E402

SECTION = "compiler"
BASELINE_CHILD = ("import bbflow.cli, bbflow.compiler.pipeline, bbflow.compiler.checker, bbflow.compiler.reports;"
                  "from bbflow.compiler.syntax.parser import flow_parser; flow_parser()")


def make_project(root: Path, lines: int) -> tuple[Path, int, int]:
    """A generated project of about ``lines`` lines under ``root``: (folder, files, lines)."""
    folder = root / f"project_{lines}"
    made = generate(folder, lines)
    return folder, made["files"], made["lines"]


def checked(path: Path) -> CompileResult:
    """``bbflow check`` in process; a generated project must check clean (else the benchmark is wrong)."""
    result = compile_paths([path])
    if result.diagnostics.items:
        first = result.diagnostics.items[0]
        raise AssertionError(f"generated project does not check clean: {first.code} {first.message} "
                             f"at {first.span.file}:{first.span.line}")
    return result


def run_child(args: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak resident memory (bytes) of a child process, which must exit 0."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {err[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024  # Linux reports KiB


def phases(path: Path) -> dict[str, float]:
    """Seconds in each phase of one check of ``path`` (see the module docstring)."""
    result = CompileResult()
    totals = {"read": 0.0, "lark": 0.0, "ast": 0.0, "passes": 0.0, "lark_plain": 0.0}
    parser = flow_parser()
    for unit in discover([path], result):
        t0 = time.perf_counter()
        text = read_source(unit, result.diagnostics)
        assert text is not None
        source = SourceFile(unit.display, text)
        t1 = time.perf_counter()
        tree = SyntaxDriver(parser, source, Diagnostics()).run()
        t2 = time.perf_counter()
        module = parse_module(source, unit.module, result.diagnostics)
        t3 = time.perf_counter()
        build_module(tree, source.path, unit.module, text, Diagnostics())
        t4 = time.perf_counter()
        parser.parse(text)
        t5 = time.perf_counter()
        result.modules.append(module)
        totals["read"] += t1 - t0
        totals["lark"] += t2 - t1
        # parse_module is the driver, the AST and the comments: what is not lark is ours
        totals["ast"] += max(0.0, (t3 - t2) - (t2 - t1))
        totals["lark_plain"] += t5 - t4
    t0 = time.perf_counter()
    check(result.modules, result.diagnostics)
    totals["passes"] = time.perf_counter() - t0
    totals["total"] = totals["read"] + totals["lark"] + totals["ast"] + totals["passes"]
    assert not result.diagnostics.items, "generated project does not check clean"
    return totals


def _touch(path: Path, round_no: int) -> None:
    """Edit one module: a changed comment at its end is a new source text, so a cache miss."""
    text = path.read_text(encoding="utf-8").split("\n# edited ")[0]
    path.write_text(f"{text}\n# edited {round_no}\n", encoding="utf-8")


def cache_figures(name: str, project: Path, repeat: int) -> list[Figure]:
    """``bbflow check`` through ``.bbflow/cache``: cold cache vs one edited module vs warm cache.

    In process (``compile_paths(use_cache=True)``), and the warm cache once
    more from a fresh process (``python -m bbflow check``), as a user re-runs it.
    """
    cache_dir = project / ".bbflow"
    edited = sorted((project / "flows" / "cells").glob("*.flow"))[-1]
    original = edited.read_text(encoding="utf-8")
    rounds = iter(range(1_000_000))

    def check_cached() -> None:
        result = compile_paths([project], use_cache=True)
        assert not result.diagnostics.items, "generated project must check clean"

    def fresh_process() -> float:
        return run_child([sys.executable, "-m", "bbflow", "check", str(project)])[0]

    try:
        times = compare({"cold": sync_timer(check_cached, before=lambda: shutil.rmtree(cache_dir, ignore_errors=True)),
                         "edit": sync_timer(check_cached, before=lambda: _touch(edited, next(rounds))),
                         "warm": sync_timer(check_cached),
                         "fresh": fresh_process}, repeat=repeat, warmup=0)
    finally:
        edited.write_text(original, encoding="utf-8")
        shutil.rmtree(cache_dir, ignore_errors=True)
    return [
        Figure(SECTION, f"check {name}, cold cache", "s", Stats.of(times["cold"]),
               (("warm cache", ratios(times, "cold", "warm")),)),
        Figure(SECTION, f"check {name}, one module edited", "s", Stats.of(times["edit"]),
               (("warm cache", ratios(times, "edit", "warm")),)),
        Figure(SECTION, f"check {name}, warm cache", "s", Stats.of(times["warm"])),
        Figure(SECTION, f"check {name}, warm cache, fresh process", "s", Stats.of(times["fresh"])),
    ]


def figures(runs: Mapping[int, int], cache_sizes: Iterable[int] = (), *, workdir: Path | None = None,
            log: Callable[[str], None] = print) -> list[Figure]:
    """Every compiler figure: ``runs`` maps each project size (lines) to its number of rounds."""
    out: list[Figure] = []
    cache_sizes = set(cache_sizes)
    with tempfile.TemporaryDirectory(prefix="bbflow-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        start_s, base_rss = run_child([sys.executable, "-c", BASELINE_CHILD])
        out.append(Figure(SECTION, "process start: imports + parser tables", "s", Stats.of([start_s]),
                          note=f"peak RSS {base_rss / MiB:.0f} MiB"))
        warmed = False
        for lines, r in runs.items():
            project, files, real_lines = make_project(root, lines)
            name = f"{_k(lines)} ({real_lines:,} lines, {files} files)"
            log(f"  compiler: {name}, {r} round(s)")
            if not warmed:  # the parser built, every compiler module imported and used once
                checked(project)
                warmed = True
            peaks: list[int] = []

            def cold_check() -> float:
                elapsed, rss = run_child([sys.executable, "-m", "bbflow", "check", "--no-cache", str(project)])
                peaks.append(rss)
                return elapsed

            if r > 1:
                times = compare({"warm": sync_timer(lambda: checked(project)), "cold": cold_check}, repeat=r,
                                warmup=0)
                split = phases(project)
                warm_note = ""
            else:  # one round of a big project: the warm check is the one the phases run times
                times = {"cold": [cold_check()]}
                split = phases(project)
                times["warm"] = [split["total"]]
                warm_note = "timed in the phases run"
            out.append(Figure(SECTION, f"check {name}, warm process", "lines/s",
                              Stats.of(times["warm"]).inverse(real_lines), note=warm_note))
            out.append(Figure(SECTION, f"check {name}, cold process", "lines/s",
                              Stats.of(times["cold"]).inverse(real_lines),
                              (("warm process, in time", ratios(times, "cold", "warm")),)))
            peak = max(peaks)
            out.append(Figure(SECTION, f"check {name}, cold process peak RSS", "MiB", Stats.of([peak / MiB]),
                              note=f"{(peak - base_rss) / MiB:.0f} MiB above the process start"))
            total = split["total"]
            for key, label in (("lark", "lark parse (via SyntaxDriver)"), ("ast", "AST building (ours)"),
                               ("passes", "checker passes (ours)")):
                out.append(Figure(SECTION, f"phase {name}: {label}", "% of check",
                                  Stats.of([100 * split[key] / total]),
                                  note=f"{split[key]:.2f} s"))
            out.append(Figure(SECTION, f"phase {name}: plain Lark.parse, for reference", "% of check",
                              Stats.of([100 * split["lark_plain"] / total]),
                              ((("SyntaxDriver, in time", Stats.of([split["lark_plain"] / split["lark"]])),)),
                              note=f"{split['lark_plain']:.2f} s"))
            if lines in cache_sizes:
                out.extend(cache_figures(name, project, r))
            shutil.rmtree(project, ignore_errors=True)
    return out


def _k(lines: int) -> str:
    return f"{lines // 1000}k" if lines >= 1000 else str(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=int, nargs="*", default=[1_000, 10_000], help="sizes to check with the cache")
    args = parser.parse_args()
    from common import table

    print(table(figures({n: args.repeat for n in args.sizes}, args.cache)))


if __name__ == "__main__":
    main()
