"""Runs cut off in the project's other journals, on robots this process is about to drive.

A process started with ``--robot`` keeps a journal of its own beside the
project's (``journal.arm.db``), and recovers only what that journal holds. So
a run cut off there is not seen by a ``bbflow run`` without ``--robot`` (nor
the other way round), which would drive the arm from wherever the crash left
it. ``cut_off_elsewhere`` finds such runs, so that ``bbflow run`` can stop
before anything moves and say which process recovers them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection
from pathlib import Path

import attrs

from bbflow.runtime.journal import owners
from bbflow.runtime.journal.journal import JournalConfig, journal_files, process_robots
from bbflow.runtime.journal.store import JournalError, open_reader


@attrs.frozen
class CutOff:
    """An unfinished run, whose process is gone, on one of our robots, in another journal of the project."""

    journal: Path
    run: str
    reactor: str
    robot: str

    def hint(self, project: Path) -> str:
        """The process that recovers it, to start once."""
        if self.journal == project:
            return "`bbflow run` (without `--robot`)"
        return "`bbflow run " + " ".join(f"--robot {name}" for name in process_robots(self.journal, project)) + "`"


def cut_off_elsewhere(config: JournalConfig, project: str, mine: Path | None,
                      robots: Collection[str]) -> list[CutOff]:
    """The runs on ``robots`` cut off in the journals of ``project`` (``config``: this process's journal;
    ``mine``: the one it keeps and recovers, left out; None with ``--no-journal``). A journal that may hold such
    runs (the project's, a ``--robot`` process's of one of them) and cannot be read raises ``JournalError``:
    what it holds is not known, and this process would drive the robot from wherever a crash left it."""
    if not robots:
        return []
    out: list[CutOff] = []
    for path in journal_files(config.project):
        theirs = process_robots(path, config.project)
        if path == mine or (theirs and not set(theirs) & set(robots)):  # that process runs none of ours
            continue
        try:
            rows = _unfinished(path, project, robots)
        except JournalError as exc:
            which = ", ".join(sorted(set(theirs) & set(robots)) or sorted(robots))
            raise JournalError(f"{exc}; it may hold a run cut off on robot {which}, which this bbflow run would "
                               "drive") from exc
        out.extend(CutOff(path, run, reactor, robot) for run, reactor, robot, owner in rows
                   if not owners.alive(config.owners, owner))
    return out


def _unfinished(path: Path, project: str, robots: Collection[str]) -> list[tuple[str, str, str, str | None]]:
    marks = ",".join("?" * len(robots))
    # every page checked, as the process that keeps it would: what it says decides whether a robot moves
    with contextlib.closing(open_reader(path, project, whole=True)) as conn:
        try:  # (``+``: by the status index; not through every run by start)
            return conn.execute(f"SELECT id, reactor, robot, owner FROM runs WHERE status = 'running' AND +parent IS "
                                f"NULL AND robot IN ({marks}) ORDER BY started", list(robots)).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"{path}: cannot read the journal: {exc}") from exc
