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
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bbflow.runtime.ids import uuid7


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
    def claim(cls, journal: Path) -> Owner:
        """A new token for this process, its file locked; ``OSError`` if the file cannot be made."""
        folder = folder_of(journal)
        folder.mkdir(exist_ok=True)
        token = uuid7()
        path = folder / token
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{os.getpid()}\n".encode())  # for a human looking at the folder
        except OSError:
            os.close(fd)
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
    try:
        fd = os.open(folder_of(journal) / token, os.O_RDONLY | os.O_CLOEXEC)
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
    try:
        return int((folder_of(journal) / token).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def forget_gone(journal: Path, tokens: set[str]) -> None:
    """Remove the files of owners found gone (their runs are recovered or held)."""
    for token in tokens:
        if not alive(journal, token):
            (folder_of(journal) / token).unlink(missing_ok=True)
