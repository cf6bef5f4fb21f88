"""Signals between two processes over the Zenoh bus on loopback, next to the local bus in one process.

    python benchmarks/bench_bus.py [--signals 20000] [--burst 500] [--rate 20000]

Each signal is a 1 KB event (``bench.load {sent, n, blob}``) that an agent
emits; it reaches an agent with one route that records the latency (from
the ``emit`` to the handler's turn). The *local* bus delivers it in the same
process. Over *Zenoh*, it is serialised to a CloudEvents JSON object,
published by the sender's link, received by a second process (started by
this benchmark, on 127.0.0.1 with multicast scouting off), checked at its
door and handled there. Both processes read one monotonic clock, so the
latency is one-way.

Three loads: *paced* (one signal every 0.5 ms: the latency of an idle path),
*steady* (``--rate`` signals per second, default 20,000, sent on schedule in
batches of 10: the latency at that rate, if the path keeps up) and *bursts* (``--burst`` signals at once, then the next: throughput, with
latency including the queue; on the local bus the next burst goes when the
agent has handled the last, since sender and agent share one loop). Bytes on the wire: the TCP payload the sending
process sent per signal (``ss``'s ``bytes_sent``: the event and Zenoh's
framing, without TCP/IP headers; needs iproute2). CPU per signal: the
process time (every thread) each process spent on a round, per signal: what
a busy machine changes least.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from bbflow.project import BusConfig, Project
from bbflow.runtime import model
from bbflow.runtime.agent import AgentServer
from bbflow.runtime.bus import Bus
from bbflow.runtime.fleet import bus_settings, make_link
from bbflow.runtime.signals import Envelope, SignalCatalog
from bbflow.runtime.types import FLOAT, INT, STR, Record

PAYLOAD = Record((("sent", FLOAT), ("n", INT), ("blob", STR)))
CATALOG = SignalCatalog.of(model.Signal("bench.load", PAYLOAD))
BLOB = "x" * 900  # with the envelope, an event of about 1 KB on the wire
PACE = 0.0005
STEADY_BATCH = 10  # a steady load is sent in batches this large, on schedule
ZENOH_CONFIG = '{ mode: "peer", scouting: { multicast: { enabled: false } } }'


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


class Receiver:
    """An agent with one route that records each signal's latency and when the last one came."""

    def __init__(self, bus: Bus) -> None:
        self.latencies: list[float] = []
        self.last = 0.0
        self.expected = 0
        self.done = asyncio.Event()

        def record(scope: model.Scope) -> int:
            now = time.perf_counter()
            self.latencies.append(now - scope["sig"]["data"]["sent"])
            self.last = now
            if len(self.latencies) >= self.expected:
                self.done.set()
            return 0

        agent = model.Agent(name="Sink", qualname="bench.Sink", robot=None,
                            state=(model.StateField("n", INT, lambda s: 0),),
                            routes=(model.Route("bench.load", (model.Set("n", record),), bind="sig", index=0),))
        self.server = AgentServer(agent, bus, mailbox_size=1_000_000)

    def expect(self, count: int) -> None:
        self.latencies, self.expected, self.last = [], count, 0.0
        self.done.clear()


def envelope(n: int) -> Envelope:
    return Envelope(type="bench.load", source="/agent/Bench", data={"sent": time.perf_counter(), "n": n, "blob": BLOB})


class Load(NamedTuple):
    """``count`` signals one by one (paced), at a steady ``rate`` per second, or in bursts of ``burst``."""

    count: int
    burst: int | None = None
    rate: float | None = None


async def send(bus: Bus, load: Load) -> float:
    """Emit the signals of ``load``; the time the first one was sent."""
    first = time.perf_counter()
    for n in range(load.count):
        bus.emit(envelope(n), agent="Bench")
        if load.rate is not None:
            if n % STEADY_BATCH == STEADY_BATCH - 1:  # on schedule, catching up when behind
                await asyncio.sleep(max(0.0, first + (n + 1) / load.rate - time.perf_counter()))
        elif load.burst is None:
            await asyncio.sleep(PACE)
        elif n % load.burst == load.burst - 1:
            await (asyncio.sleep(0) if bus.link is not None else bus.wait_idle())
    return first


def summary(receiver: Receiver, first: float, count: int, cpu: float) -> dict[str, float]:
    return {"rate": count / (receiver.last - first), "p50": percentile(receiver.latencies, 50) * 1e6,
            "p99": percentile(receiver.latencies, 99) * 1e6, "cpu": cpu / count * 1e6}


# --- the local bus -----------------------------------------------------------------------


async def local(load: Load) -> dict[str, float]:
    count = load.count
    bus = Bus(CATALOG)
    receiver = Receiver(bus)
    task = asyncio.create_task(receiver.server.serve())
    receiver.expect(count)
    cpu = time.process_time()
    first = await send(bus, load)
    await receiver.done.wait()
    cpu = time.process_time() - cpu
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return summary(receiver, first, count, cpu)


# --- over Zenoh: this process sends, a child receives --------------------------------------


def _settings(folder: Path, *, listen: list[str] = [], connect: list[str] = []) -> Any:  # noqa: B006
    config = folder / "zenoh.json5"
    config.write_text(ZENOH_CONFIG)
    project = Project("bench", folder, folder, bus=BusConfig(kind="zenoh", prefix="bench", config=config))
    return bus_settings(project, listen=listen, connect=connect)


async def serve(endpoint: str, folder: Path) -> None:
    """The receiving process: rounds are asked for on stdin (``COUNT FIRST``), answered on stdout."""
    bus = Bus(CATALOG)
    receiver = Receiver(bus)
    link = make_link(_settings(folder, listen=[endpoint]), process="sink", robots=[], agents=["Sink"])
    await link.open(bus, ["bench.load"])
    task = asyncio.create_task(receiver.server.serve())
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        count = int(line)
        receiver.expect(count)
        cpu = time.process_time()
        try:
            await asyncio.wait_for(receiver.done.wait(), 60)
        except TimeoutError:
            pass
        print(json.dumps({"received": len(receiver.latencies), "last": receiver.last, "latencies": receiver.latencies,
                          "cpu": time.process_time() - cpu}), flush=True)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await link.close()


def _wire_bytes(port: int) -> int:
    """TCP payload bytes sent so far on the connections to ``port`` (``ss``'s tcp_info), or -1 without ``ss``."""
    try:
        out = subprocess.run(["ss", "-tinH", "state", "established", f"( dport = :{port} )"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return -1
    return sum(int(m) for m in re.findall(r"\bbytes_sent:(\d+)", out))


async def zenoh(rounds: list[Load], folder: Path) -> list[dict[str, float]]:
    """One child process for all ``rounds``; a summary of each."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp/127.0.0.1:{port}"
    child = subprocess.Popen([sys.executable, __file__, "--serve", endpoint, "--folder", str(folder)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    loop = asyncio.get_running_loop()
    assert child.stdin is not None and child.stdout is not None
    try:
        if (await loop.run_in_executor(None, child.stdout.readline)).strip() != "ready":
            raise RuntimeError("the receiving process did not start")
        bus = Bus(CATALOG)
        link = make_link(_settings(folder, connect=[endpoint]), process="bench", robots=[], agents=["Bench"])
        await link.open(bus, [])
        out = []
        try:
            await _warm_up(bus, child, loop)
            for load in rounds:
                count = load.count
                child.stdin.write(f"{count}\n")
                child.stdin.flush()
                await asyncio.sleep(0.05)
                before = _wire_bytes(port)
                cpu = time.process_time()
                first = await send(bus, load)
                reply = json.loads(await loop.run_in_executor(None, child.stdout.readline))
                cpu = time.process_time() - cpu
                wrote = _wire_bytes(port) - before
                if reply["received"] != count:
                    raise RuntimeError(f"{count - reply['received']} of {count} signals did not arrive")
                lat = reply["latencies"]
                out.append({"rate": count / (reply["last"] - first), "p50": percentile(lat, 50) * 1e6,
                            "p99": percentile(lat, 99) * 1e6, "bytes": wrote / count if before >= 0 else float("nan"),
                            "cpu": cpu / count * 1e6, "receiver_cpu": reply["cpu"] / count * 1e6})
        finally:
            await link.close()
        return out
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def _warm_up(bus: Bus, child: subprocess.Popen[str], loop: asyncio.AbstractEventLoop) -> None:
    """Send until the child's subscription has reached this process: one round of one signal that arrives."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("1\n")
    child.stdin.flush()
    reply = loop.run_in_executor(None, child.stdout.readline)
    deadline = time.monotonic() + 30
    while not reply.done():
        if time.monotonic() > deadline:
            raise RuntimeError("the receiving process never got a signal")
        bus.emit(envelope(-1), agent="Bench")
        await asyncio.sleep(0.05)
    await reply


def loads(signals: int, burst: int, rate: float) -> list[tuple[str, Load]]:
    """The three loads, by name: one by one (a tenth as many), steady at ``rate``, and in bursts."""
    return [("paced", Load(signals // 10)), (f"steady {rate:,.0f}/s", Load(signals, rate=rate)),
            (f"bursts of {burst}", Load(signals, burst=burst))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20_000, help="the steady load's signals per second")
    parser.add_argument("--serve", metavar="ENDPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.folder))
        return
    for name, load in loads(args.signals, args.burst, args.rate):
        here = asyncio.run(local(load))
        [there] = asyncio.run(zenoh([load], args.folder))
        for where, r in (("local", here), ("zenoh", there)):
            extra = f"   {r['bytes']:,.0f} B/signal" if "bytes" in r else ""
            cpu = f"CPU {r['cpu']:,.0f} us/signal" + (f" + receiver {r['receiver_cpu']:,.0f}" if "receiver_cpu" in r else "")
            print(f"{name:>14} {where:>5}: {r['rate']:>10,.0f} signals/s   p50 {r['p50']:>8,.1f} us   "
                  f"p99 {r['p99']:>8,.1f} us   {cpu}{extra}")


if __name__ == "__main__":
    main()
