"""Lark alone: parse every ``.flow`` file under a folder with bbflow's grammar, in a fresh process.

    python benchmarks/lark_alone.py GRAMMAR CACHE_FILE FOLDER

The baseline of the compiler's cold check (``bench_compiler``): it imports lark
and nothing of bbflow, makes the parser with bbflow's options (LALR, contextual
lexer, positions, placeholders, a post-lexer that lets NAME through in every
state) with its tables loaded from lark's own cache file (as bbflow loads its
own), reads the files and builds lark's parse tree of each one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from lark import Lark, Token


class NamesEverywhere:
    """bbflow's post-lexer, written again here so that this process imports nothing of bbflow."""

    always_accept = ("NAME",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return stream


def main(grammar: str, cache: str, folder: str) -> None:
    parser = Lark(Path(grammar).read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                  propagate_positions=True, maybe_placeholders=True, postlex=NamesEverywhere(), start="start",
                  cache=cache)
    for path in sorted(Path(folder).rglob("*.flow")):
        parser.parse(path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
