"""Router lookups per second: the trie (cold and memoised) against a linear scan of the same patterns.

    python benchmarks/bench_router.py [--seconds 0.5]

For 10, 1,000 and 10,000 routes with random patterns (literals, ``*``, ``**``)
and a mix of types that match and do not, it measures:

- trie, cold: ``Router(cache_size=0)``, every lookup walks the trie;
- trie, memoised: the default router (the agent's real path);
- linear scan: every pattern precompiled to a regular expression, each lookup
  tests all of them and sorts the matches into dispatch order.

The three must return the same routes; the script checks that first.
"""

from __future__ import annotations

import argparse
import random
import re
import time

from bbflow.runtime.model import Route
from bbflow.runtime.router import Router, dispatch_key

WORDS = [f"w{i}" for i in range(40)]


def random_pattern(rng: random.Random) -> str:
    segments: list[str] = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.08 and (not segments or segments[-1] != "**"):
            segments.append("**")
        elif roll < 0.2:
            segments.append("*")
        else:
            segments.append(rng.choice(WORDS))
    return ".".join(segments)


def random_type(rng: random.Random) -> str:
    return ".".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))


def to_regex(pattern: str) -> re.Pattern[str]:
    """Matched against ``"." + type``: every segment is preceded by a dot."""
    parts = []
    for seg in pattern.split("."):
        if seg == "**":
            parts.append(r"(?:\.[^.]+)*")
        elif seg == "*":
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(seg))
    return re.compile("".join(parts))


class LinearScan:
    def __init__(self, routes: list[Route]) -> None:
        self.compiled = [(to_regex(r.pattern), dispatch_key(r), r) for r in routes]

    def lookup(self, signal_type: str) -> tuple[Route, ...]:
        dotted = "." + signal_type
        hits = [(key, r) for rx, key, r in self.compiled if rx.fullmatch(dotted)]
        hits.sort(key=lambda h: h[0])
        return tuple(r for _, r in hits)


def rate(lookup, types: list[str], seconds: float) -> float:
    """Lookups per second, cycling over ``types`` for about ``seconds``."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for t in types:
            lookup(t)
        done += len(types)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def workload(n: int, rng: random.Random) -> tuple[Router, Router, LinearScan, list[str]]:
    """``n`` random routes as a cold trie, a memoised trie and a linear scan (checked to agree), and 500 types."""
    routes = [Route(pattern=random_pattern(rng), body=(), priority=rng.choice((0, 0, 0, 1, -1)), index=i) for i in range(n)]
    # Half the types are taken from literal patterns (so they match), half are random.
    literal = [r.pattern for r in routes if "*" not in r.pattern]
    types = [rng.choice(literal) if literal and i % 2 else random_type(rng) for i in range(500)]
    cold, memo, linear = Router(routes, cache_size=0), Router(routes), LinearScan(routes)
    for t in types:
        assert cold.lookup(t) == linear.lookup(t) == memo.lookup(t), t
    return cold, memo, linear, types


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"{'routes':>7} {'trie cold/s':>14} {'trie memo/s':>14} {'linear/s':>12} {'cold vs linear':>15}")
    for n in (10, 1_000, 10_000):
        cold, memo, linear, types = workload(n, rng)
        linear_types = types if n <= 1_000 else types[:100]
        r_cold = rate(cold.lookup, types, args.seconds)
        r_memo = rate(memo.lookup, types, args.seconds)
        r_linear = rate(linear.lookup, linear_types, args.seconds)
        print(f"{n:>7,} {r_cold:>14,.0f} {r_memo:>14,.0f} {r_linear:>12,.0f} {r_cold / r_linear:>14,.1f}x")


if __name__ == "__main__":
    main()
