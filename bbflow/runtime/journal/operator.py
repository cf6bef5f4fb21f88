"""``bbflow runs``: the runs of the project's journals for an operator, one run's timeline, and recovering a held run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bbflow.project import Project
from bbflow.runtime import model
from bbflow.runtime.driver import DriverError
from bbflow.runtime.drivers import open_robot
from bbflow.runtime.events import JsonLinesWriter, warn_log_lost
from bbflow.runtime.faults import FaultsError
from bbflow.runtime.fleet import (
    AlreadyRun,
    BusOpenError,
    BusSettings,
    MissingExtra,
    bus_settings,
    hold_claims,
    join_bus,
    process_name,
)
from bbflow.runtime.journal import owners
from bbflow.runtime.journal.journal import (
    JOURNAL_DIR_ENV,
    Journal,
    JournalConfig,
    journal_config,
    journal_files,
    process_journal,
    process_robots,
)
from bbflow.runtime.journal.query import find_runs, list_runs, root_of, show_run
from bbflow.runtime.journal.recovery import Recovered, Recovery
from bbflow.runtime.journal.store import JournalError, open_reader, reading
from bbflow.runtime.jsonout import path_text
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.run_plan import robot_table
from bbflow.runtime.supervisor import disarm_all

if TYPE_CHECKING:
    from bbflow.runtime.fleet.zenoh_link import ZenohLink


def journals(project: Project) -> list[JournalConfig]:
    """Every journal of the project (``journal_files``: its own and each ``--robot`` process's), each as the
    process that keeps it opens it; ``JournalError`` when there is none."""
    table = project.data.get("journal", {})
    config = journal_config(project.root, table)
    found = journal_files(config.path)
    if not found:
        where = ""
        if "path" not in table:  # the processes of the cell may have been started with another setting
            where = (f"; it is looked for in ${JOURNAL_DIR_ENV} (set here): a bbflow run started without it keeps "
                     "it in the project's .bbflow folder" if os.environ.get(JOURNAL_DIR_ENV) else
                     f"; a bbflow run started with ${JOURNAL_DIR_ENV} keeps it in that folder: set it here too")
        raise JournalError(f"{config.path}: no journal here (nothing has run with a journal in this project{where})")
    return [process_journal(config, process_robots(path, config.path)) for path in found]


def open_for_reading(project: Project, config: JournalConfig) -> sqlite3.Connection:
    """One of the project's journals, checked, for queries only: nothing is written to it (``JournalError`` if
    it is missing or unusable)."""
    return open_reader(config.path, project.name)


#: the width the list of runs is laid out in: wider than any table of runs, so that none is shrunk to fit
UNSHRUNK = 10_000


#: How many runs ``bbflow runs`` lists unless told (``--limit``): the newest.
LIMIT = 200


def print_runs(project: Project, out: IO[str], *, fmt: str, color: bool, limit: int = LIMIT,
               before: str | None = None, err: IO[str] | None = None) -> None:
    """The newest ``limit`` runs (0: all) of every journal of the project, merged, newest first (``journal``: the
    file of each); ``before``: only those that started before the run it names (the next page after that
    one: a run started at the same moment comes after it if its id is less); ``err`` is told when there are
    more."""
    found = journals(project)
    after = None
    if before is not None:
        holder, last = find(project, before)
        with contextlib.closing(open_for_reading(project, holder)) as conn, reading(holder.path):
            after = (conn.execute("SELECT started FROM runs WHERE id = ?", (last,)).fetchone()[0], last)
    runs = []
    for config in found:
        with contextlib.closing(open_for_reading(project, config)) as conn, reading(config.path):
            # one more than asked: whether there are more (-1: all; as many as SQLite can count are all there are)
            listed = list_runs(conn, limit + 1 if 0 < limit < 1 << 62 else -1, before=after)
        folder = config.owners  # (found anew at each look: a path resolved)
        for run in listed:  # a running run whose process is gone was cut off: the next start recovers it
            owner = run.pop("owner")
            alive = owners.alive(folder, owner)
            run["cut_off"] = run["status"] == "running" and not alive
            run["recovering"] = run["status"] == "held" and alive  # a held run's owner: an operator's recover
            run["journal"] = str(config.path)
        runs += listed
    runs.sort(key=lambda run: (run["started"], run["id"]), reverse=True)  # ISO 8601 in UTC: in the order of time
    if limit and len(runs) > limit:
        del runs[limit:]
        if err is not None:
            err.write(f"{limit} runs are listed, and there are more: --before {runs[-1]['id']} lists the next "
                      f"{limit}, --limit N lists N (0: all)\n")
    if fmt == "json":  # (a path as its bytes read as UTF-8; on a terminal, as the locale writes it)
        out.write(json.dumps([{**run, "journal": path_text(run["journal"])} for run in runs], indent=2) + "\n")
        return
    table = Table(title=f"runs of {project.name} (newest first)", title_justify="left")
    which = any(config.project_path is not None for config in found)  # not only the project's: say which
    for column in ("id", "reactor", "robot", "status", "started", "duration", "steps", "undo errors",
                   *(("journal",) if which else ())):
        table.add_column(column, justify="right" if column in ("duration", "steps", "undo errors") else "left")
    for run in runs:
        status = run["status"]
        if run["in_doubt"] and status in ("running", "held"):
            status += f" ({run['in_doubt']} in doubt)"
        if run["cut_off"]:
            status += ", cut off"
        if run["recovering"]:
            status += ", being recovered"
        duration = "" if run["duration"] is None else f"{run['duration']:.3f}s"
        table.add_row(run["id"], run["reactor"], run["robot"] or "", _styled(status, color), run["started"] or "",
                      duration, str(run["steps"]), str(run["undo_errors"]),
                      *((Path(run["journal"]).name,) if which else ()))
    # whole, however narrow the terminal (which wraps the lines): ids cut to fit ("01a2505…") look alike and name no run
    Console(file=out, force_terminal=color, no_color=not color, width=UNSHRUNK, markup=False).print(table)


def print_run(project: Project, prefix: str, out: IO[str], *, fmt: str, color: bool) -> None:
    config, run = find(project, prefix)
    with contextlib.closing(open_for_reading(project, config)) as conn, reading(config.path):
        info = show_run(conn, run)
    info["journal"] = str(config.path)
    if fmt == "json":
        out.write(json.dumps({**info, "journal": path_text(config.path)}, indent=2) + "\n")
        return
    console = Console(file=out, force_terminal=color, no_color=not color, width=200 if not color else None,
                      markup=False)  # a driver's error or an argument may hold [brackets]: shown as they are
    console.print(f"run {info['id']}: {info['reactor']} on {info['robot'] or '-'}, {info['status']}"
                  + (f" ({info['note']})" if info["note"] else ""), markup=False)
    console.print(f"started {info['started']}, ended {info['ended'] or '-'}; inputs {json.dumps(info['inputs'])}",
                  markup=False)
    console.print(f"journal {info['journal']}", markup=False)
    if info["error"]:
        console.print(f"error: {info['error'].get('message')} (code {info['error'].get('code')})", markup=False)
    table = Table(title_justify="left")
    for column in ("seq", "kind", "step", "attempt", "command", "args", "outcome", "result / error"):
        table.add_column(column)
    for call in info["timeline"]:
        outcome = call["outcome"]
        shown = json.dumps(call["result"]) if outcome == "ok" else json.dumps((call["error"] or {}).get("message"))
        if outcome in ("in doubt", "cut off in flight"):
            shown = call["hold"] or _in_doubt(call, info)
        step = call["step"] + (f"[{','.join(map(str, call['index']))}]" if call["index"] else "")
        if call["run"] != info["id"]:
            step = f"{step} (composed {call['run'][-8:]})"
        table.add_row(str(call["seq"]), call["kind"], step, str(call["attempt"]), call["target"],
                      json.dumps(call["args"]), _styled(outcome, color), shown)
    console.print(table)


def _in_doubt(call: dict[str, Any], info: dict[str, Any]) -> str:
    """What became of a call whose outcome was never journaled (a crash), or that its run's failure or cancel
    cut off at the driver: what recovery will do with it (an undo cut off is run again, not undone), or, once
    the run is over, what it did (the call after it for the same step and index), or that nothing did (a run
    an operator closed by hand)."""
    undo = call["kind"] == "step"
    if info["status"] in ("running", "held"):
        return "may have moved: recovery undoes it" if undo else "may have moved: recovery runs it again"
    later = next((c for c in info["timeline"] if c["seq"] > call["seq"] and c["kind"] == "undo" and
                  (c["run"], c["step"], c["index"]) == (call["run"], call["step"], call["index"])), None)
    if later is not None:
        by = "" if call["outcome"] == "cut off in flight" else " by recovery"  # (its run's rollback undid it)
        return f"may have moved: {'undone' if undo else 'run again'}{by} (seq {later['seq']})"
    return f"may have moved: the run ended {info['status']} without {'undoing' if undo else 'running'} it" + \
        ("" if undo else " again")


def recover_run(program: model.Program, project: Project, prefix: str, out: IO[str], err: IO[str], *, arm: bool,
                driver: str | None, events: str | None, resolved: bool = False,
                bus_listen: Sequence[str] = (), bus_connect: Sequence[str] = ()) -> list[Recovered]:
    """``bbflow runs recover ID``: roll back one held (or unfinished) run on its robot, now; what it did on
    ``out``, an event log that fails (``events``) and the bus's warnings on ``err``.

    With ``resolved``, the operator has put the world right by hand: the run is
    closed as failed without anything moving. Otherwise, with a network bus, the robot is claimed on it
    (``bus_listen``, ``bus_connect``: over ``[bus]``) before it is opened: a robot another process of the
    fleet runs is refused, as a ``bbflow run`` of it would be.
    """
    bus = bus_settings(project, listen=bus_listen, connect=bus_connect, claims_only=True)  # a typo: said first
    config, run = find(project, prefix)  # recovered against the journal that holds it
    with contextlib.closing(open_for_reading(project, config)) as conn, reading(config.path):
        instance, status, owner = conn.execute("SELECT robot, status, owner FROM runs WHERE id = ?", (run,)).fetchone()
        root = root_of(conn, run)  # a composed run is recovered with the run that composed it
    if root is not None:
        raise JournalError(f"run {run} is composed by run {root}: recover that one (its rollback undoes this "
                           "run's steps too)")
    if status not in ("held", "running"):
        raise JournalError(f"run {run} is {status}: nothing to recover")
    if owners.alive(config.owners, owner):
        pid = owners.pid_of(config.owners, owner) or "?"
        if status == "running":
            raise JournalError(f"run {run} is running in process {pid}, not cut off: nothing to recover (stopped, "
                               "that process rolls it back itself)")
        raise JournalError(f"run {run} is being recovered by process {pid} (a bbflow runs recover): once it ends, "
                           "see bbflow runs")
    writer = None
    if events is not None and not resolved:  # before anything is claimed
        try:
            writer = JsonLinesWriter(events, failed=warn_log_lost(err, events, "the recovery goes on"))
        except OSError as exc:
            raise ValueError(f"--events {events}: cannot write: {exc.strerror or exc}") from exc
    try:
        # its robot is this process's while it recovers: refused if a bbflow run drives it, and none starts on it
        journal = Journal.open(config, project.name, command=owners.RECOVER,
                               robots=[instance] if instance is not None and not resolved else (),
                               say=lambda text: print(text, file=err))
        try:
            if resolved:
                if not _close_resolved(journal, run, owner):
                    raise JournalError(f"run {run} was taken over meanwhile (a bbflow run recovering it): see bbflow "
                                       "runs")
                out.write(f"run {run}: closed, resolved by an operator (nothing moved)\n")
                return []
            done = asyncio.run(_recover(program, project, journal, run, instance, out, err, arm, driver, writer, bus))
        finally:
            journal.close()
    finally:
        if writer is not None:
            writer.close()
    if not done:  # another process took it between the look above and this one's claim
        raise JournalError(f"run {run} was taken over meanwhile (closed as resolved, or recovered): see bbflow runs")
    return done


def find(project: Project, prefix: str) -> tuple[JournalConfig, str]:
    """The run ``prefix`` names (its id, or the start of it) in whichever journal of the project holds it, and
    that journal; ``JournalError`` if none does, or if it starts several runs' ids (in one journal or two)."""
    found: list[tuple[JournalConfig, str]] = []
    for config in journals(project):
        with contextlib.closing(open_for_reading(project, config)) as conn, reading(config.path):
            found += [(config, run) for run in find_runs(conn, prefix)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise JournalError(f"no single run with an id starting with {prefix!r} in the journals of {project.name}")
    several = ", ".join(f"{run} in {config.path.name}" for config, run in found)
    raise JournalError(f"no single run with an id starting with {prefix!r} (it starts {several}): give more "
                       "of the id")


def _close_resolved(journal: Journal, run: str, owner: str | None) -> bool:
    """Close ``run`` (and its composed runs) as failed, unless a process took it over since it was read
    (its owner is no longer ``owner``): False then. The writer is not started: one transaction here."""
    conn = journal.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = time.time()
        if not conn.execute("UPDATE runs SET status = 'failed', ended = ?, note = 'resolved by an operator' "
                            "WHERE id = ? AND status IN ('running', 'held') AND owner IS ?",
                            (now, run, owner)).rowcount:
            return False
        conn.execute("WITH RECURSIVE composed(id) AS (SELECT id FROM runs WHERE parent = ? UNION ALL "
                     "SELECT runs.id FROM runs JOIN composed ON runs.parent = composed.id) "
                     "UPDATE runs SET status = 'failed', ended = ?, note = 'resolved by an operator' "
                     "WHERE id IN composed AND status IN ('running', 'held')", (run, now))
        return True
    finally:
        conn.execute("COMMIT")


async def _recover(program: model.Program, project: Project, journal: Journal, run: str, instance: str | None,
                   out: IO[str], err: IO[str], arm: bool, driver: str | None, writer: JsonLinesWriter | None,
                   bus: BusSettings) -> list[Recovered]:
    await journal.tidy()
    journal.start(asyncio.get_running_loop())
    robots = {}
    link = guard = None
    taken: list[AlreadyRun] = []  # another process's claim on the robot, seen while it was rolled back

    def warn(text: str) -> None:
        err.write(text + "\n")

    try:
        try:
            if instance is not None:
                config = project.robots.get(instance)
                if config is None:
                    raise JournalError(f"run {run} ran on robot {instance!r}, which {project.file} no longer has")
                if bus.networked:  # another process of the fleet may run the robot, on another machine
                    link = await _claim(bus, instance, run, warn)
                robots[instance] = open_robot(instance, program.robots[config.interface], robot_table(config, project),
                                              driver=driver)
            for name, proxy in robots.items():
                await proxy.start()
                if arm or (driver or project.robots[name].driver) == "sim" or project.robots[name].arm:
                    await proxy.call("arm", {})
                else:
                    out.write(f"waiting for robot {name} to be armed (or give --arm)\n")
        except (DriverError, FaultsError, RuntimeFailure) as exc:  # nothing claimed yet: the run is as it was
            raise JournalError(f"robot {instance}: cannot open it: {exc}; nothing moved, run {run} is left as it "
                               "was") from exc

        def note(text: str) -> None:
            out.write(text + "\n")

        if link is not None:
            guard = asyncio.get_running_loop().create_task(_hold(link, list(robots.values()), warn, taken))
        done = await Recovery(journal, program, robots, observer=writer, note=note).run(only=run)
    finally:
        if guard is not None:
            if not taken:  # a disarm begun is seen through
                guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await guard
        for proxy in robots.values():
            await proxy.close()
        if link is not None:  # the claim goes once the robot is closed
            await link.close()
    for item in done:
        errors = f", {len(item.undo_errors)} undo errors" if item.undo_errors else ""
        out.write(f"run {item.run}: {item.action}{errors}" + (f": {item.reason}" if item.reason else "") + "\n")
    return done


async def _claim(bus: BusSettings, instance: str, run: str, warn: Callable[[str], None]) -> ZenohLink:
    """Robot ``instance`` claimed on the bus, before it is opened; ``JournalError`` when another process runs it."""
    try:
        return await join_bus(bus, process=process_name(), robots=[instance], note=warn)
    except MissingExtra as exc:
        raise JournalError(str(exc)) from None
    except BusOpenError as exc:
        raise JournalError(f"bus: {exc}; nothing moved, run {run} is left as it was") from None


async def _hold(link: ZenohLink, robots: list[RobotProxy], warn: Callable[[str], None],
                taken: list[AlreadyRun]) -> None:
    """While the run is rolled back: another process's claim on its robot, seen now (``taken``), disarms the
    robot (the rollback stops there), as the process that claimed it would be stopped."""
    taken.append(await hold_claims(link, warn))
    warn(f"bus: {taken[0]}: disarming the robot")
    for error in await disarm_all(robots):
        warn(f"bus: {error}")


def _styled(status: str, color: bool) -> Text:
    if not color:
        return Text(status)
    style = {"ok": "green", "failed": "red", "held": "yellow", "running": "yellow", "in doubt": "yellow", "cut": "yellow",
             "halted": "red"}.get(status.split(" ")[0], "")
    return Text(status, style)
