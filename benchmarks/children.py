"""Child processes whose time and peak memory are their own.

Linux gives a process started by ``fork`` + ``exec`` the peak resident memory
of the process it was forked from: ``wait4``'s ``ru_maxrss`` of a child of a
benchmark that has grown to 500 MB says 500 MB, whatever the child used. So a
command is started here through a small launcher (a fresh interpreter that
imports nothing) which forks it: the command's peak is then measured from the
launcher's few megabytes, and its wall time from the fork to its exit (the
launcher's own start-up is not counted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import IO, Any

import attrs

#: argv: the launcher's report descriptor, then the command. Writes [seconds, cpu seconds, peak bytes] to it.
_LAUNCHER = r"""
import os, sys, time
report, command = int(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(report)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"cannot start {command[0]}: {exc}", file=sys.stderr)
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
os.write(report, ("[%r, %r, %d]" % (seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)).encode())
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


@attrs.frozen
class Usage:
    """What a finished child used: wall seconds, CPU seconds (user + system), peak resident bytes; its exit code."""

    seconds: float
    cpu: float
    peak: int
    returncode: int


class Measured:
    """A command started through the launcher; ``popen`` options (stdin, stdout, stderr, cwd) apply to it."""

    def __init__(self, args: list[str], **popen: Any) -> None:
        read, write = os.pipe()
        try:
            self.proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(write), *args],
                                         pass_fds=(write,), **popen)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._report = read

    @property
    def stdin(self) -> IO[bytes] | None:
        return self.proc.stdin

    @property
    def stderr(self) -> IO[bytes] | None:
        return self.proc.stderr

    def wait(self) -> Usage:
        """Wait for the command (and its launcher) to end and read what it used."""
        with os.fdopen(self._report, "rb") as report:
            text = report.read()
        returncode = self.proc.wait()
        if not text:
            raise RuntimeError(f"the launcher of {self.proc.args[5:]} reported nothing (exit {returncode})")
        seconds, cpu, peak = json.loads(text)
        return Usage(seconds, cpu, peak, returncode)
