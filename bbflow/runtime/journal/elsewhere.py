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


def cut_off_elsewhere(config: JournalConfig, mine: Path | None, robots: Collection[str]) -> list[CutOff]:
    """The runs on ``robots`` cut off in the journals of the project (``config``: this process's journal;
    ``mine``: the one it keeps and recovers, left out; None with ``--no-journal``). A journal that cannot be
    read is left out."""
    if not robots:
        return []
    out: list[CutOff] = []
    for path in journal_files(config.project):
        if path == mine:
            continue
        try:
            rows = _unfinished(path, robots)
        except sqlite3.Error:
            continue
        out.extend(CutOff(path, run, reactor, robot) for run, reactor, robot, owner in rows
                   if not owners.alive(config.owners, owner))
    return out


def _unfinished(path: Path, robots: Collection[str]) -> list[tuple[str, str, str, str | None]]:
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        owner = "owner" if "owner" in columns else "NULL"
        marks = ",".join("?" * len(robots))
        return conn.execute(f"SELECT id, reactor, robot, {owner} FROM runs WHERE status = 'running' AND parent IS "
                            f"NULL AND robot IN ({marks}) ORDER BY started", list(robots)).fetchall()
