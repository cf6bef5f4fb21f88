"""The ``bbflow`` command's standard streams as a shell, a service manager or a pipeline leaves them (real
processes): closed (``<&-``, ``>&-``), and output that cannot be written. The work is done as it would be with a
terminal, nothing ends in a traceback, and the exit status is the work's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from run_helpers import PATIENCE, PICK_INPUTS, REQUEST, read_events, write_project

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptors")


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("streams"))


def closing(*fds: int) -> Callable[[], None]:
    """A ``preexec_fn`` that closes ``fds`` in the child, as ``<&-`` and ``>&-`` do."""
    def close() -> None:
        for fd in fds:
            os.close(fd)
    return close


def bbflow(*argv: str, closed: tuple[int, ...] = (), **kwargs: object) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("preexec_fn", closing(*closed) if closed else None)
    return subprocess.run([sys.executable, "-m", "bbflow", *argv], text=True, timeout=PATIENCE,  # type: ignore[call-overload]
                          **kwargs)


def test_agents_with_standard_input_closed_end_as_with_an_empty_one(cell: Path, tmp_path: Path) -> None:
    """``<&-``: no input at all, not a reader thread's traceback and a ``--until-idle`` that never ends."""
    events = tmp_path / "events.jsonl"
    done = bbflow("run", str(cell), "--until-idle", "--no-journal", "--events", str(events),
                  stdin=subprocess.DEVNULL, closed=(0,))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("idle: 0 signals in")
    assert read_events(events)[-1]["to"] == "disarmed"


def test_a_reactor_with_standard_output_closed_runs_and_exits_with_its_status(cell: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    done = bbflow("run", str(cell), "--reactor", "PickAndPlace", *PICK_INPUTS, "--no-journal",
                  "--events", str(events), closed=(1,))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.splitlines()[-1].startswith("PickAndPlace ok: ")
    assert [e["event"] for e in read_events(events) if e["event"].startswith("run.")] == ["run.start", "run.ok"]


@pytest.mark.parametrize("fd", [1, 2])
def test_check_with_an_output_closed_exits_with_its_status(cell: Path, fd: int) -> None:
    assert bbflow("check", str(cell), closed=(fd,)).returncode == 0
    (cell.parent / "broken").mkdir(exist_ok=True)
    (cell.parent / "broken" / "bad.flow").write_text("reactor {\n")
    done = bbflow("check", str(cell.parent / "broken"), closed=(fd,))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_signal_line_is_still_read_with_standard_error_closed(cell: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    done = bbflow("run", str(cell), "--until-idle", "--no-journal", "--events", str(events), input=REQUEST + "\n",
                  closed=(2,))
    assert done.returncode == 0
    assert [e["event"] for e in read_events(events)].count("run.ok") == 1
    assert json.loads(REQUEST)["type"] in {e.get("type") for e in read_events(events)}


def reader_gone() -> int:
    """The write end of a pipe whose reader has already gone (``| head -1`` after its line)."""
    read, write = os.pipe()
    os.close(read)
    return write


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_event_log_that_cannot_be_written_is_said_once_and_the_run_goes_on(cell: Path) -> None:
    done = bbflow("run", str(cell), "--reactor", "PickAndPlace", *PICK_INPUTS, "--no-journal", "--events", "/dev/full")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("warning: --events /dev/full: cannot write (No space left on device)") == 1
    assert json.loads(done.stdout) == {"x": 0.0, "y": 0.3, "z": 0.1}


def test_an_event_log_on_a_pipe_whose_reader_is_gone_is_said_once_and_the_run_goes_on(cell: Path) -> None:
    pipe = reader_gone()
    try:
        done = bbflow("run", str(cell), "--reactor", "PickAndPlace", *PICK_INPUTS, "--no-journal", "--events", "-",
                      stdout=pipe)
    finally:
        os.close(pipe)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert done.stderr.count("warning: --events -: cannot write (Broken pipe)") == 1
    assert done.stderr.splitlines()[-1].startswith("PickAndPlace ok: ")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_result_that_cannot_be_written_is_said_and_the_status_is_the_runs(cell: Path) -> None:
    with open("/dev/full", "w") as full:
        done = bbflow("run", str(cell), "--reactor", "PickAndPlace", *PICK_INPUTS, "--no-journal", stdout=full)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[-2] == "error: standard output: cannot write the result (No space left on device)"
    assert lines[-1].startswith("PickAndPlace ok: ")


def test_a_run_whose_standard_error_reader_is_gone_exits_with_the_runs_status(cell: Path, tmp_path: Path) -> None:
    """``bbflow run ... 2>&1 | head -1``: the lines after are lost, the robot is still disarmed, the status is 0."""
    events, pipe = tmp_path / "events.jsonl", reader_gone()
    try:
        done = bbflow("run", str(cell), "--reactor", "PickAndPlace", *PICK_INPUTS, "--no-journal",
                      "--events", str(events), stderr=pipe)
    finally:
        os.close(pipe)
    assert done.returncode == 0
    assert read_events(events)[-1]["to"] == "disarmed"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [("check", "--format", "json"), ("explain", "BBF401"), ("schema", "events"),
                                  ("runs",)])
def test_output_to_a_full_disk_is_said_in_a_line_and_exits_2(cell: Path, argv: tuple[str, ...]) -> None:
    """``bbflow check --format json > report.json`` on a full disk: not an OSError traceback (or a check that
    passed, exit 0), but the reason, and the status of an I/O error."""
    bbflow("run", str(cell), "--until-idle", stdin=subprocess.DEVNULL)  # a journal for `runs` to list
    with open("/dev/full", "w") as full:
        done = bbflow(*argv, cwd=cell, stdout=full)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "Error: cannot write the output: No space left on device\n"


def test_lsp_on_a_tcp_port_already_taken_says_so_and_exits_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = bbflow("lsp", "--tcp", str(port), stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"Error: --tcp {port}: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize("argv", [("check",), ("run", "--until-idle"), ("runs",), ("fmt",)])
def test_a_current_folder_removed_meanwhile_is_said_not_a_traceback(tmp_path: Path, argv: tuple[str, ...]) -> None:
    """A shell still in a folder another terminal (or a `git checkout`) removed."""
    gone = tmp_path / "gone"
    gone.mkdir()
    done = bbflow(*argv, cwd=gone, stdin=subprocess.DEVNULL, preexec_fn=gone.rmdir)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "Error: the current folder no longer exists (removed or moved meanwhile): cd to one " \
                          "that does\n"


def test_an_event_log_on_the_file_standard_input_reads_is_refused_before_it_is_emptied(cell: Path,
                                                                                       tmp_path: Path) -> None:
    """``--events signals.jsonl < signals.jsonl``: opening the log emptied the signals before they were read (the
    run took none, and the file was lost). Refused, nothing moved, the file as it was."""
    signals = tmp_path / "signals.jsonl"
    signals.write_text(REQUEST + "\n")
    with open(signals) as stdin:
        done = bbflow("run", str(cell), "--until-idle", "--no-journal", "--events", str(signals), stdin=stdin)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: --events {signals}: standard input reads that file: writing the event log " \
                          "would empty it before it is read\n"
    assert signals.read_text() == REQUEST + "\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_summary_to_a_full_disk_exits_2_not_1_as_if_errors_were_found(cell: Path) -> None:
    with open("/dev/full", "w") as full:
        done = bbflow("check", str(cell), stderr=full)
    assert done.returncode == 2


def test_a_run_in_a_folder_the_locale_cannot_name_works(tmp_path: Path) -> None:
    """``LC_ALL=C`` without UTF-8 mode (an old service unit, a minimal container): ``projé`` is a name
    Python holds with surrogate escapes, which hashing its path for the journal's owners folder could not
    encode ("error: 'utf-8' codec can't encode characters ..., surrogates not allowed", nothing ran)."""
    cell = write_project(tmp_path / "cellé")
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    ascii_only = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                                env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert ascii_only == "ascii"  # the case this test is for
    done = bbflow("run", str(cell), "--reactor", "PickAndPlace", *PICK_INPUTS, env=env)
    assert done.returncode == 0, done.stderr


def test_a_folder_has_one_key_whatever_the_locale(tmp_path: Path) -> None:
    """The owners folder (which processes hold which robots) is found by this key: a process in another
    locale must find the same one."""
    from bbflow.runtime.ids import folder_key

    named = str(tmp_path / "cellé")  # as a UTF-8 locale reads the name
    escaped = os.fsdecode(os.fsencode(tmp_path)) + "/cell\udcc3\udca9"  # as LC_ALL=C reads the same bytes
    assert folder_key(named) == folder_key(escaped)
