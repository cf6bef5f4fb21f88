"""The control plane under load: signals over HTTP at a steady rate, with SSE clients attached.

    python benchmarks/bench_serve.py [--seconds 60] [--rate 1000] [--clients 10]

Three processes, so that none of them measures itself:

- the cell: a real ``bbflow run --serve`` of the example cell (its plain log
  and event log go to files);
- the poster (``bench_serve.py post``): ``pick.rejected`` signals (routed to a
  handler turn of ``Picker``) in CloudEvents structured mode, each due at its
  own slot of a fixed schedule (``--rate`` per second for ``--seconds``), over
  a few keep-alive connections, written and read with a bare asyncio protocol
  (an HTTP client library costs more CPU per request than the server does,
  and the machine has two cores);
- the readers (``bench_serve.py read``): ``--clients`` connections reading
  ``GET /events``, counting events and ``stream.skipped`` markers.

Then the same schedule goes to a second ``bbflow run`` on its standard input.

Figures:
- the rate achieved, and how late the poster fell behind its schedule;
- accept latency: POST written to 202 read, as the poster sees it (p50, p99);
- turn latency: from ``signal.in`` to ``signal.routed`` of each signal on the
  runtime's own clock (the wait for the agent's turn), over HTTP and on
  standard input with the same schedule: what serving HTTP in the runtime's
  loop costs the runtime;
- the cell's CPU time per signal, over HTTP and on standard input;
- the events each SSE client received; the server's resident memory sampled
  every half second (after warm-up, peak, at the end: flat is the goal, the
  event ring and the clients' buffers are bounded); the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "pick_and_place"
SIGNAL = {"specversion": "1.0", "type": "pick.rejected", "source": "/bench", "data": {"reason": "bench"}}
CONNECTIONS = 8  # keep-alive connections of the poster (a POST takes ~1 ms: 8 carry well over 1,000/s)
SAMPLE = 0.5  # seconds between two samples of the server's memory


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def turn_latencies(events_file: Path) -> list[float]:
    """Seconds from each ``pick.rejected`` ``signal.in`` to its ``signal.routed`` (one agent: FIFO)."""
    ins: list[float] = []
    routed: list[float] = []
    with events_file.open(encoding="utf-8") as stream:
        for line in stream:
            if '"pick.rejected"' not in line:
                continue
            event = json.loads(line)
            if event.get("type") != "pick.rejected":
                continue
            if event["event"] == "signal.in":
                ins.append(event["time"])
            elif event["event"] == "signal.routed":
                routed.append(event["time"])
    return [b - a for a, b in zip(ins, routed)]


# --- the poster and the readers (processes of their own) --------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request at a time, the answer's status when complete."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answer: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.answer is None:
            return
        head = self.buffer[:head_end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        end = head_end + 4 + length
        if len(self.buffer) < end:
            return
        self.buffer = self.buffer[end:]
        answer, self.answer = self.answer, None
        answer.set_result(int(head.split(" ", 2)[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"the server closed the connection: {exc}"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.answer


async def _post(url: str, seconds: float, rate: int, connections: int) -> dict[str, Any]:
    host, port = _address(url)
    body = json.dumps(SIGNAL).encode()
    request = (f"POST /signals HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/cloudevents+json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    pool = [(await loop.create_connection(_Connection, host, port))[1] for _ in range(connections)]
    total = int(seconds * rate)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    behind = 0.0
    next_slot = 0
    start = time.perf_counter() + 0.05

    async def worker(connection: _Connection) -> None:
        nonlocal next_slot, behind
        while next_slot < total:
            due = start + next_slot / rate
            next_slot += 1
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                behind = max(behind, now - due)
            sent = time.perf_counter()
            status = await connection.request(request)
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker(c) for c in pool))
    took = time.perf_counter() - start
    for connection in pool:
        assert connection.transport is not None
        connection.transport.close()
    return {"latencies": latencies, "statuses": {str(k): v for k, v in statuses.items()},
            "rate": total / took, "behind": behind}


class _Reader(asyncio.Protocol):
    """One ``GET /events`` client: counts the events (``id:`` lines) and ``stream.skipped`` markers."""

    def __init__(self) -> None:
        self.events = 0
        self.skipped = 0
        self.tail = b""
        self.started = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        text = self.tail + data
        self.events += text.count(b"\nid: ")
        self.skipped += text.count(b"stream.skipped")
        self.tail = text[-16:]
        if not self.started.done() and b"retry:" in text:
            self.started.set_result(None)


async def _read(url: str, clients: int) -> dict[str, Any]:
    """Read until SIGTERM, then report."""
    host, port = _address(url)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    request = f"GET /events HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
    readers = []
    for _ in range(clients):
        transport, reader = await loop.create_connection(_Reader, host, port)
        transport.write(request)
        readers.append((transport, reader))
    await asyncio.gather(*(r.started for _, r in readers))
    print("ready", flush=True)
    await stop.wait()
    for transport, _ in readers:
        transport.close()
    return {"received": [r.events for _, r in readers], "skipped": [r.skipped for _, r in readers]}


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


# --- the cell, and the two loads -------------------------------------------------------------


def start_cell(folder: Path, name: str, args: Sequence[str],
               stdin: int | IO[Any]) -> tuple[subprocess.Popen[bytes], Path, Path]:
    events, log = folder / f"events-{name}.jsonl", folder / f"log-{name}.txt"
    env = {**os.environ, "BBFLOW_CACHE": str(folder / "cache")}
    process = subprocess.Popen([sys.executable, "-m", "bbflow", "run", str(folder / "cell"), "--events", str(events),
                                *args], stdin=stdin, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env)
    return process, events, log


def wait_for_url(log: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with log.open(errors="replace") as text:
            for line in text:
                if line.startswith("control plane: "):
                    return line.removeprefix("control plane: ").strip().rstrip("/")
        if process.poll() is not None:
            raise RuntimeError(f"the cell exited: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("the cell did not start serving")


def _helper(out: Path, *args: object) -> subprocess.Popen[str]:
    """``bench_serve.py ROLE ...`` in a process of its own; it writes its result (JSON) to ``out``."""
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *map(str, args), str(out)],
                            stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen[str], out: Path, timeout: float) -> dict[str, Any]:
    process.wait(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"{process.args!r} failed ({process.returncode})")
    return json.loads(out.read_text(encoding="utf-8"))


def http_load(folder: Path, url: str, pid: int, seconds: float, rate: int, clients: int) -> dict[str, Any]:
    read_out, post_out = folder / "read.json", folder / "post.json"
    readers = _helper(read_out, "read", url, clients)
    assert readers.stdout is not None
    if readers.stdout.readline().strip() != "ready":
        raise RuntimeError("the SSE readers did not connect")
    memory: list[float] = [rss_mib(pid)]
    cpu = cpu_seconds(pid)
    load = os.getloadavg()[0]
    poster = _helper(post_out, "post", url, seconds, rate, CONNECTIONS)
    while poster.poll() is None:
        time.sleep(SAMPLE)
        memory.append(rss_mib(pid))
    posted = _result(poster, post_out, 60)
    cpu = cpu_seconds(pid) - cpu
    time.sleep(1.0)  # the last events reach the readers
    readers.terminate()
    read = _result(readers, read_out, 60)
    return {**posted, **read, "memory": memory, "cpu": cpu, "load": (load, os.getloadavg()[0])}


def stdin_load(folder: Path, seconds: float, rate: int) -> dict[str, Any]:
    process, events, _ = start_cell(folder, "stdin", ["--until-idle"], subprocess.PIPE)
    assert process.stdin is not None
    line = (json.dumps(SIGNAL) + "\n").encode()
    total = int(seconds * rate)
    deadline = time.monotonic() + 60
    while not (events.exists() and events.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the cell has started (its robot is armed)
    cpu = cpu_seconds(process.pid)
    start = time.perf_counter()
    slot = 0
    while slot < total:  # what is due, written at once (as many POSTs would be in flight)
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        if due > slot:
            process.stdin.write(line * (due - slot))
            process.stdin.flush()
            slot = due
        time.sleep(0.001)
    process.stdin.close()
    cpu = cpu_seconds(process.pid) - cpu  # (the signals are read; what is left is their turns and the exit)
    process.wait(timeout=120)
    return {"turns": turn_latencies(events), "cpu": cpu}


def measure(seconds: float, rate: int, clients: int) -> dict[str, Any]:
    """Both loads; the raw measurements."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        shutil.copytree(EXAMPLE, folder / "cell")
        process, events, log = start_cell(folder, "http", ["--serve", "127.0.0.1:0"], subprocess.DEVNULL)
        try:
            url = wait_for_url(log, process)
            time.sleep(0.5)
            http = http_load(folder, url, process.pid, seconds, rate, clients)
            http["end"] = rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
        http["turns"] = turn_latencies(events)
        return {"http": http, "stdin": stdin_load(folder, seconds, rate)}


def summary(seconds: float, rate: int, clients: int) -> dict[str, Any]:
    raw = measure(seconds, rate, clients)
    http, stdin = raw["http"], raw["stdin"]
    ms = 1000.0
    signals = int(seconds * rate)
    memory = http["memory"]
    return {
        "rate": http["rate"],
        "behind_ms": http["behind"] * ms,
        "accepted": http["statuses"].get("202", 0) / max(1, sum(http["statuses"].values())),
        "accept_p50_ms": percentile(http["latencies"], 50) * ms,
        "accept_p99_ms": percentile(http["latencies"], 99) * ms,
        "accept_max_ms": max(http["latencies"], default=float("nan")) * ms,
        "turn_http_p50_ms": percentile(http["turns"], 50) * ms,
        "turn_http_p99_ms": percentile(http["turns"], 99) * ms,
        "turn_stdin_p50_ms": percentile(stdin["turns"], 50) * ms,
        "turn_stdin_p99_ms": percentile(stdin["turns"], 99) * ms,
        "cpu_http_ms": http["cpu"] / signals * ms,
        "cpu_stdin_ms": stdin["cpu"] / signals * ms,
        "sse_events_min": float(min(http["received"])),
        "sse_skipped_total": float(sum(http["skipped"])),
        "rss_warm_mib": memory[0],
        "rss_peak_mib": max(memory),
        "rss_end_mib": http["end"],
        "rss_series_mib": memory,
        "load_start": http["load"][0],
        "load_end": http["load"][1],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("post", "read"):
        if sys.argv[1] == "post":
            url, seconds, rate, connections, out = sys.argv[2:7]
            result = asyncio.run(_post(url, float(seconds), int(rate), int(connections)))
        else:
            url, clients, out = sys.argv[2:5]
            result = asyncio.run(_read(url, int(clients)))
        Path(out).write_text(json.dumps(result), encoding="utf-8")
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    for key, value in summary(args.seconds, args.rate, args.clients).items():
        if isinstance(value, list):
            print(f"{key:>20}: {' '.join(f'{v:.0f}' for v in value)}")
        else:
            print(f"{key:>20}: {value:.3f}")


if __name__ == "__main__":
    main()
