"""A live cell with its control plane, for the control plane's tests.

``live_cell`` compiles a project, then runs its ``Session`` and
``ControlPlane`` on an event loop of their own in a thread (as ``bbflow run
--serve 127.0.0.1:0`` would), so that a test can talk to it with a plain
HTTP client. Leaving the block interrupts the session (runs roll back, robots
are disarmed) and joins the thread: nothing is left running.

``served`` runs a real ``bbflow run --serve`` process instead, for what only a
process shows: a ``kill -9``, a restart on the same journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from run_helpers import PATIENCE, PICK, PLACE, wait_while_running, write_project

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


# --- real `bbflow run --serve` processes with a journal ------------------------------------------

CE = {"content-type": "application/cloudevents+json"}
JOURNAL = ".bbflow/journal.db"


def recording_arm(duration: str = "20ms") -> str:
    """One simulated arm that records every command it completes in world.jsonl."""
    return f"""
[robot.arm]
interface = "cell.Arm"
driver = "sim"

[robot.arm.sim]
duration = "{duration}"
record = "world.jsonl"

[[robot.arm.sim.events]]
after = "close_gripper"
event = "force"
data = {{newtons = 12.0}}
"""


def journaled_project(folder: Path, *, sync: str = "full", recovery: str = "rollback", duration: str = "20ms") -> Path:
    return write_project(folder, recording_arm(duration),
                         tail=f'\n[journal]\npath = "{JOURNAL}"\nsync = "{sync}"\nrecovery = "{recovery}"\n')


@contextlib.contextmanager
def served(root: Path, *args: str, ready: bool = True) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``bbflow run ROOT --serve 127.0.0.1:0 ARGS``: the process and its control plane's URL, once the cell is up
    (``/healthz`` 200: the plane listens while the journal is tidied and recovery runs, and says 503 "starting"
    meanwhile), or at once with ``ready=False``; interrupted on leaving (killed if it does not end)."""
    log = root / f"stderr-{os.urandom(3).hex()}.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bbflow", "run", str(root), "--serve", "127.0.0.1:0", *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        url: list[str] = []

        def listening() -> bool:
            url.extend(line.removeprefix("control plane: ").rstrip("/") for line in log.read_text().splitlines()
                       if line.startswith("control plane: "))
            return bool(url)

        wait_while_running(proc, listening, "control plane")
        if ready:
            wait_while_running(proc, lambda: httpx.get(url[0] + "/healthz", timeout=10).status_code == 200, "start")
        yield proc, url[0]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(PATIENCE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def request(i: int) -> dict[str, object]:
    return {"type": "pick.requested", "id": f"order-{i}", "source": "/mes", "data": {"pick": PICK, "place": PLACE}}


def cut_off(root: Path, step: str = "grip") -> str:
    """Start a pick over HTTP and ``kill -9`` the cell once ``step`` is done: the id of the run cut off."""
    with served(root) as (proc, url):
        assert httpx.post(url + "/signals", content=json.dumps(request(1)), headers=CE, timeout=30).status_code == 202

        def done() -> bool:
            running = httpx.get(url + "/api/state", timeout=10).json()["runs"]["running"]
            return any(e["event"] == "step.ok" and e["step"] == step for r in running for e in r["events"])

        wait_while_running(proc, done, f"step {step}")
        run: str = httpx.get(url + "/api/state", timeout=10).json()["runs"]["running"][0]["id"]
        proc.send_signal(signal.SIGKILL)
    return run
