"""Which process is running what: a run belongs to the process that started it while that process lives.

Each ``bbflow run`` of a project takes an *owner* token when it opens its
journal and holds an exclusive ``flock`` on a file of that name in the
project's owners folder for as long as it has the journal open; each run it
starts is recorded with the token. The kernel drops the lock when the process
dies, however it dies (``kill -9`` included), so "is the owner of this run
alive?" is answered by trying a shared lock on its file: refused, it lives;
granted, or no file, it is gone. A child the process forks does not keep the
lock alive after it.

The owners folder of a project is one for the machine (``folder_of``: under
``OWNERS_ROOT``, named for the project's folder), not beside a journal: the
processes of one project may keep journals in different places (one started
with ``$BBFLOW_JOURNAL_DIR``, one without, one with ``--no-journal``) and must
all see each other. The last process to leave removes it.

Recovery takes only the unfinished runs whose owner is gone, and takes each by
setting the run's owner to its own token in one statement that checks the old
one (``Journal.claim``): two processes starting together never both roll back
the same run, and no process rolls back a run that another one is running.

A process also writes in its file the robots and agent instances it runs (and
what it is: a ``bbflow run`` or a ``bbflow runs recover``, for messages), and
``Owner.claim`` refuses (``InUse``) to start a second process of the project
with any of the same: two processes would drive one arm, or handle one
agent's signals twice. The check, the removal of gone owners' files and the
writing of the new one are made under a lock on the folder, so of two
processes starting together the second sees the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from bbflow.runtime.ids import folder_key, uuid7
from bbflow.runtime.jsonout import path_text

#: What a process is, as its owner file says for the others' messages: a ``bbflow run``, or an operator's
#: ``bbflow runs recover`` (``RECOVER``) rolling a held run back.
RUN = "bbflow run"
RECOVER = "bbflow runs recover"
#: Where the owners folder of every project on the machine is. A fixed path, not ``$TMPDIR`` (two processes may
#: be given different ones); writable by every user, sticky, as ``/tmp`` is, so that the processes of one
#: project see each other whoever runs them.
OWNERS_ROOT = Path("/tmp/bbflow-owners")
#: The folder's own lock (not an owner): taken while a process looks for conflicts and writes its file.
_FOLDER_LOCK = ".lock"
#: How many times a process tries again to lock a folder that the last process of the project removed meanwhile.
_LOCK_TRIES = 100
#: The owner files this process holds open: closed in a forked child, so that only this process keeps them.
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


class InUse(Exception):
    """Another live process of the project runs some of the same robots or agents."""


def folder_of(key: Path) -> Path:
    """The owners folder of the project in the folder ``key`` (for a journal opened without a project: its file),
    wherever its journals are: ``OWNERS_ROOT/NAME-HASH`` (the hash of the whole path)."""
    return OWNERS_ROOT / f"{key.resolve().name}-{folder_key(key)}"


class Owner:
    """This process's token, and the lock that says it is alive (``claim``, then ``release`` at close)."""

    def __init__(self, token: str, path: Path, fd: int, folder_fd: int) -> None:
        self.token = token
        self.path = path
        self._fd: int | None = fd
        #: a shared lock on the folder itself, held as long as the process lives: systemd-tmpfiles leaves a
        #: locked folder alone, so the aging of /tmp never removes a live process's file (a cell runs for months)
        self._folder_fd = folder_fd
        self._pid = os.getpid()  # a forked child's copy releases nothing of its parent's

    @classmethod
    def claim(cls, folder: Path, journal: Path | None, robots: Collection[str] = (),
              agents: Collection[str] = (), command: str = RUN) -> Owner:
        """A new token in the owners ``folder`` for this process (a ``command``: ``RUN`` or ``RECOVER``), which
        keeps ``journal`` (None: it keeps none, ``--no-journal``) and runs ``robots`` and ``agents``.

        Raises ``InUse`` when a live process of the project runs any of them, ``OSError`` when the file
        cannot be made.
        """
        with _locked(folder):
            for path in _live(folder):
                theirs = _declared(path) or {}
                robot = sorted(set(robots) & set(theirs.get("robots", ())))
                both = [f"robot {', '.join(robot)}"] if robot else [
                    f"agent {name}" for name in sorted(set(agents) & set(theirs.get("agents", ())))]
                pid = theirs.get("pid")
                if both:
                    what = theirs.get("command", RUN)
                    raise InUse(f"{', '.join(both)} already run by another {what} of this project "
                                f"(process {pid if pid is not None else '?'}, {path}); "
                                + ("stop it first" if what == RUN else "wait for it to end"))
            token = uuid7()
            path = folder / token
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            folder_fd = -1
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits only for another process's probe (``_holds``) of it
                os.write(fd, json.dumps({"pid": os.getpid(), "journal": None if journal is None else path_text(journal),
                                         "robots": sorted(robots), "agents": sorted(agents),
                                         "command": command}).encode())
                folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                fcntl.flock(folder_fd, fcntl.LOCK_SH)
            except OSError:
                for held in (fd, folder_fd):
                    if held >= 0:
                        os.close(held)
                path.unlink(missing_ok=True)
                raise
            _HELD.update((fd, folder_fd))
        return cls(token, path, fd, folder_fd)

    def release(self) -> None:
        """Remove the file and drop the lock (the runs recorded with the token are now anyone's); the last
        process of the project removes the folder, and those of other projects whose processes were all
        killed (a killed process cannot remove its own)."""
        if self._fd is None or os.getpid() != self._pid:
            return
        self.path.unlink(missing_ok=True)
        for fd in (self._fd, self._folder_fd):
            _HELD.discard(fd)
            os.close(fd)
        self._fd = None
        folder = self.path.parent
        with contextlib.suppress(OSError), _locked(folder):
            _remove_if_unused(folder)
        _sweep(folder.parent)


def alive(folder: Path, token: str | None) -> bool:
    """Whether the process that took ``token`` in the owners ``folder`` still runs (None, a run no process
    owns: held for an operator, or from before owners were recorded: no)."""
    return token is not None and _holds(folder / token)


def pid_of(folder: Path, token: str) -> int | None:
    """The process id written in an owner's file (for messages), or None."""
    pid = (_declared(folder / token) or {}).get("pid")
    return pid if isinstance(pid, int) else None


def others_on(folder: Path, journal: Path, me: Owner) -> bool:
    """Whether another live process keeps ``journal`` open (one whose file cannot be read counts)."""
    for path in folder.iterdir():
        if path.name in (_FOLDER_LOCK, me.token) or not _holds(path):
            continue
        theirs = _declared(path)
        if theirs is None or theirs.get("journal") == path_text(journal):
            return True
    return False


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


def _declared(path: Path) -> dict[str, Any] | None:
    """What an owner's file says (``pid``, ``journal``, ``robots``, ``agents``); None when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _live(folder: Path) -> list[Path]:
    """The files of the live owners in ``folder``, the gone ones' removed (their runs, if any, are anyone's to
    recover); under the folder's lock."""
    out = []
    for path in folder.iterdir():
        if path.name == _FOLDER_LOCK:
            continue
        if _holds(path):
            out.append(path)
        else:
            path.unlink(missing_ok=True)
    return out


def _remove_if_unused(folder: Path) -> None:
    """Remove the owners ``folder`` if no live process uses it; under its lock. (One another user made stays:
    ``OSError``, EPERM.)"""
    if not _live(folder):
        (folder / _FOLDER_LOCK).unlink()
        folder.rmdir()


def _sweep(root: Path) -> None:
    """Remove the owners folders in ``root`` that no live process uses; one whose lock another process holds
    (it is claiming or leaving it) is left to that process."""
    with contextlib.suppress(OSError):
        for folder in list(root.iterdir()):
            try:
                fd = os.open(folder / _FOLDER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # not an owners folder, or one being made or removed
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.stat(folder / _FOLDER_LOCK).st_ino == os.fstat(fd).st_ino:  # not removed meanwhile
                    _remove_if_unused(folder)
            except OSError:
                pass
            finally:
                os.close(fd)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """The folder's lock, the folder made first if need be (``OSError`` if it cannot be)."""
    fd = _lock(folder)
    try:
        yield
    finally:
        os.close(fd)


def _lock(folder: Path) -> int:
    for _ in range(_LOCK_TRIES):
        for path, mode in ((folder.parent, 0o1777), (folder, 0o777)):
            try:
                path.mkdir()
            except FileExistsError:
                continue
            path.chmod(mode)  # whatever the umask: every user's processes of the project use it
        try:
            fd = os.open(folder / _FOLDER_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the folder was removed meanwhile (``release``): make it again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # the lock file may have been removed (``release``) while this process waited for it: it locks nothing
            if os.stat(folder / _FOLDER_LOCK).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise OSError(f"{folder}: cannot lock the owners folder (it is removed and made again without end)")
