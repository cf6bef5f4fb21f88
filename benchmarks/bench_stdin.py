"""Standard-input soak: many signals through one agent of a real ``bbflow run``, peak memory and losses.

    python benchmarks/bench_stdin.py [--signals 1000000]

A project with one coordinator agent that counts what it gets is run with
``bbflow run --until-idle`` in a child process; a thread writes the signals
into its standard input as fast as the pipe takes them. Reported: signals/s,
the child's own peak resident memory (see ``children``), and the summary's counts
(every signal in must be handled, none dropped). Running two input sizes
shows whether memory grows with the input (it must not: the door reads with
backpressure).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from children import Measured

FLOW = """\
signal tick: {n: int, at: float}

agent Counter {
    state {
        count: int = 0
    }
    on tick as t { set count = count + 1 }
}
"""
TOML = '[project]\nname = "soak"\n\n[run]\nagents = ["Counter"]\n'
LINE = '{"type": "tick", "data": {"n": %d, "at": 1.5}}\n'
SUMMARY = re.compile(r"(\d+) signals in, (\d+) handled, (\d+) emitted, (\d+) dropped")


def project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "bbflow.toml").write_text(TOML, encoding="utf-8")
    (root / "soak.flow").write_text(FLOW, encoding="utf-8")
    return root


def soak(root: Path, signals: int) -> dict[str, Any]:
    """Run the soak once: seconds, signals/s, peak RSS in MB, and the summary's counts."""
    bbflow = Path(sys.executable).with_name("bbflow")
    command = [str(bbflow)] if bbflow.exists() else [sys.executable, "-m", "bbflow.cli"]
    log = root / "stderr.txt"
    with open(log, "wb") as err:
        child = Measured([*command, "run", str(root), "--until-idle"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=err)
    stdin = child.stdin
    assert stdin is not None

    def feed() -> None:
        batch = 2_000
        try:
            for start in range(0, signals, batch):
                stdin.write("".join(LINE % n for n in range(start, min(signals, start + batch))).encode())
            stdin.close()
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    usage = child.wait()
    writer.join()
    with open(log, "rb") as err:  # the summary is the last line; the log of every signal comes before it
        err.seek(max(0, log.stat().st_size - 4096))
        stderr = err.read().decode(errors="replace")
    match = SUMMARY.search(stderr)
    if usage.returncode != 0 or match is None:
        raise RuntimeError(f"bbflow run failed ({usage.returncode}): {stderr[-2000:]}")
    received, handled, _, dropped = (int(g) for g in match.groups())
    return {"signals": signals, "seconds": usage.seconds, "rate": signals / usage.seconds,
            "peak_mb": usage.peak / 2**20, "in": received, "handled": handled, "dropped": dropped,
            "lost": signals - handled}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp) / "soak")
        for n in (args.signals // 10, args.signals):
            r = soak(root, n)
            print(f"{n:>10,} signals: {r['rate']:,.0f}/s, peak {r['peak_mb']:.1f} MB, "
                  f"{r['handled']:,} handled, {r['dropped']} dropped, {r['lost']} lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
