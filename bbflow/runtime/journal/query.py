"""Reading the journal for people: ``bbflow runs`` (the list) and ``bbflow runs show ID`` (one timeline)."""

from __future__ import annotations

import datetime
import json
import sqlite3
from typing import Any

from bbflow.runtime.journal.store import LAST_SEQ, loads


def list_runs(conn: sqlite3.Connection, limit: int = 200, status: str | None = None,
              counted: dict[str, tuple[int, int]] | None = None,
              before: tuple[float, str] | None = None) -> list[dict[str, Any]]:
    """The newest root runs first (only those of ``status``, if given; only those after ``before``, a run's start
    and id, in that order): id, reactor, robot, agent, status, started, duration, steps, undo errors, and the
    owner token of the process that runs it (``owners``).

    ``counted``: the steps done and in doubt of runs already counted, by id; the scan of the calls skips them
    and adds those it counts (for runs whose steps no longer change, as a held run's)."""
    # the newest first by the index of runs by parent and start (``runs_roots``), read no further than ``limit``;
    # with a status, by the status index instead (``+``: not by the other; the held runs, few, are read at every
    # state request)
    where, params = ("r.status = ? AND +r.parent IS NULL", [status]) if status is not None else \
        ("r.parent IS NULL", [])
    if before is not None:
        where += " AND (r.started, r.id) < (?, ?)"
    rows = conn.execute(
        f"""SELECT r.id, r.reactor, r.robot, r.agent, r.status, r.started, r.ended, r.undo_errors, r.note, r.owner,
                   r.calls_from, r.calls_to
            FROM runs r WHERE {where} ORDER BY r.started DESC, r.id DESC LIMIT ?""",
        [*params, *(before or ()), limit]).fetchall()
    counts = counted if counted is not None else {}
    todo = [(r[0], r[-2], r[-1]) for r in rows if r[0] not in counts and r[-2] is not None]  # (None: no calls)
    if todo:  # one scan of the calls for all the runs listed, from where the first of them begin to where the
        # last end (a page of old runs, ``--before``: not every call since)
        ends = [end for _, _, end in todo]
        for run, done, doubt in conn.execute(  # (the ids as one JSON array: however many, never too many variables)
                "SELECT run, coalesce(sum(outcome = 'ok'), 0), sum(outcome IS NULL OR outcome = 'cut') FROM calls "
                "WHERE seq BETWEEN ? AND ? AND kind = 'step' AND run IN (SELECT value FROM json_each(?)) GROUP BY run",
                (min(start for _, start, _ in todo), LAST_SEQ if None in ends else max(ends),
                 json.dumps([run for run, _, _ in todo]))):
            counts[run] = (done, doubt)
    for row in rows:
        counts.setdefault(row[0], (0, 0))
    out = []
    for rid, reactor, robot, agent, status, started, ended, undo_errors, note, owner, _, _ in rows:
        steps, doubt = counts[rid]
        out.append({
            "id": rid, "reactor": reactor, "robot": robot, "agent": agent, "status": status,
            "started": _iso(started), "duration": None if ended is None else round(ended - started, 6),
            "steps": steps, "in_doubt": doubt, "undo_errors": len(loads(undo_errors) or []), "note": note,
            "owner": owner,
        })
    return out


def find_runs(conn: sqlite3.Connection, prefix: str, limit: int = 2) -> list[str]:
    """The ids of (at most ``limit``) runs ``prefix`` may name: a whole id, or the start of one (as typed: not a
    LIKE pattern, which SQLite refuses past 50,000 bytes)."""
    found: list[str] = []
    for (run,) in conn.execute("SELECT id FROM runs WHERE id >= ? ORDER BY id", (prefix,)):  # by the primary key
        if not run.startswith(prefix) or len(found) == limit:  # (the ids that start so come first, together)
            break
        found.append(run)
    return found


def root_of(conn: sqlite3.Connection, run: str) -> str | None:
    """The run that composed ``run``, up to one no other run composed; None when ``run`` is such a run."""
    row = conn.execute("""WITH RECURSIVE up(id, parent) AS (
                              SELECT id, parent FROM runs WHERE id = ?
                              UNION SELECT runs.id, runs.parent FROM runs JOIN up ON runs.id = up.parent)
                          SELECT id FROM up WHERE parent IS NULL""", (run,)).fetchone()
    return None if row is None or row[0] == run else row[0]


#: how ``runs show`` says the outcomes that are not one: no result (a crash), cut off at the driver by its run
_OUTCOMES = {None: "in doubt", "cut": "cut off in flight"}

#: A timeline's calls (``show_run``).
CALLS_OF = ("SELECT seq, run, kind, step, idx, attempt, target, args, undo, hold, sent, outcome, result, error, "
            "returned FROM calls")


def show_run(conn: sqlite3.Connection, run: str) -> dict[str, Any]:
    """One run with its composed runs and its timeline: every intent and result, in-doubt ones marked."""
    cols = ("id", "parent", "reactor", "robot", "agent", "status", "started", "ended", "inputs", "result", "error",
            "undo_errors", "note")
    row = conn.execute(f"SELECT {', '.join(cols)} FROM runs WHERE id = ?", (run,)).fetchone()
    if row is None:
        raise KeyError(run)
    info = dict(zip(cols, row))
    for key in ("inputs", "result", "error", "undo_errors"):
        info[key] = loads(info[key])
    info["started"], info["ended"] = _iso(info["started"]), _iso(info["ended"])
    tree = [run]
    frontier = [run]
    spans = [conn.execute("SELECT calls_from, calls_to FROM runs WHERE id = ?", (run,)).fetchone()]
    while frontier:
        marks = ",".join("?" * len(frontier))
        composed = conn.execute(f"SELECT id, calls_from, calls_to FROM runs WHERE parent IN ({marks}) "
                                "ORDER BY started", frontier).fetchall()
        frontier = [r[0] for r in composed]
        tree += frontier
        spans += [r[1:] for r in composed]
    marks = ",".join("?" * len(tree))
    timeline = []
    # the calls of the runs lie between where the first of them begin and where the last end (by ``seq``, the
    # calls' primary key): an old run's are read, not every call journaled since (none end: read to the end)
    called = [(start, end) for start, end in spans if start is not None]  # (None: no calls)
    begin = min((start for start, _ in called), default=None)  # None: no calls at all
    ends = [end for _, end in called]
    end = max(ends) if ends and None not in ends else LAST_SEQ
    for seq, rid, kind, step, idx, attempt, target, args, undo, hold, sent, outcome, result, error, returned in \
            conn.execute(f"{CALLS_OF} WHERE seq BETWEEN ? AND ? AND run IN ({marks}) ORDER BY seq",
                         [begin, end, *tree]) if begin is not None else ():
        timeline.append({
            "seq": seq, "run": rid, "kind": kind, "step": step, "index": loads(idx), "attempt": attempt,
            "target": target, "args": loads(args), "sent": _iso(sent),
            "outcome": _OUTCOMES.get(outcome, outcome),
            "result": loads(result), "error": loads(error), "returned": _iso(returned),
            "undo": loads(undo), "hold": hold,
        })
    info["runs"] = tree
    info["timeline"] = timeline
    return info


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")
