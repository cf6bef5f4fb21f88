"""What durability costs: the journal's overhead per step, its size over many runs, and recovery time.

- per step: a chain of N and a fan-out of N commands through the robot proxy
  (a driver that returns at once), with the journal (``sync = full`` and
  ``normal``) and without, interleaved in the same rounds. The floor is a bare
  SQLite WAL commit of one intent record (one INSERT, one COMMIT, on the same
  thread), in a file with the journal's settings (and, for comparison, in one
  of SQLite's default page size), measured in the same rounds: the journal's
  added cost per step is compared with it. With ``full`` the commits (one
  fsync each) are counted per run: a fan-out's intents share them (group
  commit). The same floor commit is
  also made *in the run*, by the driver as each command arrives, without a
  journal: the least any journal that commits each intent pays in that place,
  and what the journal's added cost is compared with too.
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
import contextlib
import gc
import itertools
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Figure, Stats, ratios, table, target

from bbflow.runtime import model
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.journal import Journal, JournalConfig
from bbflow.runtime.journal.recovery import Recovery
from bbflow.runtime.journal.store import MARK_CALLS_FROM, PAGE_SIZE, connect
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


#: The floor's record: a table of the journal's ``calls`` columns (``with_result``: and the result's) and one
#: intent's row.
FLOOR_TABLE = ("CREATE TABLE calls (seq INTEGER PRIMARY KEY, run TEXT, kind TEXT, step TEXT, idx TEXT, "
               "attempt INTEGER, target TEXT, args TEXT, undo TEXT, hold TEXT, sent REAL")
FLOOR_INSERT = ("INSERT INTO calls (seq, run, kind, step, idx, attempt, target, args, undo, hold, sent) "
                "VALUES (?, 'r', 'step', ?, '[]', 1, 'op', ?, ?, NULL, ?)")


def floor_table(path: Path, sync: str, *, with_result: bool = False, page_size: int | None = None) -> sqlite3.Connection:
    """The floor's table, in a file with the journal's settings; ``page_size``: made first with that page size
    instead of the journal's (a file keeps its own)."""
    if page_size is not None:
        with contextlib.closing(sqlite3.connect(path)) as made:
            made.execute(f"PRAGMA page_size = {page_size}")
            made.execute("PRAGMA journal_mode = WAL")
    conn = connect(path, sync=sync)
    conn.execute(FLOOR_TABLE + (", outcome TEXT, result TEXT, error TEXT, returned REAL)" if with_result else ")"))
    return conn


def floor_commit(conn: sqlite3.Connection, i: int) -> None:
    """The floor: one intent record, committed on its own."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(FLOOR_INSERT, (i, f"s{i}", '{"tag":%d}' % i, '{"command":"undo","args":{"tag":%d}}' % i, time.time()))
    conn.execute("COMMIT")


def committing(conn: sqlite3.Connection) -> type[Instant]:
    """A driver that makes the floor's commit as each command arrives: the floor, in the run."""
    count = itertools.count(1)

    class Committing(Instant):
        async def op(self, tag: int) -> int:
            floor_commit(conn, next(count))
            return tag

    return Committing


class Subject:
    """One timed subject: ``runs`` runs of the reactor through a proxy, with a journal of ``sync`` or none;
    or (``in_run``) without a journal, the driver making the floor's commit (``sync``) for each command.

    The journal is opened (and its file created) before the clock starts and closed after it stops: what
    is timed is the runs and the commit of everything they wrote, what a long-running ``bbflow run`` pays
    per step.
    """

    def __init__(self, folder: Path, program: model.Program, r: model.Reactor, runs: int, sync: str | None,
                 *, in_run: bool = False) -> None:
        self.folder, self.program, self.reactor, self.runs, self.sync = folder, program, r, runs, sync
        self.in_run = in_run
        self.commits: list[int] = []
        self.checkpoints: list[int] = []

    async def once(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds of the process) of the runs."""
        journal = None
        driver: type[Instant] = Instant
        floor = None
        if self.in_run:
            assert self.sync is not None
            floor = floor_table(_fresh(self.folder, f"in-run-{self.sync}.db"), self.sync)
            driver = committing(floor)
        elif self.sync is not None:
            journal = Journal.open(JournalConfig(_fresh(self.folder, f"{self.sync}.db"), sync=self.sync, keep=None),
                                   "bench")
            journal.start(asyncio.get_running_loop())
            await journal.writer.flush()
            commits, checkpoints = journal.writer.commits, journal.writer.checkpoints
        try:
            async with RobotProxy(SPEC, "bench", driver) as robot:
                await robot.call("arm", {})
                gc.collect()
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(self.runs):
                    result = await run_reactor(self.program, self.reactor, {}, robot=robot, journal=journal,
                                               observer=journal.observe if journal is not None else None)
                    assert result.ok, result
                if journal is not None:
                    await journal.writer.flush()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if journal is not None:
                self.commits.append(journal.writer.commits - commits - 1)  # the flush's own commit aside
                self.checkpoints.append(journal.writer.checkpoints - checkpoints)
        finally:
            if journal is not None:
                journal.close()
            if floor is not None:
                floor.close()
        return wall, cpu


def floor_once(folder: Path, sync: str, n: int, *, with_result: bool = False,
               page_size: int | None = None) -> tuple[float, float]:
    """N bare single-intent commits (INSERT + COMMIT) on one thread: (wall, CPU) seconds.

    ``with_result``: each commit also records the previous record's result (the journal's ``UPDATE``), as a
    chain step's commit does: SQLite's share of a chain step, without the runtime around it. ``page_size``:
    in a file of that page size, not the journal's.
    """
    conn = floor_table(_fresh(folder, f"floor-{sync}.db"), sync, with_result=with_result, page_size=page_size)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    if not with_result:
        for i in range(n):
            floor_commit(conn, i)
    else:
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            if i:
                conn.execute("UPDATE calls SET outcome = ?, result = ?, error = ?, undo = coalesce(?, undo), "
                             "returned = ? WHERE seq = ?", ("ok", str(i - 1), None, None, time.time(), i - 1))
            conn.execute(FLOOR_INSERT, (i, f"s{i}", '{"tag":%d}' % i, '{"command":"undo","args":{"tag":%d}}' % i,
                                        time.time()))
            conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    conn.close()
    return wall, cpu


#: SQLite's default page size: the floor is also measured in a file of it (the journal's pages are smaller).
DEFAULT_PAGE_SIZE = 4096
#: The goal: with ``sync = "normal"``, the journal adds at most this many bare commits' time per step.
ADDED_VS_FLOOR = 1.5
#: The fan-out's width: steps started together (and so intents committed together).
FAN_OUT = 100


def overhead_figures(steps: int, repeat: int, folder: Path) -> list[Figure]:
    """Chain of ``steps`` and fan-outs of ``FAN_OUT`` (``steps`` in all), each round interleaving: no journal,
    ``normal``, ``full``, and the floors; per round, (journal - no journal) / floor, wall-clock and CPU."""
    out = []
    width = min(FAN_OUT, steps)
    for shape, chain, n, runs in (("chain", True, steps, 1), ("fan-out", False, width, max(1, steps // width))):
        label = f"chain of {n:,}" if chain else f"fan-out of {n:,} (x{runs})"
        total = n * runs
        program, r = reactor(n, chain=chain)
        subjects: dict[str | None, Subject] = {
            sync: Subject(folder, program, r, runs, sync) for sync in (None, "normal", "full")}
        subjects["in run"] = Subject(folder, program, r, runs, "normal", in_run=True)
        floors = ("floor normal", "floor full", "floor normal 4k", *(("floor normal with result",) if chain else ()))
        wall: dict[str | None, list[float]] = {k: [] for k in (*subjects, *floors)}
        cpu: dict[str | None, list[float]] = {k: [] for k in wall}
        for round_ in range(repeat + 1):  # the first round warms up
            for key, subject in subjects.items():
                w, c = asyncio.run(subject.once())
                if round_:
                    wall[key].append(w)
                    cpu[key].append(c)
            for floor in floors:
                w, c = floor_once(folder, floor.split()[1], total, with_result=floor.endswith("result"),
                                  page_size=DEFAULT_PAGE_SIZE if floor.endswith("4k") else None)
                if round_:
                    wall[floor].append(w)
                    cpu[floor].append(c)
        scale = 1e6 / total
        out.append(Figure("journal", f"{label}: no journal", "µs/step", Stats.of(wall[None]).scaled(scale)))
        for sync in ("normal", "full"):
            subject = subjects[sync]
            commits = statistics.median(subject.commits[1:] or subject.commits) / runs
            checkpoints = statistics.median(subject.checkpoints[1:] or subject.checkpoints) / runs
            fsyncs = (commits if sync == "full" else 0) + 2 * checkpoints
            note = (f"{commits:.2f} commits per run of {n}; fsyncs per run: {fsyncs:.2f}"
                    + (" (one per commit, two per WAL checkpoint)" if sync == "full" else " (WAL checkpoints only)"))
            out.append(Figure("journal", f"{label}: journal, sync {sync}", "µs/step",
                              Stats.of(wall[sync]).scaled(scale),
                              (("no journal", ratios(wall, sync, None)),), note))
            floor = f"floor {sync}"
            per_floor = Stats.of([(j - b) / f for j, b, f in zip(wall[sync], wall[None], wall[floor])])
            per_floor_cpu = Stats.of([(j - b) / f for j, b, f in zip(cpu[sync], cpu[None], cpu[floor])])
            out.append(Figure("journal", f"{label}: added by the journal ({sync}) / floor", "×", per_floor,
                              note=f"floor (bare WAL commit of one intent) {Stats.of(wall[floor]).scaled(scale).median:.1f} "
                                   f"µs; in CPU time: {per_floor_cpu.median:.2f} [{per_floor_cpu.min:.2f} - "
                                   f"{per_floor_cpu.max:.2f}]x"))
            if sync == "normal":
                default = Stats.of([(j - b) / f for j, b, f in zip(wall[sync], wall[None], wall["floor normal 4k"])])
                out.append(Figure("journal", f"{label}: added by the journal (normal) / floor in a file of SQLite's "
                                             "default page size", "×", default,
                                  note=f"floor with {DEFAULT_PAGE_SIZE} B pages (the journal's: {PAGE_SIZE} B) "
                                       f"{Stats.of(wall['floor normal 4k']).scaled(scale).median:.1f} µs"))
                out.append(target("journal", f"{label}: added by the journal per step (sync normal) / a bare commit",
                                  per_floor, ADDED_VS_FLOOR))
        # the floor's commit made in the run, where the journal commits: the least a journal pays there
        in_run = Stats.of([(f - b) / fl for f, b, fl in zip(wall["in run"], wall[None], wall["floor normal"])])
        in_run_cpu = Stats.of([(f - b) / fl for f, b, fl in zip(cpu["in run"], cpu[None], cpu["floor normal"])])
        out.append(Figure("journal", f"{label}: the floor's commit made in the run, per step (normal) / floor", "×",
                          in_run, note=f"in CPU time: {in_run_cpu.median:.2f} [{in_run_cpu.min:.2f} - "
                                       f"{in_run_cpu.max:.2f}]x"))
        vs_in_run = Stats.of([(j - b) / (f - b) for j, f, b in zip(wall["normal"], wall["in run"], wall[None])])
        vs_in_run_cpu = Stats.of([(j - b) / (f - b) for j, f, b in zip(cpu["normal"], cpu["in run"], cpu[None])])
        out.append(Figure("journal", f"{label}: added by the journal (normal) / added by the floor's commit made "
                                     "in the run", "×", vs_in_run,
                          note=f"in CPU time: {vs_in_run_cpu.median:.2f} [{vs_in_run_cpu.min:.2f} - "
                               f"{vs_in_run_cpu.max:.2f}]x"))
        if chain:  # SQLite's share: a bare commit that also records the previous step's result, per floor
            with_result = Stats.of([w / f for w, f in zip(wall["floor normal with result"], wall["floor normal"])])
            with_result_cpu = Stats.of([w / f for w, f in zip(cpu["floor normal with result"], cpu["floor normal"])])
            out.append(Figure("journal", f"{label}: bare commit of intent and previous result (normal) / floor", "×",
                              with_result, note=f"in CPU time: {with_result_cpu.median:.2f} "
                                                f"[{with_result_cpu.min:.2f} - {with_result_cpu.max:.2f}]x"))
    return out


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
    conn.execute(MARK_CALLS_FROM)  # where each run's calls begin, as the journal marks them (without it, none)
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
            await journal.writer.flush()
            undone = journal.read.execute("SELECT count(*) FROM calls WHERE kind = 'undo' AND outcome = 'ok'")
            assert undone.fetchone()[0] == 4 * runs, "recovery undid less than every step of every run"
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
