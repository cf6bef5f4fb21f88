"""Compiler speed: generated projects of 1k, 10k and 100k lines, start-up, and the route checks' scaling.

    python benchmarks/bench_compiler.py [--sizes 1000 10000] [--repeat 3] [--cache 1000 10000]

For each size (a project written by ``gen_project``), it measures:

- **check, warm process**: ``compile_paths`` without the cache (what
  ``bbflow check --no-cache`` runs) in this process, the parser already
  made: lines per second, in wall time and in CPU time (``process_time``,
  which a busy neighbour disturbs less). The compiler is linear when lines/s
  stays flat across sizes (the rows ``lines/s ... in CPU time``); the 100k
  project is checked once, the smaller ones round after round.
- **check, cold process**: ``python -m bbflow check --no-cache PROJECT`` in a
  fresh interpreter, as a user runs it (imports, parser tables and exit
  included), with its peak resident memory (its own: see ``children``); in the
  same rounds, **lark alone** (``lark_alone.py``): a fresh interpreter that
  imports only lark and parses the same files with bbflow's grammar and
  options into lark's trees. The ratio of the two, in time and in CPU time
  (user + system, which a busy neighbour disturbs less), is the cost of
  everything bbflow does beyond lark's own parse.
- **phases**: one check taken apart: parsing to our AST (lark's LALR parser,
  the AST built in its reductions, comments, the nesting check), our
  passes (the checker: names, types, graph, compensation, routes); plain
  ``Lark.parse`` of the same files (tree with positions) for reference.
- **cache**: ``bbflow check`` through ``.bbflow/cache``: a cold cache (empty)
  against a warm one (the unchanged program is replayed), a check after one
  module was edited, and the warm cache from a fresh process.

Every child runs bbflow from bytecode, as an installed bbflow does (``pip
install`` compiles a package's modules, as it did lark's): ``figures`` first
compiles bbflow's modules (``compiled_bytecode``). Where writing bytecode is
switched off (``PYTHONDONTWRITEBYTECODE``), every cold check would otherwise
compile bbflow's sources again: a cost no installed bbflow pays, and lark
alone never does.

Besides: **start-up**, ``bbflow check`` of a one-line file against
``python -c "import lark, attrs, click"`` (rounds interleaved), and the
**scaling** of the route checks: one agent of R routes over R signals, and M
modules of R routes each, each size twice the previous one (a linear check
takes about twice the time), and of **one long expression** (a sum, refused
for its depth, and a list that checks clean) of 2,000, 8,000 and 32,000
terms (linear: about 4 per step). Rows named ``target: ...`` state the project's
speed targets, each with its limit and whether this run met it.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path

import bbflow
from bbflow.compiler.checker import check
from bbflow.compiler.pipeline import CompileResult, compile_paths, discover, read_source
from bbflow.compiler.source import SourceFile
from bbflow.compiler.syntax.parser import flow_parser, parse_module

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from children import Measured  # noqa: E402
from common import Figure, MiB, Stats, compare, ratios, sync_timer, target  # noqa: E402
from gen_project import generate, modules_by_routes, routes_by_signals  # noqa: E402

SECTION = "compiler"
BASELINE_CHILD = ("import bbflow.cli, bbflow.compiler.pipeline, bbflow.compiler.checker, bbflow.compiler.reports;"
                  "from bbflow.compiler.syntax.parser import flow_parser; flow_parser()")
IMPORTS_CHILD = "import lark, attrs, click"
#: the targets (cost ratios): cold check / lark alone at 10k lines, 100k / 10k lines, one-line check / imports
COLD_VS_LARK, BIG_VS_10K, ONE_LINE_VS_IMPORTS = 1.2, 10.0, 3.0


def compiled_bytecode() -> bool:
    """Compile bbflow's modules to bytecode where it is missing or stale, as ``pip install`` does; whether all
    of them could be (a read-only install was compiled when it was installed)."""
    return bool(compileall.compile_dir(Path(bbflow.__file__).parent, quiet=1))


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
        raise AssertionError(f"generated program does not check clean: {first.code} {first.message} "
                             f"at {first.span.file}:{first.span.line}")
    return result


def run_child(args: list[str], cwd: Path | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak resident memory (bytes) of a child, which must exit 0."""
    child = Measured(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    usage = child.wait()
    err = child.stderr.read().decode() if child.stderr else ""
    if child.stderr:
        child.stderr.close()
    if usage.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {usage.returncode}: {err[-2000:]}")
    return usage.seconds, usage.cpu, usage.peak


class Child:
    """A child process run round after round: its wall times (returned, for ``compare``), CPU times and peaks."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.cpu: list[float] = []
        self.peaks: list[int] = []

    def __call__(self) -> float:
        wall, cpu, rss = run_child(self.args)
        self.cpu.append(cpu)
        self.peaks.append(rss)
        return wall


class InProcess:
    """``checked(project)`` in this process, round after round: its wall times (returned) and CPU times."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.cpu: list[float] = []

    def __call__(self) -> float:
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        checked(self.project)
        self.cpu.append(time.process_time() - cpu)
        return time.perf_counter() - start


def lark_alone(project: Path, cache: Path) -> Child:
    grammar = str(files("bbflow.grammar").joinpath("flow.lark"))
    return Child([sys.executable, str(HERE / "lark_alone.py"), grammar, str(cache), str(project)])


def phases(path: Path) -> dict[str, float]:
    """Seconds in each phase of one check of ``path`` (see the module docstring)."""
    result = CompileResult()
    totals = {"read": 0.0, "parse": 0.0, "passes": 0.0, "lark_plain": 0.0, "cpu": 0.0}
    parser = flow_parser()
    for unit in discover([path], result):
        t0 = time.perf_counter()
        text = read_source(unit, result.diagnostics)
        assert text is not None
        source = SourceFile(unit.display, text)
        t1, c1 = time.perf_counter(), time.process_time()
        module = parse_module(source, unit.module, result.diagnostics)
        t2, c2 = time.perf_counter(), time.process_time()
        totals["cpu"] += c2 - c1
        parser.parse(text)
        t3 = time.perf_counter()
        result.modules.append(module)
        totals["read"] += t1 - t0
        totals["parse"] += t2 - t1
        totals["lark_plain"] += t3 - t2
    t0, c0 = time.perf_counter(), time.process_time()
    check(result.modules, result.diagnostics)
    totals["passes"] = time.perf_counter() - t0
    totals["cpu"] += time.process_time() - c0
    totals["total"] = totals["read"] + totals["parse"] + totals["passes"]
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

    try:
        times = compare({"cold": sync_timer(check_cached, before=lambda: shutil.rmtree(cache_dir, ignore_errors=True)),
                         "edit": sync_timer(check_cached, before=lambda: _touch(edited, next(rounds))),
                         "warm": sync_timer(check_cached),
                         "fresh": Child([sys.executable, "-m", "bbflow", "check", str(project)])},
                        repeat=repeat, warmup=0)
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


def size_figures(name: str, project: Path, lines: int, rounds: int, lark_cache: Path,
                 base_rss: int) -> tuple[list[Figure], dict[str, list[float]]]:
    """Warm and cold check of one project, lark alone on it, and the phases; also the cold times."""
    cold = Child([sys.executable, "-m", "bbflow", "check", "--no-cache", str(project)])
    lark = lark_alone(project, lark_cache)
    lark()  # lark's cache file written once, untimed (as bbflow's own tables are already there)
    lark.cpu.clear()
    warm = InProcess(project)
    if rounds > 1:
        times = compare({"warm": warm, "cold": cold, "lark": lark}, repeat=rounds, warmup=0)
    else:  # one round of a big project, still the same check as the smaller ones (not the phases run below)
        times = {"cold": [cold()], "lark": [lark()], "warm": [warm()]}
    split = phases(project)
    cpu = {"cold": cold.cpu, "lark": lark.cpu}
    peak = max(cold.peaks)
    out = [
        Figure(SECTION, f"check {name}, warm process, in CPU time", "lines/s", Stats.of(warm.cpu).inverse(lines)),
        Figure(SECTION, f"check {name}, warm process", "lines/s", Stats.of(times["warm"]).inverse(lines)),
        Figure(SECTION, f"check {name}, cold process", "lines/s", Stats.of(times["cold"]).inverse(lines),
               (("lark alone, fresh process", ratios(times, "cold", "lark")),
                ("lark alone, in CPU time", ratios(cpu, "cold", "lark")),
                ("warm process", ratios(times, "cold", "warm")))),
        Figure(SECTION, f"lark alone {name}, fresh process", "lines/s", Stats.of(times["lark"]).inverse(lines),
               note=f"peak RSS {max(lark.peaks) / MiB:.0f} MiB"),
        Figure(SECTION, f"check {name}, cold process peak RSS", "MiB", Stats.of([peak / MiB]),
               note=f"{(peak - base_rss) / MiB:.0f} MiB above the process start"),
    ]
    total = split["total"]
    for key, label in (("parse", "parse to our AST (lark's LALR + our reductions)"),
                       ("passes", "checker passes (ours)")):
        out.append(Figure(SECTION, f"phase {name}: {label}", "% of check", Stats.of([100 * split[key] / total]),
                          note=f"{split[key]:.2f} s"))
    out.append(Figure(SECTION, f"phase {name}: plain Lark.parse (tree), for reference", "% of check",
                      Stats.of([100 * split["lark_plain"] / total]),
                      (("our parse, in time", Stats.of([split["lark_plain"] / split["parse"]])),),
                      note=f"{split['lark_plain']:.2f} s"))
    return out, times


def startup_figures(root: Path, rounds: int) -> list[Figure]:
    """``bbflow check`` of a one-line file (cached, and with --no-cache) against importing lark, attrs, click."""
    one = root / "one.flow"
    one.write_text("signal cell.ready\n", encoding="utf-8")
    subjects = {"imports": Child([sys.executable, "-c", IMPORTS_CHILD]),
                "check": Child([sys.executable, "-m", "bbflow", "check", str(one)]),
                "no-cache": Child([sys.executable, "-m", "bbflow", "check", "--no-cache", str(one)])}
    times = compare(subjects, repeat=rounds, warmup=1)
    start = ratios(times, "check", "imports")
    return [
        Figure(SECTION, f'start-up: python -c "{IMPORTS_CHILD}"', "s", Stats.of(times["imports"])),
        Figure(SECTION, "start-up: bbflow check of a one-line file", "s", Stats.of(times["check"]),
               (("the imports", start),)),
        Figure(SECTION, "start-up: bbflow check --no-cache of a one-line file", "s", Stats.of(times["no-cache"]),
               (("the imports", ratios(times, "no-cache", "imports")),)),
        target(SECTION, "bbflow check of a one-line file / import lark, attrs, click", start, ONE_LINE_VS_IMPORTS),
    ]


def scaling_figures(root: Path, routes: Sequence[int], modules: Sequence[int], module_routes: int,
                    rounds: int) -> list[Figure]:
    """The route checks at growing sizes, each twice the previous: seconds, and the ratio to the previous."""
    out: list[Figure] = []
    series = (("routes x signals", [(f"{r:,} routes x {r:,} signals, one agent", routes_by_signals(r, r))
                                    for r in routes]),
              ("modules x routes", [(f"{m} modules x {module_routes} routes", modules_by_routes(m, module_routes))
                                    for m in modules]))
    for kind, programs in series:
        previous: tuple[str, list[float]] | None = None
        for label, texts in programs:
            folder = root / "scaling"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            for file, text in texts.items():
                (folder / file).write_text(text, encoding="utf-8")
            checked(folder)  # clean, and warmed
            times = compare({"check": sync_timer(lambda folder=folder: checked(folder))}, repeat=rounds, warmup=0)
            against = ()
            if previous is not None:
                growth = Stats.of([a / b for a, b in zip(times["check"], previous[1])])
                against = ((f"{previous[0]} (half the input; linear: 2)", growth),)
            out.append(Figure(SECTION, f"{kind}: {label}", "s", Stats.of(times["check"]), against))
            previous = (label, times["check"])
    return out


#: one expression of many terms: (what it is, the reactor's result type, the expression of n terms, its codes)
LONG_EXPRESSIONS = (("a sum `1 + 1 + ...` (refused: BBF003)", "int", lambda n: " + ".join(["1"] * n), ["BBF003"]),
                    ("a list `[1, 1, ...]`", "list[int]", lambda n: "[" + ", ".join(["1"] * n) + "]", []))


def expression_figures(root: Path, terms: Sequence[int], rounds: int) -> list[Figure]:
    """``check`` of one expression of growing numbers of terms: seconds, and the ratio to the previous size."""
    out: list[Figure] = []
    for label, result_type, expression, codes in LONG_EXPRESSIONS:
        previous: tuple[int, list[float]] | None = None
        for n in terms:
            path = root / "long_expression.flow"
            path.write_text(f"reactor R() -> {result_type} {{\n    return {expression(n)}\n}}\n", encoding="utf-8")

            def run(path: Path = path) -> None:
                found = [d.code for d in compile_paths([path]).diagnostics.items]
                assert found == codes, f"{path}: {found}, expected {codes}"

            run()
            times = compare({"check": sync_timer(run)}, repeat=rounds, warmup=0)
            against = ()
            if previous is not None:
                growth = Stats.of([a / b for a, b in zip(times["check"], previous[1])])
                against = ((f"{previous[0]:,} terms (linear: {n / previous[0]:g})", growth),)
            out.append(Figure(SECTION, f"one expression: {label}, {n:,} terms", "s", Stats.of(times["check"]),
                              against))
            previous = (n, times["check"])
    return out


def figures(runs: Mapping[int, int], cache_sizes: Iterable[int] = (), *, workdir: Path | None = None,
            log: Callable[[str], None] = print, startup_rounds: int = 5, routes: Sequence[int] = (1_000, 2_000, 4_000),
            modules: Sequence[int] = (25, 50, 100), module_routes: int = 40,
            terms: Sequence[int] = (2_000, 8_000, 32_000)) -> list[Figure]:
    """Every compiler figure: ``runs`` maps each project size (lines) to its number of rounds."""
    out: list[Figure] = []
    cache_sizes = set(cache_sizes)
    with tempfile.TemporaryDirectory(prefix="bbflow-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        bytecode = "from bytecode" if compiled_bytecode() else "bytecode NOT written for every module"
        start_s, _, base_rss = run_child([sys.executable, "-c", BASELINE_CHILD])
        out.append(Figure(SECTION, "process start: imports + parser tables", "s", Stats.of([start_s]),
                          note=f"peak RSS {base_rss / MiB:.0f} MiB; bbflow {bytecode}"))
        log("  compiler: start-up")
        out.extend(startup_figures(root, startup_rounds))
        cold: dict[int, tuple[int, list[float]]] = {}  # size -> (lines, cold check seconds)
        warm_rate: dict[int, Stats] = {}
        for lines, r in runs.items():
            project, n_files, real_lines = make_project(root, lines)
            name = f"{_k(lines)} ({real_lines:,} lines, {n_files} files)"
            log(f"  compiler: {name}, {r} round(s)")
            checked(project)  # clean, and the parser made and every compiler module used once
            rows, times = size_figures(name, project, real_lines, r, root / "lark-cache", base_rss)
            out.extend(rows)
            cold[lines] = (real_lines, times["cold"])
            warm_rate[lines] = rows[0].value  # type: ignore[assignment]  # lines/s in CPU time, always measured
            if lines == 10_000:
                out.append(target(SECTION, "cold check --no-cache of 10k lines / lark alone parsing them",
                                  ratios(times, "cold", "lark"), COLD_VS_LARK))
            if lines in cache_sizes:
                out.extend(cache_figures(name, project, r))
            shutil.rmtree(project, ignore_errors=True)
        out.extend(_growth_figures(cold, warm_rate))
        log("  compiler: scaling of the route checks")
        out.extend(scaling_figures(root, routes, modules, module_routes, min(3, max(runs.values(), default=1))))
        log("  compiler: scaling of one long expression")
        out.extend(expression_figures(root, terms, min(3, max(runs.values(), default=1))))
    return out


def _growth_figures(cold: Mapping[int, tuple[int, list[float]]], warm_rate: Mapping[int, Stats]) -> list[Figure]:
    """100k lines against 10k (cold process, medians of this run) and lines/s from the smallest size up."""
    out: list[Figure] = []
    if 10_000 in cold and 100_000 in cold:
        (small_lines, small), (big_lines, big) = cold[10_000], cold[100_000]
        growth = Stats.of([Stats.of(big).median / Stats.of(small).median])
        row = target(SECTION, "cold check of 100k lines / of 10k lines", growth, BIG_VS_10K)
        out.append(Figure(row.section, row.name, row.unit, row.value,
                          note=f"{row.note}; {big_lines / small_lines:.1f}x the lines"))
    sizes = sorted(warm_rate)
    for size in sizes[1:]:
        slowdown = warm_rate[sizes[0]].median / warm_rate[size].median
        out.append(Figure(SECTION, f"lines/s, warm process, in CPU time: {_k(sizes[0])} / {_k(size)}", "x",
                          Stats.of([slowdown]), note="flat: near 1"))
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
