"""Did-you-mean: the same suggestions as an exhaustive search on small sets, a bounded cost on large ones."""

from __future__ import annotations

import random

import pytest

from bbflow.compiler.diagnostics import suggest
from bbflow.compiler.diagnostics.suggest import closest, edit_distance


def reference_distance(a: str, b: str) -> int:
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def test_the_banded_distance_agrees_with_the_full_one() -> None:
    rng = random.Random(13)
    for _ in range(3000):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 8)))
        b = "".join(rng.choice("abc") for _ in range(rng.randint(0, 8)))
        full = reference_distance(a, b)
        assert edit_distance(a, b) == full
        for bound in range(4):
            assert edit_distance(a, b, bound) == min(full, bound + 1), (a, b, bound)


def test_a_large_candidate_set_costs_a_bounded_number_of_distances(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"helper_{i}" for i in range(5000)] + [f"Reactor{i}" for i in range(5000)]
    calls = []
    real = suggest.edit_distance
    monkeypatch.setattr(suggest, "edit_distance", lambda a, b, bound=None: calls.append(b) or real(a, b, bound))
    assert closest("helper_1234x", names)[0] == "helper_1234"  # a typo at the end
    assert closest("xelper_4321", names)[0] == "helper_4321"  # a typo at the start
    assert closest("Reactro77", names)[0] == "Reactor77"
    assert len(calls) <= 3 * 2 * 7 * 2 * suggest.NEIGHBOURS  # not thousands
