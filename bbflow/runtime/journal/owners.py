"""Which process is running what: a run belongs to the process that started it while that process lives.

The processes of a project share its journal. Each one that opens it takes an
*owner* token and holds an exclusive ``flock`` on a file of that name in the
journal's ``.owners`` folder for as long as it has the journal open; each run
it starts is recorded with the token. The kernel drops the lock when the
process dies, however it dies (``kill -9`` included), so "is the owner of this
run alive?" is answered by trying a shared lock on its file: refused, it
lives; granted, or no file, it is gone.

Recovery takes only the unfinished runs whose owner is gone, and takes each by
setting the run's owner to its own token in one statement that checks the old
one (``Journal.claim``): two processes starting together never both roll back
the same run, and no process rolls back a run that another one is running.

A process also writes in its file the robots and agent instances it runs, and
``claim`` refuses (``InUse``) to start a second process on the same journal
with any of the same: two processes would drive one arm, or handle one
agent's signals twice. The check and the writing are made under a lock on the
folder, so of two processes starting together the second sees the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Collection, Iterator
from pathlib import Path

from bbflow.runtime.ids import uuid7

#: The folder's own lock (not an owner): taken while a process looks for conflicts and writes its file.
_FOLDER_LOCK = ".lock"


class InUse(Exception):
    """Another live process on this journal runs some of the same robots or agents."""


def folder_of(journal: Path) -> Path:
    """The folder of the owners' lock files of ``journal``."""
    return journal.with_name(journal.name + ".owners")


class Owner:
    """This process's token, and the lock that says it is alive (``claim``, then ``release`` at close)."""

    def __init__(self, token: str, path: Path, fd: int) -> None:
        self.token = token
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def claim(cls, journal: Path, robots: Collection[str] = (), agents: Collection[str] = ()) -> Owner:
        """A new token for this process, which runs ``robots`` and ``agents``, its file locked.

        Raises ``InUse`` when a live process on this journal runs any of them, ``OSError`` when the file
        cannot be made.
        """
        folder = folder_of(journal)
        folder.mkdir(exist_ok=True)
        with _locked(folder):
            for token, pid, theirs_robots, theirs_agents in _live(folder):
                both = sorted(set(robots) & set(theirs_robots)) or sorted(set(agents) & set(theirs_agents))
                if both:
                    what = "robot" if set(both) & set(robots) else "agent"
                    raise InUse(f"{what} {', '.join(both)} already run by another bbflow run on this journal "
                                f"(process {pid if pid is not None else '?'}, {folder / token}); stop it first")
            token = uuid7()
            path = folder / token
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.write(fd, json.dumps({"pid": os.getpid(), "robots": sorted(robots),
                                         "agents": sorted(agents)}).encode())
            except OSError:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
        return cls(token, path, fd)

    def release(self) -> None:
        """Remove the file and drop the lock (the runs recorded with the token are now anyone's)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def alive(journal: Path, token: str) -> bool:
    """Whether the process that took ``token`` still has ``journal`` open."""
    return _holds(folder_of(journal) / token)


def _holds(path: Path) -> bool:
    """Whether a live process holds the lock of the owner's file ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: take it as alive, so that nothing moves on a guess
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # held (or cannot tell): alive
        return True
    finally:
        os.close(fd)
    return False


def pid_of(journal: Path, token: str) -> int | None:
    """The process id written in an owner's file (for messages), or None."""
    return _declared(folder_of(journal) / token)[0]


def _declared(path: Path) -> tuple[int | None, list[str], list[str]]:
    """What an owner's file says: its process id, robots and agents (None and nothing when unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["pid"]), list(data["robots"]), list(data["agents"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, [], []


def _live(folder: Path) -> Iterator[tuple[str, int | None, list[str], list[str]]]:
    """The live owners in ``folder``: token, process id, robots, agents."""
    for path in folder.iterdir():
        if path.name != _FOLDER_LOCK and _holds(path):
            yield (path.name, *_declared(path))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / _FOLDER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def forget_gone(journal: Path, tokens: set[str]) -> None:
    """Remove the files of owners found gone (their runs are recovered or held)."""
    folder = folder_of(journal)
    with _locked(folder):
        for token in tokens:
            if not _holds(folder / token):
                (folder / token).unlink(missing_ok=True)
