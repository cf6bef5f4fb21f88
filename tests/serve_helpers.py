"""A live cell with its control plane, for the control plane's tests.

``live_cell`` compiles a project, then runs its ``Session`` and
``ControlPlane`` on an event loop of their own in a thread (as ``bbflow run
--serve 127.0.0.1:0`` would), so that a test can talk to it with a plain
HTTP client. Leaving the block interrupts the session (runs roll back, robots
are disarmed) and joins the thread: nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from bbflow.build import compile_project
from bbflow.project import load_project
from bbflow.runtime.app import Outcome, Session
from bbflow.runtime.run_plan import RunOptions, plan_run
from bbflow.serve.config import ServeSettings
from bbflow.serve.plane import ControlPlane
from bbflow.serve.tracing import Tracing


@attrs.define
class LiveCell:
    plane: ControlPlane
    session: Session
    loop: asyncio.AbstractEventLoop
    notes: list[str]
    outcome: Outcome | None = None

    @property
    def url(self) -> str:
        return self.plane.url

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the cell's loop and return its result."""
        async def on_loop() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(on_loop(), self.loop).result(10)


@contextlib.contextmanager
def live_cell(root: Path, *, token: str | None = None, host: str = "127.0.0.1", options: RunOptions | None = None,
              capacity: int | None = None, tracer: Any = None) -> Iterator[LiveCell]:
    project = load_project(root)
    diagnostics, program = compile_project(root)
    assert program is not None, diagnostics
    plan = plan_run(program, project, options or RunOptions())
    settings = ServeSettings(host, 0, token)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        from bbflow.serve.hub import EventHub

        plane = ControlPlane(settings, program, title=project.name,
                             hub=EventHub(capacity) if capacity is not None else None, tracer=tracer)
        notes: list[str] = []
        session = Session(plan, observer=plane, note=notes.append)
        await plane.start(session)
        cell = box["cell"] = LiveCell(plane, session, asyncio.get_running_loop(), notes)
        work = asyncio.create_task(session.run())
        while session.root is None and session.plan.reactor is None and not work.done():
            await asyncio.sleep(0.01)
        ready.set()
        try:
            cell.outcome = await work
        finally:
            await plane.stop()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="live-cell", daemon=True)
    thread.start()
    assert ready.wait(20), "the cell did not start"
    cell = box["cell"]
    try:
        yield cell
    finally:
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):
                cell.loop.call_soon_threadsafe(cell.session.interrupt)
        thread.join(20)
        assert not thread.is_alive(), "the cell did not stop"


def memory_tracing() -> tuple[Tracing, Any]:
    """Tracing whose finished spans are kept in memory: it, and the exporter that holds them (the test is
    skipped without the otel extra)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter
