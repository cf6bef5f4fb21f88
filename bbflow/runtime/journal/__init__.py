"""Durable runs: the journal (SQLite, WAL) and recovery after a crash. See docs/durability.md.

``store`` holds the file and its schema, ``writer`` the thread every write
goes through, ``journal`` what is recorded, ``calls`` the records around one
command, ``agents`` an agent's side. ``recovery`` (what a restart does with
unfinished runs: it runs reactors, so it is imported on its own, not from here),
``query`` and ``operator`` (``bbflow runs``) build on them.
"""

from bbflow.runtime.journal.calls import JOURNALED, Journaled, journaled_call, planner
from bbflow.runtime.journal.elsewhere import CutOff, cut_off_elsewhere
from bbflow.runtime.journal.journal import (
    ORIGIN,
    Journal,
    JournalConfig,
    Origin,
    hold_without_journal,
    journal_config,
    process_journal,
)
from bbflow.runtime.journal.store import SCHEMA_VERSION, JournalError, open_store
from bbflow.runtime.journal.writer import JournalFailed, Lag

__all__ = [
    "JOURNALED",
    "ORIGIN",
    "SCHEMA_VERSION",
    "CutOff",
    "Journal",
    "JournalConfig",
    "JournalError",
    "JournalFailed",
    "Journaled",
    "Lag",
    "Origin",
    "cut_off_elsewhere",
    "hold_without_journal",
    "journal_config",
    "journaled_call",
    "open_store",
    "planner",
    "process_journal",
]
