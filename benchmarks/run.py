"""Every bbflow benchmark in one run: prints a table and writes benchmarks/results.json.

    python benchmarks/run.py [--quick] [--only SECTION ...] [--out FILE]

Sections (each figure a median of several runs with min and max; each ratio
computed from measurements taken in the same rounds, see ``common``):

- compiler: ``bbflow check`` throughput and peak memory on generated projects
  (1k and 10k lines; 100k in the full run), cold and warm process, against
  lark alone parsing the same files in a fresh process, the share of the parse
  against our passes, the cache, start-up against importing lark, attrs and
  click, and the scaling of the route checks (routes x signals, modules x
  routes) (``bench_compiler``);
- executor: per-step cost of ``run_reactor`` against a hand-written asyncio
  saga and a bare await chain (``bench_executor``'s reactors and baselines),
  chain and fan-out of 1,000, success and failure with rollback;
- memory: bytes per run with 1,000 runs of a 10-step reactor in flight;
- router: lookups/s with 10, 1,000 and 10,000 routes against a linear scan
  (``bench_router``'s workload);
- agent: signals/s and p50/p99 latency through one agent (``bench_agent``);
- bus: 1 KB signals/s and p50/p99 latency between two processes over Zenoh on
  loopback, next to the local bus in the same rounds, and bytes on the wire
  per signal (``bench_bus``; skipped without the ``bus`` extra);
- tasks: the cost of the robot's hold and queue per run against the same run
  without them, and 10,000 runs queued at once on one robot (``bench_tasks``);
- peers: py_trees and LangGraph doing the same work (``bench_peers``);
- serve: the control plane under a steady load of signals over HTTP with SSE
  clients attached, against the same load on standard input (``bench_serve``;
  quick: 10 s at 1,000 signals/s, full: 60 s);
- journal: what durability costs per step (chain and fan-out, ``sync`` full
  and normal, against no journal and against a bare SQLite commit), the
  journal's size after many runs with retention, and recovery time
  (``bench_journal``);
- stdin: a soak of a real ``bbflow run``: signals through one agent from
  standard input, two input sizes (1,000,000 signals in the full run), with the
  child's peak memory and the signals lost (must be 0) (``bench_stdin``);
- hardening: did-you-mean with thousands of unknown names (near-linear), the
  peak memory of parsing a long string literal, and the memory a run board
  holds after thousands of runs (bounded) (``bench_hardening``);
- lsp: the language server driven by an LSP client on the 10k-line project:
  diagnostics after a one-line edit, hover while a check runs (against hover
  on an idle server), a request cancelled while it waits, completion at each
  keystroke typed in a 3,000-step reactor (against a 10-step one) (``bench_lsp``).

``--quick`` (under two minutes) runs fewer rounds and leaves out the 100k-line
project; the full run takes about ten to fifteen minutes on two cores. After
the table it prints the speed targets (rows named ``target: ...``: the
measured ratio, its limit, met or not); ``--render results.json`` prints the
Markdown of a past run (targets, then every figure), and with ``--update
BENCHMARKS.md`` writes it into that file's results block.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_agent  # noqa: E402
import bench_bus  # noqa: E402
import bench_compiler  # noqa: E402
import bench_executor  # noqa: E402
import bench_hardening  # noqa: E402
import bench_journal  # noqa: E402
import bench_lsp  # noqa: E402
import bench_peers  # noqa: E402
import bench_router  # noqa: E402
import bench_serve  # noqa: E402
import bench_stdin  # noqa: E402
import bench_tasks  # noqa: E402
from common import Figure, Stats, async_timer, compare, format_stats, ratios, table  # noqa: E402

from bbflow.runtime import model  # noqa: E402
from bbflow.runtime.events import Recorder  # noqa: E402
from bbflow.runtime.executor import run_reactor  # noqa: E402
from bbflow.runtime.ports import RuntimeFailure  # noqa: E402

SECTIONS = ("compiler", "executor", "memory", "router", "agent", "bus", "tasks", "peers", "serve", "journal", "stdin", "hardening", "lsp")


# --- settings ---------------------------------------------------------------------------


def settings(quick: bool) -> dict[str, Any]:
    """How much of everything to run."""
    if quick:
        return {
            "compiler": {"sizes": (1_000, 10_000), "repeat": 3, "big": 50_000, "big_repeat": 1, "cache": (1_000,),
                         "startup": 5, "routes": (500, 1_000, 2_000), "modules": (25, 50, 100), "module_routes": 20,
                         "terms": (2_000, 8_000, 32_000)},
            "executor": {"steps": 1_000, "repeat": 7},
            "memory": {"runs": 1_000, "steps": 10, "repeat": 2},
            "router": {"routes": (10, 1_000, 10_000), "seconds": 0.05, "repeat": 3},
            "agent": {"signals": 5_000, "burst": 500, "repeat": 3},
            "bus": {"signals": 5_000, "burst": 500, "repeat": 2},
            "tasks": {"runs": 500, "queued": (1_000, 10_000), "repeat": 3},
            "peers": {"steps": 1_000, "repeat": 5},
            "serve": {"seconds": 10.0, "rate": 1_000, "clients": 10},
            "journal": {"steps": 1_000, "repeat": 5, "size_runs": 10_000, "recover_runs": 1_000},
            "stdin": {"signals": (10_000, 50_000)},
            "hardening": {"names": (250, 500, 1_000), "literals": (1_000_000,), "runs": (1_000, 9_000)},
            "lsp": {"lines": 10_000, "edits": 9, "steps": 3_000},
        }
    return {
        "compiler": {"sizes": (1_000, 10_000, 100_000), "repeat": 5, "big": 50_000, "big_repeat": 1,
                     "cache": (1_000, 10_000), "startup": 11, "routes": (1_000, 2_000, 4_000),
                     "modules": (25, 50, 100), "module_routes": 40, "terms": (2_000, 8_000, 32_000)},
        "executor": {"steps": 1_000, "repeat": 21},
        "memory": {"runs": 1_000, "steps": 10, "repeat": 5},
        "router": {"routes": (10, 1_000, 10_000), "seconds": 0.2, "repeat": 7},
        "agent": {"signals": 20_000, "burst": 500, "repeat": 5},
        "bus": {"signals": 20_000, "burst": 500, "repeat": 5},
        "tasks": {"runs": 1_000, "queued": (1_000, 10_000), "repeat": 7},
        "peers": {"steps": 1_000, "repeat": 11},
        "serve": {"seconds": 60.0, "rate": 1_000, "clients": 10},
        "journal": {"steps": 1_000, "repeat": 11, "size_runs": 100_000, "recover_runs": 1_000},
        "stdin": {"signals": (100_000, 1_000_000)},
        "hardening": {"names": (1_000, 2_000, 4_000), "literals": (1_000_000, 5_000_000), "runs": (1_000, 9_000)},
        "lsp": {"lines": 10_000, "edits": 21, "steps": 3_000},
    }


# --- executor: per-step cost against hand-written asyncio ------------------------------


class FailingPort(bench_executor.NoopPort):
    """The no-op driver, except that ``op`` fails for one tag (the last step): the run rolls back."""

    def __init__(self, fail_tag: int) -> None:
        self.fail_tag = fail_tag

    async def call(self, command: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
        if command == "op" and kwargs["tag"] == self.fail_tag:
            raise RuntimeFailure("op: injected failure", "command", command=command)
        return kwargs["tag"]


async def _expect_failure(coro: Awaitable[Any]) -> None:
    """Await a hand-written saga that must fail (after its rollback)."""
    failed = False
    try:
        await coro
    except* RuntimeFailure:
        failed = True
    assert failed, "the saga did not fail"


def _bbflow(program: model.Program, reactor: model.Reactor, port: Any, status: str, undone: int,
            observe: bool = False) -> Callable[[], Awaitable[None]]:
    async def go() -> None:
        recorder = Recorder() if observe else None
        result = await run_reactor(program, reactor, {}, robot=port, observer=recorder)
        assert result.status == status, result
        assert not result.undo_errors
        if recorder is not None:
            assert len(recorder.named("undo.ok")) == undone

    return go


def executor_figures(steps: int, repeat: int) -> list[Figure]:
    """µs per step for chain and fan-out, success and rollback; ratios against the saga and bare awaits."""
    out: list[Figure] = []
    ok_port, fail_port = bench_executor.NoopPort(), FailingPort(steps - 1)
    for shape, chain in (("chain", True), ("fan-out", False)):
        program, reactor = bench_executor.reactor(steps, chain=chain)
        saga = bench_executor.saga_chain if chain else bench_executor.saga_fanout
        bare = bench_executor.bare_chain if chain else bench_executor.bare_fanout
        bare_label = "bare await chain" if chain else "bare TaskGroup"
        for outcome in ("success", "rollback"):
            if outcome == "success":
                timers = {
                    bare_label: async_timer(lambda bare=bare: bare(ok_port, steps)),
                    "hand-written saga": async_timer(lambda saga=saga: saga(ok_port, steps)),
                    "bbflow run_reactor": async_timer(_bbflow(program, reactor, ok_port, "ok", 0)),
                    "bbflow run_reactor + events": async_timer(_bbflow(program, reactor, ok_port, "ok", 0, True)),
                }
            else:
                timers = {
                    "hand-written saga": async_timer(lambda saga=saga: _expect_failure(saga(fail_port, steps))),
                    "bbflow run_reactor": async_timer(_bbflow(program, reactor, fail_port, "failed", steps - 1)),
                    "bbflow run_reactor + events": async_timer(
                        _bbflow(program, reactor, fail_port, "failed", steps - 1, True)),
                }
            times = compare(timers, repeat=repeat)
            scale = 1e6 / steps
            for label in timers:
                against = [(other, ratios(times, label, other)) for other in ("hand-written saga", bare_label)
                           if other in timers and other != label and not (label == "hand-written saga"
                                                                          and other != bare_label)]
                if label == bare_label:
                    against = []
                out.append(Figure("executor", f"{shape} of {steps:,}, {outcome}: {label}", "µs/step",
                                  Stats.of(times[label]).scaled(scale), tuple(against)))
    return out


# --- memory: runs in flight ------------------------------------------------------------------


class GatePort(bench_executor.NoopPort):
    """The no-op driver, except that ``op`` with tag ``hold`` waits at a gate: runs pile up in flight."""

    def __init__(self, hold: int, expected: int) -> None:
        self.hold = hold
        self.expected = expected
        self.waiting = 0
        self.gate = asyncio.Event()
        self.all_waiting = asyncio.Event()

    async def call(self, command: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
        if command == "op" and kwargs["tag"] == self.hold:
            self.waiting += 1
            if self.waiting == self.expected:
                self.all_waiting.set()
            await self.gate.wait()
        return kwargs["tag"]


async def bytes_in_flight(start: Callable[[GatePort], Awaitable[Any]], runs: int, steps: int) -> float:
    """Bytes Python holds per run while ``runs`` runs wait half-way through their ``steps``."""
    port = GatePort(steps // 2, runs)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        async with asyncio.TaskGroup() as tg:
            for _ in range(runs):
                tg.create_task(start(port))
            await port.all_waiting.wait()
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - base
            port.gate.set()
    finally:
        tracemalloc.stop()
    return held / runs


def memory_figures(runs: int, steps: int, repeat: int) -> list[Figure]:
    """KiB per run in flight: bbflow against the hand-written saga and bare awaits, same reactor shape."""
    program, reactor = bench_executor.reactor(steps, chain=True)

    async def bbflow(port: GatePort) -> None:
        result = await run_reactor(program, reactor, {}, robot=port)
        assert result.ok, result

    subjects: dict[str, Callable[[GatePort], Awaitable[Any]]] = {
        "bare await chain": lambda port: bench_executor.bare_chain(port, steps),
        "hand-written saga": lambda port: bench_executor.saga_chain(port, steps),
        "bbflow run_reactor": bbflow,
    }
    sizes: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(repeat):
        for name, start in subjects.items():
            sizes[name].append(asyncio.run(bytes_in_flight(start, runs, steps)))
    out = []
    for name in subjects:
        against = () if name != "bbflow run_reactor" else tuple(
            (other, ratios(sizes, name, other)) for other in ("hand-written saga", "bare await chain"))
        out.append(Figure("memory", f"{runs:,} runs of a {steps}-step chain in flight: {name}", "KiB/run",
                          Stats.of(sizes[name]).scaled(1 / 1024), against))
    return out


# --- the control plane --------------------------------------------------------------------


def serve_figures(seconds: float, rate: int, clients: int) -> list[Figure]:
    """One load of ``seconds`` at ``rate`` signals/s over HTTP (with ``clients`` SSE readers), then on stdin."""
    s = bench_serve.summary(seconds, rate, clients)

    def one(value: float) -> Stats:
        return Stats.of([value])

    def against(value: float, base: float, label: str) -> tuple[tuple[str, Stats], ...]:
        return ((label, one(value / base if base else 0.0)),)

    series = s["rss_series_mib"]
    settled = series[min(len(series) - 1, int(10 / bench_serve.SAMPLE))]  # 10 s in: the event ring is full
    return [
        Figure("serve", f"signals/s achieved (asked {rate}/s for {seconds:g} s, {clients} SSE clients)", "signals/s",
               one(s["rate"])),
        Figure("serve", "poster behind its schedule, at most", "ms", one(s["behind_ms"])),
        Figure("serve", "accepted (202)", "share", one(s["accepted"])),
        Figure("serve", "accept latency p50 (POST to 202)", "ms", one(s["accept_p50_ms"])),
        Figure("serve", "accept latency p99 (POST to 202)", "ms", one(s["accept_p99_ms"])),
        Figure("serve", "turn latency p50 over HTTP (signal.in to signal.routed)", "ms", one(s["turn_http_p50_ms"]),
               against(s["turn_http_p50_ms"], s["turn_stdin_p50_ms"], f"stdin at {rate}/s")),
        Figure("serve", "turn latency p99 over HTTP", "ms", one(s["turn_http_p99_ms"]),
               against(s["turn_http_p99_ms"], s["turn_stdin_p99_ms"], f"stdin at {rate}/s")),
        Figure("serve", "turn latency p50 on stdin (same schedule)", "ms", one(s["turn_stdin_p50_ms"])),
        Figure("serve", "turn latency p99 on stdin (same schedule)", "ms", one(s["turn_stdin_p99_ms"])),
        Figure("serve", "cell CPU per signal over HTTP", "ms", one(s["cpu_http_ms"]),
               against(s["cpu_http_ms"], s["cpu_stdin_ms"], "stdin")),
        Figure("serve", "cell CPU per signal on stdin", "ms", one(s["cpu_stdin_ms"])),
        Figure("serve", "events each SSE client received (fewest)", "events", one(s["sse_events_min"])),
        Figure("serve", "stream.skipped markers (all clients)", "markers", one(s["sse_skipped_total"])),
        Figure("serve", "server RSS before the load", "MiB", one(s["rss_warm_mib"])),
        Figure("serve", "server RSS 10 s into the load", "MiB", one(settled)),
        Figure("serve", "server RSS peak", "MiB", one(s["rss_peak_mib"]), against(s["rss_peak_mib"], settled, "10 s in")),
        Figure("serve", "server RSS at the end", "MiB", one(s["rss_end_mib"])),
        Figure("serve", "machine load average (1 min) at the start of the load", "load", one(s["load_start"])),
    ]


# --- router and agent ------------------------------------------------------------------------


def router_figures(route_counts: Sequence[int], seconds: float, repeat: int) -> list[Figure]:
    """Lookups/s of the trie (cold, memoised) and a linear scan, rounds interleaved."""
    out = []
    rng = random.Random(7)
    for n in route_counts:
        cold, memo, linear, types = bench_router.workload(n, rng)
        linear_types = types if n <= 1_000 else types[:100]
        rates: dict[str, list[float]] = {"trie, cold": [], "trie, memoised": [], "linear scan": []}
        for _ in range(repeat):
            rates["trie, cold"].append(bench_router.rate(cold.lookup, types, seconds))
            rates["trie, memoised"].append(bench_router.rate(memo.lookup, types, seconds))
            rates["linear scan"].append(bench_router.rate(linear.lookup, linear_types, seconds))
        costs = {name: [1 / r for r in values] for name, values in rates.items()}  # seconds per lookup
        for name, values in rates.items():
            against = (("trie, cold", ratios(costs, name, "trie, cold")),) if name == "linear scan" else ()
            out.append(Figure("router", f"{n:,} routes: {name}", "lookups/s", Stats.of(values), against))
    return out


def agent_figures(signals: int, burst: int, repeat: int) -> list[Figure]:
    """Signals/s and p50/p99 latency through one agent, one at a time and in bursts."""
    out = []
    for name, make in (("one at a time", lambda: bench_agent.one_at_a_time(signals // 5)),
                       (f"bursts of {burst}", lambda: bench_agent.bursts(signals, burst))):
        per_second, p50, p99 = [], [], []
        for _ in range(repeat):
            gc.collect()
            rate, latencies = asyncio.run(make())
            per_second.append(rate)
            p50.append(bench_agent.percentile(latencies, 50) * 1e6)
            p99.append(bench_agent.percentile(latencies, 99) * 1e6)
        out.append(Figure("agent", f"{name}: throughput", "signals/s", Stats.of(per_second)))
        out.append(Figure("agent", f"{name}: latency p50", "µs", Stats.of(p50)))
        out.append(Figure("agent", f"{name}: latency p99", "µs", Stats.of(p99)))
    return out


def bus_figures(signals: int, burst: int, repeat: int) -> list[Figure]:
    """The local bus and Zenoh between two processes, round after round: throughput, latency, bytes."""
    try:
        import zenoh  # noqa: F401
    except ImportError:
        return [Figure("bus", "zenoh", "", note="not measured: pip install 'bbflow[bus]'")]
    import tempfile

    out = []
    with tempfile.TemporaryDirectory() as folder:
        for name, load in bench_bus.loads(signals, burst, 20_000):
            local: list[dict[str, float]] = []
            for _ in range(repeat):
                gc.collect()
                local.append(asyncio.run(bench_bus.local(load)))
            remote = asyncio.run(bench_bus.zenoh([load] * repeat, Path(folder)))
            for key, unit, what in (("rate", "signals/s", "throughput"), ("p50", "µs", "latency p50"),
                                    ("p99", "µs", "latency p99")):
                out.append(Figure("bus", f"{name}, local: {what}", unit, Stats.of([r[key] for r in local])))
                cost = [(lr[key] / rr[key]) if key == "rate" else (rr[key] / lr[key]) for lr, rr in zip(local, remote)]
                out.append(Figure("bus", f"{name}, zenoh: {what}", unit, Stats.of([r[key] for r in remote]),
                                  (("local", Stats.of(cost)),)))
            out.append(Figure("bus", f"{name}, zenoh: bytes on the wire", "B/signal",
                              Stats.of([r["bytes"] for r in remote])))
            out.append(Figure("bus", f"{name}, local: CPU", "µs/signal", Stats.of([r["cpu"] for r in local])))
            for key, who in (("cpu", "sender"), ("receiver_cpu", "receiver")):
                out.append(Figure("bus", f"{name}, zenoh: CPU of the {who}", "µs/signal",
                                  Stats.of([r[key] for r in remote])))
    return out


def stdin_figures(sizes: Sequence[int]) -> list[Figure]:
    """The standard-input soak at each size: throughput, peak memory of the child, signals lost."""
    out = []
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = bench_stdin.project(Path(tmp) / "soak")
        for n in sizes:
            r = bench_stdin.soak(root, n)
            peaks[n] = r["peak_mb"]
            note = f"{r['handled']:,} handled, {r['dropped']} dropped, {r['lost']} lost"
            out.append(Figure("stdin", f"{n:,} signals: throughput", "signals/s", Stats.of([r["rate"]]), note=note))
            out.append(Figure("stdin", f"{n:,} signals: peak memory", "MB", Stats.of([r["peak_mb"]]), note=note))
    small, large = min(sizes), max(sizes)
    out.append(Figure("stdin", f"peak memory, {large:,} / {small:,} signals", "ratio",
                      Stats.of([peaks[large] / peaks[small]]),
                      note="flat memory is a ratio near 1 although the input is larger"))
    return out


def hardening_figures(names: Sequence[int], literals: Sequence[int], runs: Sequence[int]) -> list[Figure]:
    """Did-you-mean at growing sizes (with the ratio per step), literal parse peaks, run board memory."""
    out = []
    seconds = {n: bench_hardening.unknown_names(n) for n in names}
    for previous, n in zip(names, names[1:]):
        ratio = Stats.of([seconds[n] / seconds[previous]])
        out.append(Figure("hardening", f"did-you-mean: {n:,} unknown names", "s", Stats.of([seconds[n]]),
                          ((f"{previous:,} names", ratio),), note="near-linear: about the size ratio"))
    out.insert(0, Figure("hardening", f"did-you-mean: {names[0]:,} unknown names", "s", Stats.of([seconds[names[0]]])))
    for size in literals:
        out.append(Figure("hardening", f"parse a {size:,}-byte string literal: peak", "MB",
                          Stats.of([bench_hardening.literal_peak(size)])))
    for n in runs:
        out.append(Figure("hardening", f"run board after {n:,} runs (10 KB results)", "MB held",
                          Stats.of([bench_hardening.board_memory(n)])))
    return out


# --- the run ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("bbflow", "lark", "py_trees", "langgraph"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "versions": versions}


def run(quick: bool, only: Sequence[str] = SECTIONS, log: Callable[[str], None] = print,
        conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the sections named in ``only``; the results as written to results.json.

    ``conf`` replaces ``settings(quick)`` (the smoke test runs everything on tiny sizes).
    """
    conf = conf or settings(quick)
    started = time.perf_counter()
    load_before = os.getloadavg()
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    for section in only:
        log(f"{section} ...")
        t0 = time.perf_counter()
        c = conf[section]
        if section == "compiler":
            figures += bench_compiler.figures({n: (c["big_repeat"] if n >= c["big"] else c["repeat"])
                                               for n in c["sizes"]}, c["cache"], log=log, startup_rounds=c["startup"],
                                              routes=c["routes"], modules=c["modules"],
                                              module_routes=c["module_routes"], terms=c["terms"])
        elif section == "executor":
            figures += executor_figures(c["steps"], c["repeat"])
        elif section == "memory":
            figures += memory_figures(c["runs"], c["steps"], c["repeat"])
        elif section == "router":
            figures += router_figures(c["routes"], c["seconds"], c["repeat"])
        elif section == "agent":
            figures += agent_figures(c["signals"], c["burst"], c["repeat"])
        elif section == "bus":
            figures += bus_figures(c["signals"], c["burst"], c["repeat"])
        elif section == "tasks":
            figures += bench_tasks.figures(c["runs"], tuple(c["queued"]), c["repeat"])
        elif section == "peers":
            figures += bench_peers.figures(c["steps"], c["repeat"])
        elif section == "serve":
            figures += serve_figures(c["seconds"], c["rate"], c["clients"])
        elif section == "journal":
            figures += bench_journal.figures(c["steps"], c["repeat"], c["size_runs"], c["recover_runs"])
        elif section == "stdin":
            figures += stdin_figures(c["signals"])
        elif section == "hardening":
            figures += hardening_figures(c["names"], c["literals"], c["runs"])
        elif section == "lsp":
            figures += bench_lsp.figures(c["lines"], c["edits"], c["steps"])
        timings[section] = time.perf_counter() - t0
        log(f"{section}: {timings[section]:.1f} s")
    return {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "machine": machine(),
        "load": {"before": load_before, "after": os.getloadavg()},  # 1, 5 and 15 minute load averages
        "settings": {k: v for k, v in conf.items() if k in only},
        "seconds": {"total": time.perf_counter() - started, **timings},
        "figures": [f.as_dict() for f in figures],
        "table": table(figures),
    }


def targets_table(figures: Sequence[dict[str, Any]]) -> str:
    """The speed targets of a run (rows named ``target: ...``) as a Markdown table."""
    lines = ["| target | measured: median [min - max] | limit | verdict |", "|---|---|---|---|"]
    for f in figures:
        if f["name"].startswith("target: ") and f["value"]:
            value = Stats(**f["value"])
            limit, verdict = f["note"].removeprefix("target <= ").split(": ", 1)
            extra = f" ({verdict.split('; ', 1)[1]})" if "; " in verdict else ""
            lines.append(f"| {f['name'].removeprefix('target: ')}{extra} | {format_stats(value)}x | {limit}x "
                         f"| {verdict.split('; ', 1)[0]} |")
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    """The Markdown of a run for BENCHMARKS.md: when and where, the targets, then every figure."""
    m, load = results["machine"], results.get("load", {})
    loads = ", ".join(f"{when} {' / '.join(f'{x:.1f}' for x in values)}" for when, values in load.items())
    return "\n".join([
        f"{results['mode']} run ({', '.join(results['settings'])}) of {results['generated']}, "
        f"{results['seconds']['total']:.0f} s; "
        f"{m['nproc']} x {m['cpu']}, {m['implementation']} {m['python']}; "
        f"load average (1 / 5 / 15 min) {loads or 'not recorded'}",
        "", "### Targets", "", targets_table(results["figures"]),
        "", "### Every figure", "", results["table"], ""])


BEGIN = "<!-- results: written by `python benchmarks/run.py --render benchmarks/results.json --update BENCHMARKS.md` -->"
END = "<!-- end of results -->"


def update(document: Path, markdown: str) -> None:
    """Replace what lies between ``BEGIN`` and ``END`` in ``document`` by ``markdown``."""
    text = document.read_text(encoding="utf-8")
    head, found, rest = text.partition(BEGIN)
    _, closed, tail = rest.partition(END)
    if not (found and closed):
        raise SystemExit(f"{document}: no results block ({BEGIN} ... {END}) to replace")
    document.write_text(f"{head}{BEGIN}\n\n{markdown.strip()}\n\n{END}{tail}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no 100k-line project (a few minutes)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="where to write the results")
    parser.add_argument("--render", type=Path, metavar="RESULTS",
                        help="run nothing: print the Markdown of a results.json for BENCHMARKS.md")
    parser.add_argument("--update", type=Path, metavar="DOC",
                        help="with --render: write it into DOC's results block instead of printing it")
    args = parser.parse_args(argv)
    if args.render:
        markdown = render(json.loads(args.render.read_text(encoding="utf-8")))
        if args.update:
            update(args.update, markdown)
        else:
            print(markdown)
        return 0
    results = run(args.quick, args.only, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(results["table"])
    print("\n" + targets_table(results["figures"]))
    m = results["machine"]
    print(f"\n{results['mode']} run, {results['seconds']['total']:.0f} s; {m['nproc']} x {m['cpu']}, "
          f"Python {m['python']}; load average before / after: {results['load']['before'][0]:.1f} / "
          f"{results['load']['after'][0]:.1f}")
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
