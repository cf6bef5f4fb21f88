"""The ``bbflow`` command line."""

import click

from bbflow import __version__


@click.group()
@click.version_option(__version__, prog_name="bbflow")
def main() -> None:
    """bbflow: checked robot behaviour — reactors and agents in .flow files."""
