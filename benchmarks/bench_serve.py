"""The control plane under load: signals over HTTP at a steady rate, with SSE clients attached.

    python benchmarks/bench_serve.py [--seconds 60] [--rate 1000] [--clients 10]

A real ``bbflow run --serve`` of the example cell runs in a process of its own
(its plain log and event log go to files). This process posts
``pick.rejected`` signals (routed to a handler turn of ``Picker``) at
``--rate`` per second for ``--seconds``, in CloudEvents structured mode over
keep-alive connections, while ``--clients`` clients read ``GET /events``.
Then the same load goes to a second ``bbflow run`` on its standard input, as
JSON lines at the same rate.

Figures:
- accept latency: POST to 202, as the poster sees it (p50, p99);
- turn latency: from ``signal.in`` to ``signal.routed`` of each signal on the
  runtime's own clock (the wait for the agent's turn), over HTTP and over
  standard input, and their ratio: what serving HTTP in the runtime's loop
  costs the runtime;
- the rate achieved, the events each SSE client received, and the server's
  resident memory: after warm-up, at the end, and its peak (flat is the goal:
  the event ring and the clients' buffers are bounded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "pick_and_place"
SIGNAL = {"specversion": "1.0", "type": "pick.rejected", "source": "/bench", "data": {"reason": "bench"}}
CONNECTIONS = 32


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


def start_cell(folder: Path, args: Sequence[str], stdin: int | IO[Any]) -> tuple[subprocess.Popen[bytes], Path, Path]:
    events, log = folder / f"events-{len(args)}.jsonl", folder / f"log-{len(args)}.txt"
    env = {**os.environ, "BBFLOW_CACHE": str(folder / "cache")}
    process = subprocess.Popen([sys.executable, "-m", "bbflow", "run", str(folder / "cell"), "--events", str(events),
                                *args], stdin=stdin, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env)
    return process, events, log


def wait_for_url(log: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("control plane: "):
                return line.removeprefix("control plane: ").rstrip("/")
        if process.poll() is not None:
            raise RuntimeError(f"the cell exited: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("the cell did not start serving")


async def http_load(url: str, pid: int, seconds: float, rate: int, clients: int) -> dict[str, Any]:
    import httpx

    total = int(seconds * rate)
    body = json.dumps(SIGNAL).encode()
    headers = {"content-type": "application/cloudevents+json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    received = [0] * clients
    skipped = [0] * clients
    memory: list[float] = []
    next_slot = 0
    limits = httpx.Limits(max_connections=CONNECTIONS + clients, max_keepalive_connections=CONNECTIONS + clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def reader(i: int) -> None:
            async with client.stream("GET", "/events", timeout=None) as response:
                async for chunk in response.aiter_raw():
                    received[i] += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
                    skipped[i] += chunk.count(b"stream.skipped")

        readers = [asyncio.create_task(reader(i)) for i in range(clients)]
        await asyncio.sleep(0.5)
        start = time.perf_counter()

        async def poster() -> None:
            nonlocal next_slot
            while next_slot < total:
                slot = next_slot
                next_slot += 1
                delay = start + slot / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent = time.perf_counter()
                response = await client.post("/signals", content=body, headers=headers)
                latencies.append(time.perf_counter() - sent)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        async def sampler() -> None:
            while True:
                memory.append(rss_mib(pid))
                await asyncio.sleep(0.5)

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(poster() for _ in range(CONNECTIONS)))
        took = time.perf_counter() - start
        await asyncio.sleep(1.0)  # let the readers catch up
        sampling.cancel()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, sampling, return_exceptions=True)
    return {"latencies": latencies, "statuses": statuses, "rate": total / took, "received": received,
            "skipped": skipped, "memory": memory}


def stdin_load(folder: Path, seconds: float, rate: int) -> list[float]:
    process, events, _ = start_cell(folder, ["--until-idle"], subprocess.PIPE)
    assert process.stdin is not None
    line = (json.dumps(SIGNAL) + "\n").encode()
    total = int(seconds * rate)
    start = time.perf_counter()
    for slot in range(total):
        delay = start + slot / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        process.stdin.write(line)
        process.stdin.flush()
    process.stdin.close()
    process.wait(timeout=120)
    return turn_latencies(events)


def measure(seconds: float, rate: int, clients: int) -> dict[str, Any]:
    """Both loads; the raw measurements."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        shutil.copytree(EXAMPLE, folder / "cell")
        process, events, log = start_cell(folder, ["--serve", "127.0.0.1:0"], subprocess.DEVNULL)
        try:
            url = wait_for_url(log, process)
            time.sleep(0.5)
            warm = rss_mib(process.pid)
            http = asyncio.run(http_load(url, process.pid, seconds, rate, clients))
            http["warm"] = warm
            http["end"] = rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
        http["turns"] = turn_latencies(events)
        return {"http": http, "stdin": stdin_load(folder, seconds, rate)}


def summary(seconds: float, rate: int, clients: int) -> dict[str, float]:
    raw = measure(seconds, rate, clients)
    http, stdin = raw["http"], raw["stdin"]
    ms = 1000.0
    return {
        "rate": http["rate"],
        "accepted": http["statuses"].get(202, 0) / max(1, sum(http["statuses"].values())),
        "accept_p50_ms": percentile(http["latencies"], 50) * ms,
        "accept_p99_ms": percentile(http["latencies"], 99) * ms,
        "turn_http_p50_ms": percentile(http["turns"], 50) * ms,
        "turn_http_p99_ms": percentile(http["turns"], 99) * ms,
        "turn_stdin_p50_ms": percentile(stdin, 50) * ms,
        "turn_stdin_p99_ms": percentile(stdin, 99) * ms,
        "sse_events_min": float(min(http["received"])),
        "sse_skipped_total": float(sum(http["skipped"])),
        "rss_warm_mib": http["warm"],
        "rss_peak_mib": max(http["memory"] or [float("nan")]),
        "rss_end_mib": http["end"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    for key, value in summary(args.seconds, args.rate, args.clients).items():
        print(f"{key:>20}: {value:.3f}")


if __name__ == "__main__":
    main()
