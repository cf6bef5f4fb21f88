"""What durability costs: the journal's overhead per step, its size over many runs, and recovery time.

- per step: a chain of N and a fan-out of N commands through the robot proxy
  (a driver that returns at once), with the journal (``sync = full`` and
  ``normal``) and without, interleaved in the same rounds. The floor is a bare
  SQLite WAL commit of one intent record (one INSERT, one COMMIT, on the same
  thread), measured in the same rounds: the journal's added cost per step is
  compared with it. With ``full`` the commits (one fsync each) are counted per
  run: a fan-out's intents share them (group commit).
- size: the file (database and WAL) after N runs of 5 steps each, with
  retention (``keep`` = 0: every finished run is pruned at the next retention
  pass) and without.
- recovery: the time to roll back N unfinished runs (each 3 steps completed and
  1 in doubt) on the simulated robot with commands that take no time.

    python benchmarks/bench_journal.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Figure, Stats, async_timer, compare, ratios, table

from bbflow.runtime import model
from bbflow.runtime.events import fanout
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.journal import Journal, JournalConfig
from bbflow.runtime.journal.recovery import Recovery
from bbflow.runtime.journal.store import connect
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.types import INT

TIMEOUT = 10.0
SPEC = model.Robot("Bench", "bench.Bench", ("idle",), (), {
    "op": model.Command("op", (model.Param("tag", INT),), INT, timeout=TIMEOUT,
                        undo=model.CommandCall("undo", lambda s: {"tag": s["args"]["tag"]})),
    "undo": model.Command("undo", (model.Param("tag", INT),), INT, timeout=TIMEOUT),
}, {})


class Instant:
    """A driver whose commands return at once (only the orchestration and the journal are measured)."""

    def __init__(self, handle: Any, options: Any) -> None:
        pass

    async def op(self, tag: int) -> int:
        return tag

    async def undo(self, tag: int) -> int:
        return tag


def reactor(n: int, *, chain: bool) -> tuple[model.Program, model.Reactor]:
    steps = [model.Step(f"s{i}", model.CommandCall("op", lambda s, i=i: {"tag": i}),
                        deps=(f"s{i - 1}",) if chain and i else (), timeout=TIMEOUT) for i in range(n)]
    r = model.Reactor("Bench", "bench.Bench", (), None, "bench.Bench", model.Body(tuple(steps), None), concurrency=n)
    program = model.Program()
    program.add(SPEC)
    program.add(r)
    return program, r


def _fresh(folder: Path, name: str) -> Path:
    path = folder / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


class Subject:
    """One timed subject: a run of the reactor through a proxy, with a journal of ``sync`` or none."""

    def __init__(self, folder: Path, program: model.Program, r: model.Reactor, sync: str | None) -> None:
        self.folder, self.program, self.reactor, self.sync = folder, program, r, sync
        self.commits: list[int] = []

    async def once(self) -> None:
        journal = None
        if self.sync is not None:
            journal = Journal.open(JournalConfig(_fresh(self.folder, f"{self.sync}.db"), sync=self.sync, keep=None),
                                   "bench")
            journal.start(asyncio.get_running_loop())
            await journal.writer.flush()
            before = journal.writer.commits
        try:
            async with RobotProxy(SPEC, "bench", Instant) as robot:
                await robot.call("arm", {})
                result = await run_reactor(self.program, self.reactor, {}, robot=robot, journal=journal,
                                           observer=journal.observe if journal is not None else None)
                assert result.ok, result
            if journal is not None:
                await journal.writer.flush()
                self.commits.append(journal.writer.commits - before - 1)  # the flush's own commit aside
        finally:
            if journal is not None:
                journal.close()


def floor_timer(folder: Path, sync: str, n: int) -> Callable[[], float]:
    """N bare single-intent commits (INSERT + COMMIT) on one thread: the floor per commit."""
    def timer() -> float:
        conn = connect(_fresh(folder, f"floor-{sync}.db"), sync=sync)
        conn.execute("CREATE TABLE calls (seq INTEGER PRIMARY KEY, run TEXT, kind TEXT, step TEXT, idx TEXT, "
                     "attempt INTEGER, target TEXT, args TEXT, undo TEXT, hold TEXT, sent REAL)")
        start = time.perf_counter()
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO calls VALUES (?, 'r', 'step', ?, '[]', 1, 'op', ?, ?, NULL, ?)",
                         (i, f"s{i}", '{"tag":%d}' % i, '{"command":"undo","args":{"tag":%d}}' % i, time.time()))
            conn.execute("COMMIT")
        took = time.perf_counter() - start
        conn.close()
        return took
    return timer


def overhead_figures(steps: int, repeat: int, folder: Path) -> list[Figure]:
    out = []
    for shape, chain in (("chain", True), ("fan-out", False)):
        program, r = reactor(steps, chain=chain)
        subjects = {sync: Subject(folder, program, r, sync) for sync in (None, "normal", "full")}
        timers = {f"{shape}: no journal": async_timer(subjects[None].once),
                  f"{shape}: journal, sync normal": async_timer(subjects["normal"].once),
                  f"{shape}: journal, sync full": async_timer(subjects["full"].once),
                  "floor: bare WAL commit, normal": floor_timer(folder, "normal", steps),
                  "floor: bare WAL commit, full": floor_timer(folder, "full", steps)}
        times = compare(timers, repeat=repeat)
        scale = 1e6 / steps
        base = times[f"{shape}: no journal"]
        out.append(Figure("journal", f"{shape} of {steps:,}: no journal", "µs/step", Stats.of(base).scaled(scale)))
        for sync in ("normal", "full"):
            label = f"{shape}: journal, sync {sync}"
            floor = times[f"floor: bare WAL commit, {sync}"]
            added = [(t - b) for t, b in zip(times[label], base)]
            per_floor = Stats.of([a / f for a, f in zip(added, floor)])
            commits = subjects[sync].commits
            note = f"{statistics_median(commits) / steps:.3f} commits (fsyncs with full) per step"
            out.append(Figure("journal", f"{shape} of {steps:,}: journal, sync {sync}", "µs/step",
                              Stats.of(times[label]).scaled(scale), (("no journal", ratios(times, label,
                                                                                           f"{shape}: no journal")),),
                              note))
            out.append(Figure("journal", f"{shape} of {steps:,}: added by the journal ({sync}) / floor", "×",
                              per_floor, note=f"floor {Stats.of(floor).scaled(scale).median:.1f} µs per commit"))
    return out


def statistics_median(values: list[int]) -> float:
    return sorted(values)[len(values) // 2] if values else 0.0


# --- size with retention ----------------------------------------------------------------------


async def _many_runs(journal: Journal, runs: int) -> None:
    journal.start(asyncio.get_running_loop())
    for k in range(runs):
        run = f"run-{k}"
        journal.observe({"event": "run.start", "run": run, "reactor": "Job", "inputs": {"job": k}})
        for step in range(5):
            seq = await journal.intent(run, "step", f"s{step}", (), 1, "op", {"tag": step},
                                       {"command": "undo", "args": {"tag": step}})
            journal.returned(seq, True, step, None)
        journal.observe({"event": "run.ok", "run": run, "reactor": "Job", "result": k})
    await journal.writer.flush()


def _size(path: Path) -> int:
    return sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists())


def size_figures(runs: int, folder: Path) -> list[Figure]:
    out = []
    for label, keep in (("with retention (keep 0)", 0.0), ("without retention", None)):
        path = _fresh(folder, "size.db")
        journal = Journal.open(JournalConfig(path, sync="normal", keep=keep), "bench")
        start = time.perf_counter()
        asyncio.run(_many_runs(journal, runs))
        took = time.perf_counter() - start
        journal.close()
        size = _size(path)
        out.append(Figure("journal", f"size after {runs:,} runs of 5 steps, {label}", "MB",
                          Stats.of([size / 1e6]), note=f"{took:.1f} s to write"))
    return out


# --- recovery time ----------------------------------------------------------------------------


def _crashed(path: Path, runs: int) -> None:
    journal = Journal.open(JournalConfig(path, keep=None), "bench")
    conn = journal.conn
    now = time.time()
    seq = 0
    conn.execute("BEGIN")
    for k in range(runs):
        conn.execute("INSERT INTO runs (id, reactor, robot, status, started) VALUES (?, 'Bench', 'bench', "
                     "'running', ?)", (f"r{k}", now))
        for step in range(4):
            seq += 1
            conn.execute("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, args, undo, sent, outcome) "
                         "VALUES (?, ?, 'step', ?, '[]', 1, 'op', ?, ?, ?, ?)",
                         (seq, f"r{k}", f"s{step}", '{"tag":%d}' % step, '{"command":"undo","args":{"tag":%d}}' % step,
                          now, "ok" if step < 3 else None))
    conn.execute("COMMIT")
    journal.close()


def recovery_figures(runs: int, repeat: int, folder: Path) -> list[Figure]:
    times = []
    for _ in range(repeat):
        path = _fresh(folder, "recover.db")
        _crashed(path, runs)
        journal = Journal.open(JournalConfig(path, sync="full", keep=None), "bench")

        async def recover() -> float:
            journal.start(asyncio.get_running_loop())
            async with RobotProxy(SPEC, "bench", Instant) as robot:
                await robot.call("arm", {})
                start = time.perf_counter()
                done = await Recovery(journal, model.Program(), {"bench": robot}).run()
                took = time.perf_counter() - start
            assert len(done) == runs and all(d.action == "rolled back" for d in done)
            return took

        times.append(asyncio.run(recover()))
        journal.close()
    return [Figure("journal", f"recovery of {runs:,} unfinished runs (4 undos each), sync full", "s",
                   Stats.of(times), note=f"{Stats.of(times).median / runs * 1e3:.2f} ms per run")]


def figures(steps: int, repeat: int, size_runs: int, recover_runs: int) -> list[Figure]:
    folder = Path(tempfile.mkdtemp(prefix="bbflow-bench-journal-"))
    try:
        return [*overhead_figures(steps, repeat, folder), *size_figures(size_runs, folder),
                *recovery_figures(recover_runs, max(1, repeat // 3), folder)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        print(table(figures(1_000, 5, 10_000, 1_000)))
    else:
        print(table(figures(1_000, 11, 100_000, 1_000)))




if __name__ == "__main__":
    main()
