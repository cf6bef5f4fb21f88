"""Timing helpers shared by the benchmarks: medians with min/max, ratios within one run, figures.

Every figure is the median of several runs with their min and max. A
comparison (bbflow against a baseline or a peer) is never a division of two
medians taken at different times: ``compare`` runs the subjects interleaved,
round after round, and each round gives one ratio; the ratio reported is the
median of those per-round ratios, with their min and max. So a noisy
neighbour on the machine slows both sides of a ratio alike.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs


@attrs.frozen
class Stats:
    """Median, min and max of ``n`` measurements (in the unit of the figure that holds them)."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stats":
        if not values:
            raise ValueError("no measurements")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def scaled(self, factor: float) -> "Stats":
        """The same measurements in another unit (``factor`` > 0)."""
        return Stats(self.median * factor, self.min * factor, self.max * factor, self.n)

    def inverse(self, numerator: float = 1.0) -> "Stats":
        """``numerator / x`` for every measurement: seconds per item -> items per second."""
        return Stats(numerator / self.median, numerator / self.max, numerator / self.min, self.n)

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n}


@attrs.frozen
class Figure:
    """One row of the results: a measured value (or why there is none) and its ratios.

    Each ratio ``(vs, stats)`` is this row's cost (time, or memory) divided by
    the cost of ``vs``, both measured in the same rounds: above 1, this row's
    subject is the slower (or bigger) one.
    """

    section: str
    name: str
    unit: str
    value: Stats | None = None
    ratios: tuple[tuple[str, Stats], ...] = ()
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "unit": self.unit,
            "value": self.value.as_dict() if self.value else None,
            "ratios": [{"vs": vs, **stats.as_dict()} for vs, stats in self.ratios],
            "note": self.note,
        }


def target(section: str, claim: str, ratio: Stats, limit: float) -> Figure:
    """A row stating one of the project's speed targets: ``ratio`` (a cost ratio) against its ``limit``."""
    verdict = "met" if ratio.median <= limit else "NOT met"
    return Figure(section, f"target: {claim}", "x", ratio, note=f"target <= {limit:g}: {verdict}")


def targets(figures: Sequence[Figure]) -> list[Figure]:
    """The rows of ``figures`` that state a target (see ``target``)."""
    return [f for f in figures if f.name.startswith("target: ")]


#: One timed run of a subject: does the work once and returns the seconds it took.
Timer = Callable[[], float]


def sync_timer(fn: Callable[[], Any], before: Callable[[], Any] | None = None) -> Timer:
    """Times ``fn()``; ``before()`` (set-up that must not be charged) runs untimed first.

    Garbage is collected before each timed run, so earlier garbage is not charged to it.
    """

    def timer() -> float:
        if before is not None:
            before()
        gc.collect()
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return timer


def async_timer(factory: Callable[[], Awaitable[Any]]) -> Timer:
    """Times awaiting ``factory()`` on a fresh event loop (the loop's creation is not charged)."""

    async def once() -> float:
        start = time.perf_counter()
        await factory()
        return time.perf_counter() - start

    def timer() -> float:
        gc.collect()
        return asyncio.run(once())

    return timer


def measure(timer: Timer, repeat: int, warmup: int = 1) -> Stats:
    """Seconds per run: ``warmup`` runs thrown away, then ``repeat`` timed runs."""
    for _ in range(warmup):
        timer()
    return Stats.of([timer() for _ in range(repeat)])


def compare(timers: Mapping[str, Timer], repeat: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per run of each subject, interleaved: each round runs every subject once, in turn.

    Returns the times per subject in round order, so that ``ratios(times, a, b)``
    pairs the measurements of the same round.
    """
    for _ in range(warmup):
        for timer in timers.values():
            timer()
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeat):
        for name, timer in timers.items():
            times[name].append(timer())
    return times


def ratios(times: Mapping[str, Sequence[float]], subject: str, baseline: str) -> Stats:
    """Per-round ratios ``subject / baseline`` of ``compare``'s times."""
    return Stats.of([a / b for a, b in zip(times[subject], times[baseline], strict=True)])


MiB = 1024 * 1024


def format_stats(stats: Stats | None) -> str:
    """``median [min - max]`` with a precision that suits the magnitude."""
    if stats is None:
        return "-"
    return f"{_num(stats.median)} [{_num(stats.min)} - {_num(stats.max)}]"


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def table(figures: Sequence[Figure]) -> str:
    """The figures as a Markdown table, one section after another."""
    lines = ["| section | figure | median [min - max] | unit | ratio: this / other, median [min - max] |",
             "|---|---|---|---|---|"]
    for f in figures:
        value = format_stats(f.value) if f.value else (f.note or "-")
        ratio = "; ".join(f"{format_stats(stats)}x vs {vs}" for vs, stats in f.ratios)
        note = f" ({f.note})" if f.note and f.value else ""
        lines.append(f"| {f.section} | {f.name}{note} | {value} | {f.unit} | {ratio} |")
    return "\n".join(lines)
