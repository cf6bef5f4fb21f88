"""Checks in the background: the server's loop never waits for the compiler.

One thread compiles, one program at a time (``compile_program``, through the
pipeline's cache and with the syntax trees of unchanged files kept per
scope). The loop asks for a check (``want``) and goes on answering from the
last program of each scope; asks that come while a check runs are gathered
into the next one, which reads the editor's buffers as they are when it
starts, so a burst of edits costs one check after the one running. Requests
that must see the current text (rename, references, code actions) wait for
``settled``, and are cancelled like any other (the check goes on for the
next request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bbflow.compiler import ParsedTrees
from bbflow.lsp.program import Program, compile_program, scope_of


class Worker:
    """The last program of every scope (a project root or a loose file), and the checks to run."""

    def __init__(self, buffers: Callable[[], Mapping[Path, str]], done: Callable[[Program], None]) -> None:
        self.programs: dict[Path, Program] = {}
        self._buffers = buffers  # the editor's open .flow texts, read on the loop when a check starts
        self._done = done  # called on the loop with each new program
        self._trees: dict[Path, ParsedTrees] = {}
        self._wanted: dict[Path, Path] = {}  # scope -> a file of it, to check
        self._pool: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.Event | None = None

    def want(self, path: Path) -> None:
        """Check the program of ``path`` again, after the check running now (if any)."""
        self._wanted[scope_of(path)] = path
        if self._task is None or self._task.done():
            self._idle_event().clear()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def forget(self, scope: Path) -> Program | None:
        """Drop the program of ``scope`` (no open file belongs to it any more)."""
        self._trees.pop(scope, None)
        self._wanted.pop(scope, None)
        return self.programs.pop(scope, None)

    def last(self, path: Path) -> Program | None:
        """The last program ``path`` was part of (maybe older than the editor's text), without waiting."""
        return self.programs.get(scope_of(path))

    async def settled(self, path: Path, text: str | None, *, every_buffer: bool = False) -> Program:
        """The program of ``path`` once it has been checked with the editor's text ``text`` (and every
        check asked for before this is done). ``every_buffer``: and with the buffer of every open file of
        it as it is now (a rename or references right after an edit of another file, whose check waits for
        typing to pause, missed the uses that edit made)."""
        scope = scope_of(path)
        program = self.programs.get(scope)
        stale = program is None or (text is not None and not program.is_current(path, text)) or (
            every_buffer and any(p in program.texts and not program.is_current(p, t)
                                 for p, t in self._buffers().items()))
        if stale and scope not in self._wanted:
            self.want(path)
        while (program := self.programs.get(scope)) is None or not self._idle_event().is_set():
            if self._idle_event().is_set():  # forgotten meanwhile
                self.want(path)
            await self._idle_event().wait()
        return program

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bbflow-check")
        try:
            while self._wanted:
                scope = next(iter(self._wanted))
                path = self._wanted.pop(scope)
                buffers = dict(self._buffers())
                trees = self._trees.setdefault(scope, ParsedTrees())
                program = await loop.run_in_executor(self._pool, compile_program, path, buffers,
                                                     self.programs.get(scope), trees)
                self.programs[scope] = program
                self._done(program)
        finally:
            self._idle_event().set()

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            self._idle.set()
        return self._idle

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
