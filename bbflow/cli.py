"""The ``bbflow`` command line: thin wrappers over the compiler and runtime modules."""

from __future__ import annotations

import os
import sys

import click

from bbflow import __version__

FORMATS = ("text", "json", "sarif")


class UsageFailure(click.ClickException):
    """A usage or I/O error: reported on stderr, exit status 2."""

    exit_code = 2


@click.group()
@click.version_option(__version__, prog_name="bbflow")
def main() -> None:
    """bbflow: checked robot behaviour — reactors and agents in .flow files."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="How to print the diagnostics.")
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too.")
@click.option("--drivers", is_flag=True, help="Also import the configured drivers and check them (BBF601).")
def check(paths: tuple[str, ...], fmt: str, strict: bool, drivers: bool) -> None:
    """Check .flow files, folders and projects (default: the current folder).

    Exit status: 0 no errors, 1 errors (or warnings with --strict), 2 usage or I/O error.
    """
    from bbflow.compiler.report import report
    from bbflow.compiler.pipeline import InputError, compile_paths

    if drivers:
        raise UsageFailure("--drivers is not available yet: driver checking (BBF601) is not implemented")
    try:
        result = compile_paths(paths or (".",))
    except InputError as e:
        raise UsageFailure(str(e)) from e
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    out = report(result, fmt, color=color)
    click.echo(out.body, nl=False)
    if out.summary:
        click.echo(out.summary, err=True)
    sys.exit(out.exit_code(strict))


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Print the long explanation of a diagnostic code (e.g. BBF401)."""
    from bbflow.compiler.codes import CODES, explain as page

    try:
        text = page(code)
    except KeyError:
        raise UsageFailure(f"unknown code {code!r}; known codes: {', '.join(CODES)}") from None
    click.echo(text, nl=not text.endswith("\n"))
