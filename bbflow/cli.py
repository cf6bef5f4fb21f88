"""The ``bbflow`` command line: thin wrappers over the compiler and runtime modules."""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import click

from bbflow import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from bbflow.compiler import Diagnostics
    from bbflow.project import Project
    from bbflow.runtime.model import Program
    from bbflow.serve.plane import ControlPlane

FORMATS = ("text", "json", "sarif")


class UsageFailure(click.ClickException):
    """A usage or I/O error: reported on stderr, exit status 2."""

    exit_code = 2


#: the errors of a device that cannot take what is written to it
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
#: set by a command that starts no thread, process or server, so its process may end at once
_teardown_free = False
#: set by the console script (``entry``), whose process ends with the command
_own_process = False


def _terminal(stream: IO[str]) -> bool:
    """``stream`` is a terminal that reads escape sequences: a TTY whose ``TERM`` is set and not ``dumb`` (as
    Emacs' shell and compilation buffers set it)."""
    return stream.isatty() and os.environ.get("TERM", "dumb") != "dumb"


def _colour(stream: IO[str]) -> bool:
    """Colour on ``stream``: on such a terminal, unless ``NO_COLOR`` is set and not empty (https://no-color.org)."""
    return _terminal(stream) and not os.environ.get("NO_COLOR")


def _needs_no_teardown() -> None:
    """Called first by a short command (check, build, explain, graph). In the console script's own process,
    the cyclic garbage collector is switched off too: the process ends with the command (``os._exit``),
    so collecting would only rescan the syntax trees the command keeps to its end."""
    global _teardown_free
    _teardown_free = True
    if _own_process:
        gc.disable()


def entry() -> None:
    """The ``bbflow`` console script: :func:`main`; then, after a command that needs no teardown, ``os._exit``
    once the output is flushed, skipping the interpreter's teardown of every module and object (as mypy
    does). Only here: ``main`` itself, as tests and other programs call it, never ends the process this way."""
    global _own_process
    _own_process = True
    _open_standard_streams()
    try:
        try:
            main()
        except OSError as e:  # output to a full disk: said in a line, not a traceback
            if e.errno not in _NO_ROOM:
                raise
            _discard(sys.stdout)
            try:
                print(f"Error: cannot write{f' {e.filename}' if e.filename else ' the output'}: {e.strerror}",
                      file=sys.stderr)
            except OSError:  # standard error is on the full disk too: the status says it
                _discard(sys.stderr)
            sys.exit(2)
    except SystemExit as e:
        if not _teardown_free:
            raise
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: nothing more can be said
            code = code or 1
        os._exit(code)


def _discard(stream: IO[str]) -> None:
    """``stream`` (standard output or error) on the null device from now on: what is left in its buffer is not
    written again, and fails again, when the interpreter ends."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, stream.fileno())
    os.close(null)


def _open_standard_streams() -> None:
    """A standard stream the caller closed (``<&-``, ``>&-``), which Python leaves as ``None``, is opened on the
    null device, as POSIX tools do: closed input reads as empty (``--until-idle`` ends), closed output goes
    nowhere, and no file opened later (a journal, the event log) takes the stream's number."""
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        if getattr(sys, name) is not None:
            continue
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        setattr(sys, name, open(fd, "r" if fd == 0 else "w", encoding="utf-8", closefd=False))  # noqa: SIM115


#: the commands that read no file relative to the current folder
_NO_FOLDER = frozenset({"explain", "schema", "lsp"})


class _Commands(click.Group):
    """The command group. Ctrl-C in a command that does not stop on its own (check, fmt, drill, ...) ends it with
    status 130 (128 + SIGINT, as shells and CI runners read it, and as ``bbflow run`` does), not click's
    "Aborted!" and 1, the status of a check that found errors."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="bbflow")
@click.pass_context
def main(ctx: click.Context) -> None:
    """bbflow: checked robot behaviour — reactors and agents in .flow files."""
    if ctx.invoked_subcommand in _NO_FOLDER:
        return
    try:
        os.getcwd()
    except FileNotFoundError:  # every relative path, and every path shown relative, would fail with a traceback
        raise UsageFailure("the current folder no longer exists (removed or moved meanwhile): cd to one that "
                           "does") from None


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="How to print the diagnostics.")
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too.")
@click.option("--drivers", is_flag=True, help="Also import the configured drivers and check them (BBF601).")
@click.option("--no-cache", is_flag=True, help="Check everything again, ignoring .bbflow/cache.")
def check(paths: tuple[str, ...], fmt: str, strict: bool, drivers: bool, no_cache: bool) -> None:
    """Check .flow files, folders and projects (default: the current folder).

    Unchanged programs are not checked again: their diagnostics come from
    .bbflow/cache. Exit status: 0 no errors, 1 errors (or warnings with
    --strict), 2 usage or I/O error.
    """
    _needs_no_teardown()
    from bbflow.compiler import InputError, compile_paths, report

    try:
        result = compile_paths(paths or (".",), use_cache=not no_cache, generate=drivers)
    except InputError as e:
        if fmt == "sarif":  # code scanning still gets a log, saying why the check could not run
            from bbflow.compiler import render_sarif_failure

            click.echo(render_sarif_failure(str(e)), nl=False)
        raise UsageFailure(str(e)) from e
    if drivers:
        from bbflow.build import check_drivers

        check_drivers(result)
    out = report(result, fmt, color=_colour(sys.stdout))
    click.echo(out.body, nl=False)
    if out.summary:
        click.echo(out.summary, err=True)
    sys.exit(out.exit_code(strict))


@main.command()
@click.argument("code", required=False)
def explain(code: str | None) -> None:
    """Print the long explanation of a diagnostic code (e.g. BBF401); without one, list the codes.

    On a terminal the page is rendered (Markdown); piped, it stays plain text.
    """
    _needs_no_teardown()
    from bbflow.compiler import CODES
    from bbflow.compiler import explain as page

    if code is None:
        width = max(len(c.severity.value) for c in CODES.values())
        for c in CODES.values():
            click.echo(f"{c.code}  {c.severity.value:<{width}}  {c.title}")
        return
    try:
        text = page(code)
    except KeyError:
        raise UsageFailure(f"unknown code {code!r}; known codes: {', '.join(CODES)} (bbflow explain lists them)") from None
    if _terminal(sys.stdout):
        from rich.console import Console
        from rich.markdown import Markdown

        Console(highlight=False).print(Markdown(text))
        return
    click.echo(text, nl=not text.endswith("\n"))


@main.command()
@click.argument("folder", required=False, default=".", type=click.Path(file_okay=False, path_type=str))
def init(folder: str) -> None:
    """Create a new project in FOLDER (default: the current folder).

    A simulated arm, a reactor with undo, an agent, sample signals, a faults
    file for a drill, a README and a .gitignore. It checks clean and runs on
    the simulated robot. Refuses to overwrite any file (exit 2).
    """
    from bbflow.scaffold import InitError, init_project

    try:
        written = init_project(folder)
    except InitError as e:
        raise UsageFailure(str(e)) from e
    click.echo(f"created {len(written)} files in {folder}", err=True)
    for path in written:
        click.echo(f"  {path}", err=True)
    go = "" if folder == "." else f"cd {shlex.quote(folder)} && "  # to be pasted, whatever the folder's name
    click.echo(f"next: {go}bbflow check && bbflow run --until-idle < signals.jsonl", err=True)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file would be reformatted.")
@click.option("--diff", "show_diff", is_flag=True, help="Change nothing; print what would change as a unified diff.")
def fmt(paths: tuple[str, ...], check_only: bool, show_diff: bool) -> None:
    """Rewrite .flow files (default: below the current folder) in the canonical layout.

    `bbflow fmt -` formats standard input to standard output. Files with
    syntax errors are left alone and reported. Exit status: 0 done (or, with
    --check/--diff, nothing to change), 1 a file would change, 2 a file could
    not be formatted or usage error.
    """
    from bbflow.compiler import FormatError, flow_files, format_diff, format_text, read_flow_file

    if paths == ("-",):
        text = sys.stdin.read()
        try:
            out = format_text(text, "<stdin>")
        except FormatError as e:
            raise UsageFailure(str(e)) from e
        click.echo(format_diff(text, out, "<stdin>") if show_diff else out, nl=False)
        sys.exit(1 if (check_only or show_diff) and out != text else 0)
    try:
        files = flow_files(paths or (".",))
    except FormatError as e:
        raise UsageFailure(str(e)) from e
    changed = failed = 0
    for path in files:
        try:
            text = read_flow_file(path)
            out = format_text(text, str(path))
        except FormatError as e:
            click.echo(f"error: {e}", err=True)
            failed += 1
            continue
        if out == text.replace("\r\n", "\n"):
            continue
        changed += 1
        if show_diff:
            click.echo(format_diff(text, out, str(path)), nl=False)
        elif check_only:
            click.echo(f"would reformat {path}", err=True)
        else:
            try:
                _rewrite(path, out)
            except OSError as e:
                click.echo(f"error: {path}: cannot write: {e.strerror or e}", err=True)
                failed += 1
                changed -= 1
                continue
            click.echo(f"reformatted {path}", err=True)
    verb = "would be reformatted" if check_only or show_diff else "reformatted"
    click.echo(f"{changed} file{'s' * (changed != 1)} {verb}, {len(files) - changed - failed} unchanged"
               + (f", {failed} not formatted" if failed else ""), err=True)
    sys.exit(2 if failed else 1 if changed and (check_only or show_diff) else 0)


def _rewrite(path: Path, text: str) -> None:
    """Replace the text of ``path`` (of its target, for a symbolic link) whole or not at all, keeping its mode: a
    full disk or a Ctrl-C midway leaves the old text, where writing in place had cut it short."""
    import stat
    import tempfile

    target = path.resolve()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=str), default="build",
              show_default=True, help="Folder to write the generated package into.")
@click.option("--no-cache", is_flag=True, help="Check and generate everything, ignoring .bbflow/cache.")
def build(paths: tuple[str, ...], out_dir: str, no_cache: bool) -> None:
    """Generate one Python module per .flow file (default: the current folder).

    Refuses to write anything when the check reports errors. Exit status: 0
    built, 1 errors, 2 usage or I/O error.
    """
    _needs_no_teardown()
    from bbflow.build import build_program, write_package
    from bbflow.compiler import CompileResult, InputError, SourceFile, report

    try:
        built = build_program(paths or (".",), use_cache=not no_cache)
    except InputError as e:
        raise UsageFailure(str(e)) from e
    shown = CompileResult(sources={d: SourceFile(d, t) for d, t in built.sources.items()},
                          diagnostics=built.diagnostics)
    out = report(shown, "text", color=_colour(sys.stderr))
    click.echo(out.body, nl=False, err=True)
    if not built.ok:
        if out.summary:
            click.echo(out.summary, err=True)
        sys.exit(1)
    try:
        write_package(built.modules, out_dir)
    except OSError as e:
        raise UsageFailure(f"{out_dir}: cannot write: {e.strerror or e}") from e
    click.echo(f"built {len(built.modules)} modules into {out_dir}", err=True)


@main.command()
@click.argument("name", required=False)
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(("mermaid", "dot")), default="mermaid", show_default=True,
              help="Mermaid (for Markdown) or Graphviz dot.")
@click.option("--project", "whole", is_flag=True,
              help="The signal flow between the project's robot and agent instances (then no NAME: "
                   "bbflow graph --project [PATHS]).")
def graph(name: str | None, paths: tuple[str, ...], fmt: str, whole: bool) -> None:
    """Draw a reactor's steps, an agent's routes, or (--project) the signal flow of the program.

    NAME is a reactor (its steps and dependencies: data and `after` edges
    solid, undo edges dashed, composed reactors as subgraphs) or an agent (its
    routes, what each runs and emits). PATHS default to the current folder.
    """
    _needs_no_teardown()
    from bbflow.compiler import (
        GraphError,
        InputError,
        compile_paths,
        render_agent_graph,
        render_graph,
        render_project_graph,
        report,
    )

    if whole and name is not None:
        paths = (name, *paths)
    elif not whole and name is None:
        raise UsageFailure("give a reactor or agent NAME, or --project")
    try:
        checked = compile_paths(paths or (".",))  # without the cache: drawing needs the facts
    except InputError as e:
        raise UsageFailure(str(e)) from e
    if checked.diagnostics.has_errors() or checked.facts is None:
        out = report(checked, "text", color=False)
        click.echo(out.body, nl=False, err=True)
        sys.exit(1)
    try:
        if whole:
            # the instances of the project's bbflow.toml; without one (or with several), the interfaces
            project = checked.projects[0] if len(checked.projects) == 1 else None
            drawing = render_project_graph(checked.facts, fmt, project)
        else:
            assert name is not None
            try:
                drawing = render_graph(checked.facts, name, fmt)
            except GraphError as missing:
                if not str(missing).startswith("no reactor named"):
                    raise
                try:
                    drawing = render_agent_graph(checked.facts, name, fmt)
                except GraphError as no_agent:
                    if not str(no_agent).startswith("no agent named"):
                        raise
                    raise GraphError(
                        f"no reactor or agent named {name!r} ({str(missing).partition('(')[2]}") from None
        click.echo(drawing, nl=False)
    except GraphError as e:
        raise UsageFailure(str(e)) from e


@main.command()
@click.argument("project", required=False, default=".", type=click.Path(path_type=str))
@click.option("--reactor", help="Run this reactor (qualified or short name) instead of the agents.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=JSON",
              help="A reactor input as JSON, e.g. --input 'pick={\"x\": 0.2, \"y\": 0, \"z\": 0.1}'.")
@click.option("--agent", "agents", multiple=True, metavar="NAME",
              help="Run this agent (repeatable; default: [run] agents of bbflow.toml).")
@click.option("--robot", "robots", multiple=True, metavar="INSTANCE",
              help="Run only this robot instance and its agents (repeatable); also picks the instance "
                   "when several implement an interface.")
@click.option("--driver", metavar="NAME", help="Use this driver for every robot (--driver sim: the simulated one).")
@click.option("--faults", type=click.Path(dir_okay=False, path_type=str), help="A faults file (TOML) for drills.")
@click.option("--events", type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
              help="Write every runtime event as JSON lines to this file (- for standard output).")
@click.option("--until-idle", is_flag=True, help="Stop when standard input is closed and nothing is left to do.")
@click.option("--virtual-time", is_flag=True,
              help="Simulated robots only: run on a virtual clock (delays and timeouts take no real time).")
@click.option("--arm/--no-arm", "arm", default=None,
              help="Arm the robots before work (default: simulated ones only, and those with arm = true).")
@click.option("--bus-listen", "bus_listen", multiple=True, metavar="ENDPOINT",
              help="Listen on this Zenoh endpoint (repeatable; replaces [bus] listen), e.g. tcp/127.0.0.1:7447.")
@click.option("--bus-connect", "bus_connect", multiple=True, metavar="ENDPOINT",
              help="Connect to this Zenoh endpoint (repeatable; replaces [bus] connect).")
@click.option("--serve", "serve", metavar="[HOST:]PORT",
              help="Serve the control plane (HTTP signals, live events, dashboard); needs bbflow[serve].")
@click.option("--no-journal", "journal", flag_value=False, default=True,
              help="Keep no journal (no crash recovery): for experiments only.")
def run(project: str, inputs: tuple[str, ...], agents: tuple[str, ...], serve: str | None, **options: object) -> None:
    """Run a project on its robots (the simulated ones by default).

    Runs the reactor given with --reactor, or serves the agents, which read
    signals (JSON lines) from standard input. Exit status: 0 success, 1 run
    failed (rolled back), 2 usage or compile error, 3 halted (or a stuck command, or a robot not disarmed at shutdown), 4 rolled back with
    undo errors (the robot may not be safe), 130 interrupted.
    """
    from bbflow.build import compile_project
    from bbflow.compiler import InputError
    from bbflow.project import ProjectError, find_project, importable, load_project
    from bbflow.runtime.app import run_app
    from bbflow.runtime.run_plan import RunOptions
    from bbflow.runtime.stdin import stdin_source

    root = find_project(project)
    if root is None:
        raise UsageFailure(f"{project}: no bbflow.toml here or in any folder above")
    try:
        diagnostics, program = compile_project(root)  # bbflow.toml too: its problems are BBF701
        if program is None:
            _print_diagnostics(diagnostics)
            sys.exit(2)
        loaded = load_project(root)
    except (ProjectError, InputError) as e:
        raise UsageFailure(str(e)) from e
    except KeyboardInterrupt:  # while compiling: nothing has moved
        sys.exit(130)
    if diagnostics.warnings:  # the check's warnings, before anything moves
        _print_diagnostics(diagnostics)
    plane = _control_plane(loaded, program, serve)
    if plane is not None and options.get("virtual_time"):
        raise UsageFailure("--serve needs real time: it cannot be combined with --virtual-time")
    live = _terminal(sys.stderr)
    with importable(loaded.root):  # the project's drivers and actions, wherever bbflow is run from
        status = run_app(program, loaded, RunOptions(inputs=inputs, agents=agents, **options),  # type: ignore[arg-type]
                         stdin=stdin_source(sys.stdin), stdout=sys.stdout, stderr=sys.stderr, live=live,
                         attachment=plane)
    _exit(status)


def _exit(status: int) -> None:
    """``sys.exit``, unless a thread of the fleet bus is still in a Zenoh call (a put or a close that a peer which
    reads nothing holds, left behind as the process stopped): the interpreter's end would stop that thread as
    it comes out of Zenoh, which aborts the process (SIGABRT, "FATAL: exception not rethrown") after a clean
    stop. Everything is closed by now: the process ends at once, with its status."""
    from bbflow.runtime.fleet import threads_in_zenoh

    if threads_in_zenoh():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(status)
    sys.exit(status)


def _control_plane(project: Project, program: Program, listen: str | None) -> ControlPlane | None:
    """The control plane asked for by --serve or [serve] listen, checked before anything moves."""
    from bbflow.serve import EXTRA_HINT, EXTRA_MODULES, ServeError, control_plane, serve_settings

    try:
        settings = serve_settings(project.serve, listen)
    except ServeError as e:
        raise UsageFailure(str(e)) from e
    if settings is None:
        return None
    try:
        return control_plane(settings, program, title=project.name)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in EXTRA_MODULES:
            raise
        raise UsageFailure(EXTRA_HINT) from None


@main.command()
@click.argument("words", nargs=-1, metavar="[PROJECT] | show ID [PROJECT] | recover ID [PROJECT]")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.option("--arm", is_flag=True, help="recover: arm a real robot before undoing (a simulated one always is).")
@click.option("--driver", metavar="NAME", help="recover: use this driver (--driver sim: the simulated one).")
@click.option("--events", type=click.Path(dir_okay=False, path_type=str), help="recover: write the events here.")
@click.option("--resolved", is_flag=True,
              help="recover: the world was put right by hand; close the run without moving anything.")
@click.option("--bus-listen", "bus_listen", multiple=True, metavar="ENDPOINT",
              help="recover: listen on this Zenoh endpoint to claim the robot on the bus (replaces [bus] listen).")
@click.option("--bus-connect", "bus_connect", multiple=True, metavar="ENDPOINT",
              help="recover: connect to this Zenoh endpoint to claim the robot on the bus (replaces [bus] connect).")
@click.option("--limit", type=click.IntRange(min=0), default=200, show_default=True, metavar="N",
              help="list: the newest N runs (0: all).")
@click.option("--before", metavar="ID", help="list: the runs that started before run ID (the next page after it).")
def runs(words: tuple[str, ...], fmt: str, arm: bool, driver: str | None, events: str | None,
         resolved: bool, bus_listen: tuple[str, ...], bus_connect: tuple[str, ...], limit: int,
         before: str | None) -> None:
    """The runs in the project's journals, newest first (200 of them, or --limit N): its own and each `--robot`
    process's beside it (`journal.left.db`), each run's file in the `journal` column; `show ID`: one run's
    timeline, in-doubt steps marked; `recover ID`: roll back a held run now, on its robot, in the journal that
    holds it (see docs/durability.md).

    ID may be the start of a run's id (of one run only, in all the journals). Exit status: 0, 1 a
    recovered run had undo errors or stays held, 2 usage error or a journal missing or unusable, 130 a
    recover interrupted (Ctrl-C, SIGTERM or SIGHUP).
    """
    from bbflow.project import ProjectError, find_project, importable, load_project
    from bbflow.runtime.journal import JournalError
    from bbflow.runtime.journal.operator import print_run, print_runs, recover_run

    action = words[0] if words and words[0] in ("show", "recover") else "list"
    rest = words[1:] if action != "list" else words
    if action != "list" and (not rest or not rest[0].strip()):  # an empty one (an unset $ID) would name any run
        raise UsageFailure(f"bbflow runs {action} needs a run ID" + (" (got an empty one)" if rest else ""))
    where = rest[1] if action != "list" and len(rest) > 1 else rest[0] if action == "list" and rest else "."
    if len(rest) > (2 if action != "list" else 1):
        raise UsageFailure("too many arguments: bbflow runs [PROJECT] | show ID [PROJECT] | recover ID [PROJECT]")
    root = find_project(where)
    if root is None:
        raise UsageFailure(f"{where}: no bbflow.toml here or in any folder above")
    color = _colour(sys.stdout)
    try:
        project = load_project(root)
        if action == "list":
            print_runs(project, sys.stdout, fmt=fmt, color=color, limit=limit, before=before, err=sys.stderr)
        elif action == "show":
            print_run(project, rest[0], sys.stdout, fmt=fmt, color=color)
        else:
            program = None
            if not resolved:
                from bbflow.build import compile_project

                diagnostics, program = compile_project(root)
                if program is None:
                    _print_diagnostics(diagnostics)
                    sys.exit(2)
            try:
                with importable(project.root), _terminate_as_interrupt():
                    done = recover_run(program, project, rest[0], sys.stdout, sys.stderr,  # type: ignore[arg-type]
                                       arm=arm, driver=driver, events=events, resolved=resolved,
                                       bus_listen=bus_listen, bus_connect=bus_connect)
            except KeyboardInterrupt:  # the undos made so far are journaled: the next recover skips them
                click.echo(f"interrupted: run {rest[0]} is left unfinished, what was undone journaled: `bbflow runs "
                           f"recover {rest[0]}` again goes on from there", err=True)
                _exit(130)
            _exit(1 if any(r.action == "held" or r.undo_errors for r in done) else 0)
    except (ProjectError, JournalError, ValueError) as e:
        raise UsageFailure(str(e)) from e


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM (a service manager's stop, ``timeout``) and SIGHUP (the terminal or the ssh session
    gone; unless ignored, as ``nohup`` does) are a Ctrl-C: the work in flight is cancelled and the robot
    disarmed, not the process killed with the robot armed."""
    from bbflow.runtime.app import interrupting_signals

    if threading.current_thread() is not threading.main_thread():  # signals are for the main thread only
        yield
        return
    taken = [sig for sig in interrupting_signals() if sig != signal.SIGINT]
    previous = {sig: signal.signal(sig, lambda signum, frame: signal.raise_signal(signal.SIGINT)) for sig in taken}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_diagnostics(diagnostics: Diagnostics) -> None:
    """Compile errors of ``bbflow run`` on standard error, with their source lines."""
    from pathlib import Path

    from bbflow.compiler import SourceFile, render_text, summary

    items = diagnostics.sorted()
    sources = {}
    for d in items:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            # as the compiler read it: no byte order mark (utf-8-sig), every newline a \n (read_text's own)
            sources[d.span.file] = SourceFile(d.span.file, Path(d.span.file).read_text(encoding="utf-8-sig"))
    click.echo(render_text(items, sources, color=_colour(sys.stderr)),
               nl=False, err=True)
    errors = sum(d.is_error for d in items)
    click.echo(summary(errors, len(items) - errors, len(sources)), err=True)


@main.command()
@click.argument("reactor")
@click.option("--project", "project", default=".", type=click.Path(path_type=str), show_default=True,
              help="The project (a folder at or below the one holding bbflow.toml).")
@click.option("--input", "inputs", multiple=True, metavar="NAME=JSON",
              help="A reactor input as JSON (default: the zero value of its type).")
@click.option("--robot", metavar="INSTANCE", help="The robot instance to use when several implement the interface.")
@click.option("--faults", type=click.Path(dir_okay=False, path_type=str),
              help="A faults file applied in every case, e.g. an undo command that always fails.")
def drill(reactor: str, project: str, inputs: tuple[str, ...], robot: str | None, faults: str | None) -> None:
    """Prove REACTOR's rollback on the simulated robot, on a virtual clock.

    Fails each effectful step in turn (robot commands, actions, composed
    reactors as a unit, each map iteration), then each undo once (its retries
    must absorb it), and checks that every completed step with an undo was
    undone exactly once, in reverse order of completion, with the robot still
    armed. Exit status: 0 every case passed, 1 a case failed, 2 usage or
    compile error.
    """
    from bbflow.build import compile_project
    from bbflow.compiler import InputError
    from bbflow.project import ProjectError, find_project, importable, load_project
    from bbflow.runtime.drill import drill as run_drill
    from bbflow.runtime.drill import plan_drill, render_report
    from bbflow.runtime.faults import FaultsError, load_faults
    from bbflow.runtime.run_plan import UsageError

    root = find_project(project)
    if root is None:
        raise UsageFailure(f"{project}: no bbflow.toml here or in any folder above")
    try:
        loaded = load_project(root)
        diagnostics, program = compile_project(root)
        base = load_faults(faults) if faults is not None else None
    except (ProjectError, InputError, FaultsError) as e:
        raise UsageFailure(str(e)) from e
    if program is None:
        _print_diagnostics(diagnostics)
        sys.exit(2)
    with importable(loaded.root):
        try:
            report = run_drill(plan_drill(program, loaded, reactor, inputs, robot), base)
        except (UsageError, FaultsError) as e:
            raise UsageFailure(str(e)) from e
    render_report(report, sys.stdout)
    sys.exit(0 if report.passed else 1)


@main.command()
@click.argument("name", type=click.Choice(("events", "diagnostics")))
def schema(name: str) -> None:
    """Print the JSON Schema (draft 2020-12) of the event log or of `check --format json`.

    events: one line of `bbflow run --events FILE`; diagnostics: the output of
    `bbflow check --format json`. Both outputs carry the "version" the schema describes.
    """
    from bbflow.schemas import schema_text

    click.echo(schema_text(name), nl=False)


@main.command()
@click.option("--stdio", is_flag=True, help="Talk over standard input and output (the default).")
@click.option("--tcp", "port", type=click.IntRange(1, 65535), default=None,
              help="Listen on 127.0.0.1:PORT instead, for one client: the server ends when it disconnects.")
def lsp(stdio: bool, port: int | None) -> None:
    """Serve the Language Server Protocol for editors, on standard input and output (or --tcp PORT).

    Needs the optional extra: pip install 'bbflow[lsp]'. See docs/editors.md.
    """
    if stdio and port is not None:
        raise click.UsageError("--stdio and --tcp are two transports: give one")
    try:
        from bbflow.lsp.server import serve
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        raise UsageFailure("bbflow lsp needs the optional `lsp` extra (pygls): pip install 'bbflow[lsp]'") from None
    try:
        serve(port)
    except OSError as e:  # the port taken, or not ours to listen on: before any client came
        if port is None:
            raise
        raise UsageFailure(f"--tcp {port}: cannot listen on 127.0.0.1:{port}: "
                           f"{os.strerror(e.errno) if e.errno else e}") from None
