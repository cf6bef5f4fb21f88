"""The language server as an editor sees it, on a generated project: an LSP client script.

    python benchmarks/bench_lsp.py [--lines 10000] [--edits 15]

Starts ``python -m bbflow lsp`` on standard input and output, opens one module
of a project made by ``gen_project`` and measures, from the client's side:

- diagnostics after a one-line edit: the time from ``didChange`` to the
  ``publishDiagnostics`` of the edited file, for a module at the end of the
  chain of imports (nothing imports it) and for one in the middle (half the
  project imports it, so half the project's checks depend on it). Each edit
  adds or fixes one unknown name on the last line, so every edit changes the
  file's diagnostics;
- hover during a re-check: hovers sent one after the other right after an edit,
  each answered while that edit's check is running (only those answered before
  the check's diagnostics count), against hovers on an idle server in the
  same rounds;
- a request cancelled while it waits for a check (the outline needs the
  current text): answered with the LSP's RequestCancelled error (-32800);
- completion while typing a line at the end of a reactor of ``--steps`` steps
  (a file of its own in the project): one ``didChange`` and one completion per
  keystroke, each completion's latency, against the same keystrokes at the end
  of a 10-step reactor in the same session (and the first completion in each,
  which parses the reactor from its start).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Figure, Stats  # noqa: E402
from gen_project import generate  # noqa: E402

WAIT = 300.0  # seconds: a guard against a hung server only
REQUEST_CANCELLED = -32800


class Session:
    """A pygls client on a ``bbflow lsp`` subprocess, remembering when each file's diagnostics came."""

    def __init__(self) -> None:
        from lsprotocol import types as lsp
        from pygls.lsp.client import LanguageClient

        self.lsp = lsp
        self.client = LanguageClient("bbflow-bench", "1")
        self.published: dict[str, asyncio.Event] = {}
        self.diagnostics: dict[str, list[Any]] = {}

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: Any) -> None:
            self.diagnostics[params.uri] = list(params.diagnostics)
            self.published.setdefault(params.uri, asyncio.Event()).set()

    async def start(self, root: Path) -> None:
        await self.client.start_io(sys.executable, "-m", "bbflow", "lsp")
        await self.client.initialize_async(self.lsp.InitializeParams(
            capabilities=self.lsp.ClientCapabilities(), root_uri=root.as_uri()))
        self.client.initialized(self.lsp.InitializedParams())

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    def expect(self, uri: str) -> asyncio.Event:
        """An event set by the next diagnostics of ``uri``."""
        event = self.published[uri] = asyncio.Event()
        return event

    async def open(self, path: Path) -> tuple[str, str, float]:
        """Open ``path``; its URI, text and the seconds until its first diagnostics."""
        uri, text = path.as_uri(), path.read_text(encoding="utf-8")
        came = self.expect(uri)
        started = time.perf_counter()
        self.client.text_document_did_open(self.lsp.DidOpenTextDocumentParams(
            self.lsp.TextDocumentItem(uri, "bbflow", 1, text)))
        await asyncio.wait_for(came.wait(), WAIT)
        seconds = time.perf_counter() - started
        await self.settle(uri)
        return uri, text, seconds

    async def settle(self, uri: str) -> None:
        """Wait until every check asked for is done (the outline waits for them), and their diagnostics came."""
        await asyncio.wait_for(self.client.text_document_document_symbol_async(
            self.lsp.DocumentSymbolParams(self.lsp.TextDocumentIdentifier(uri))), WAIT)

    def change(self, uri: str, text: str, version: int) -> None:
        self.client.text_document_did_change(self.lsp.DidChangeTextDocumentParams(
            self.lsp.VersionedTextDocumentIdentifier(version, uri),
            [self.lsp.TextDocumentContentChangeWholeDocument(text)]))

    async def hover(self, uri: str, position: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        answer = await self.client.text_document_hover_async(self.lsp.HoverParams(
            self.lsp.TextDocumentIdentifier(uri), position))
        return time.perf_counter() - started, answer


def edited(text: str, i: int) -> str:
    """``text`` with a last line that declares a type: of an unknown name on odd edits, of a known one on even."""
    return text + f"type Extra{i} = {'Poze' if i % 2 else 'Pose'}\n"


def position_of(text: str, word: str) -> Any:
    from lsprotocol import types as lsp

    at = text.index(word)
    return lsp.Position(text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1))


async def edits(session: Session, path: Path, rounds: int, hovers: bool) -> dict[str, list[float]]:
    """One-line edits of ``path``: seconds to its diagnostics; with ``hovers``, hover latencies during
    each re-check and on the idle server."""
    uri, text, _ = await session.open(path)
    where = position_of(text, "Pose}")
    out: dict[str, list[float]] = {"diagnostics": [], "busy": [], "idle": []}
    for i in range(1, rounds + 1):
        came = session.expect(uri)
        started = time.perf_counter()
        session.change(uri, edited(text, i), i + 1)
        while hovers and not came.is_set():  # hovers while the check runs
            seconds, answer = await session.hover(uri, where)
            assert answer is not None, "no hover on an unchanged line during a check"
            if not came.is_set():
                out["busy"].append(seconds)
        await asyncio.wait_for(came.wait(), WAIT)
        out["diagnostics"].append(time.perf_counter() - started)
        codes = [d.code for d in session.diagnostics[uri]]
        assert codes == (["BBF101"] if i % 2 else []), codes
        if hovers:
            for _ in range(3):
                out["idle"].append((await session.hover(uri, where))[0])
    session.change(uri, text, rounds + 2)  # as it was
    await session.settle(uri)
    return out


async def cancelled(session: Session, path: Path) -> tuple[int | None, float]:
    """The error code of an outline request cancelled while it waits for a check, and seconds to it."""
    lsp = session.lsp
    uri, text, _ = await session.open(path)
    session.change(uri, edited(text, 1), 2)
    started = time.perf_counter()
    waiting = asyncio.wrap_future(session.client.protocol.send_request(
        lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL, lsp.DocumentSymbolParams(lsp.TextDocumentIdentifier(uri)),
        msg_id="bench-cancel"))
    session.client.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id="bench-cancel"))
    try:
        await asyncio.wait_for(waiting, WAIT)
        return None, time.perf_counter() - started
    except Exception as e:  # the JSON-RPC error of the answer
        return getattr(e, "code", None), time.perf_counter() - started


TYPED = "    let y = s0.x + s1.y"  # typed at the end of the reactor, one keystroke after another


def reactor(steps: int) -> str:
    """A module of one reactor of ``steps`` steps, each after the one before."""
    chain = "".join(f"    step s{i} = move_to(target: p) after {f's{i - 1}' if i else 'ready'}\n" for i in range(steps))
    return ("type Pose = {x: float, y: float}\n\nrobot Arm {\n    states idle, busy\n"
            "    command move_to(target: Pose) -> Pose category motion\n}\n\n"
            "reactor Long(p: Pose) -> Pose on Arm {\n    step ready = wait_state(idle)\n" + chain +
            f"    return s{steps - 1}\n}}\n")


async def typing(session: Session, path: Path, steps: int) -> tuple[float, list[float]]:
    """Type ``TYPED`` before the last line of a ``steps``-step reactor's body, asking for completion at each
    keystroke: seconds to the first completion (before any keystroke), and to each keystroke's."""
    lsp = session.lsp
    path.write_text(reactor(steps), encoding="utf-8")
    uri, text, _ = await session.open(path)
    at = text.index("    return")
    line = text.count("\n", 0, at)

    async def complete(now: str, column: int) -> float:
        started = time.perf_counter()
        answer = await session.client.text_document_completion_async(lsp.CompletionParams(
            lsp.TextDocumentIdentifier(uri), lsp.Position(line, column)))
        assert answer is not None, f"no completion at {now[at:at + column]!r}"
        return time.perf_counter() - started

    first = await complete(text, 4)
    out = []
    for n in range(5, len(TYPED) + 1):
        now = text[:at] + TYPED[:n] + "\n" + text[at:]
        session.change(uri, now, n)
        out.append(await complete(now, n))
    session.change(uri, text, len(TYPED) + 1)
    await session.settle(uri)
    return first, out


@contextmanager
def project(lines: int) -> Iterator[tuple[Path, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve() / "project"
        made = generate(root, lines)
        yield root, made["lines"]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


async def measure(lines: int, rounds: int, steps: int) -> list[Figure]:
    with project(lines) as (root, total):
        cells = sorted((root / "flows" / "cells").glob("*.flow"))
        leaf, middle = cells[-1], cells[len(cells) // 2]
        session = Session()
        await session.start(root)
        try:
            first = (await session.open(cells[0]))[2]
            at_end = await edits(session, leaf, rounds, hovers=True)
            in_middle = await edits(session, middle, rounds, hovers=False)
            code, cancel_seconds = await cancelled(session, cells[1])
            small_first, small = await typing(session, root / "flows" / "short_reactor.flow", 10)
            big_first, big = await typing(session, root / "flows" / "long_reactor.flow", steps)
        finally:
            await session.stop()
    size = f"{total:,}-line project"
    out = [
        Figure("lsp", f"{size}: first diagnostics after opening a file (cold: whole project checked)", "s",
               Stats.of([first])),
        Figure("lsp", f"{size}: diagnostics after a one-line edit, module nothing imports", "ms",
               Stats.of(at_end["diagnostics"]).scaled(1e3)),
        Figure("lsp", f"{size}: diagnostics after a one-line edit, module half the project imports", "ms",
               Stats.of(in_middle["diagnostics"]).scaled(1e3)),
    ]
    busy, idle = at_end["busy"], at_end["idle"]
    if busy:
        ratio = Stats.of([b / statistics.median(idle) for b in busy])
        out.append(Figure("lsp", f"{size}: hover during a re-check ({len(busy)} hovers)", "ms",
                          Stats.of(busy).scaled(1e3), (("hover on an idle server", ratio),),
                          note=f"p95 {p95(busy) * 1e3:.1f} ms"))
    else:
        out.append(Figure("lsp", f"{size}: hover during a re-check", "ms",
                          note="every check ended before the first hover was answered"))
    out.append(Figure("lsp", f"{size}: hover on an idle server", "ms", Stats.of(idle).scaled(1e3),
                      note=f"p95 {p95(idle) * 1e3:.1f} ms"))
    answer = "RequestCancelled (-32800)" if code == REQUEST_CANCELLED else f"NOT cancelled: {code}"
    out.append(Figure("lsp", f"{size}: a request cancelled while it waits for a check", "ms",
                      Stats.of([cancel_seconds]).scaled(1e3), note=f"answered with {answer}"))
    each = Stats.of([b / s for b, s in zip(big, small, strict=True)])
    out.append(Figure("lsp", f"completion while typing at the end of a {steps:,}-step reactor "
                      f"({len(big)} keystrokes)", "ms", Stats.of(big).scaled(1e3),
                      (("the same keystrokes in a 10-step reactor", each),),
                      note=f"10 steps: {statistics.median(small) * 1e3:.1f} ms"))
    out.append(Figure("lsp", f"first completion in a {steps:,}-step reactor", "ms", Stats.of([big_first]).scaled(1e3),
                      note=f"10 steps: {small_first * 1e3:.1f} ms"))
    return out


def figures(lines: int, rounds: int, steps: int = 3_000) -> list[Figure]:
    try:
        import pygls  # noqa: F401
    except ImportError:
        return [Figure("lsp", "language server", "ms", note="pygls not installed: pip install 'bbflow[lsp]'")]
    return asyncio.run(measure(lines, rounds, steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--edits", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3_000)
    args = parser.parse_args()
    from common import table

    print(table(figures(args.lines, args.edits, args.steps)))


if __name__ == "__main__":
    main()
