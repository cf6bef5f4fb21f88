""""Did you mean" suggestions by edit distance.

Distance is the optimal string alignment variant of Damerau-Levenshtein, so a
swap of two neighbouring letters (``stpe`` for ``step``, ``recator`` for
``reactor``) costs one edit, like a single wrong letter.
"""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and adjacent transpositions from ``a`` to ``b``."""
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def _max_distance(name: str) -> int:
    """How far a candidate may be and still be a plausible typo of ``name``."""
    return max(1, len(name) // 3)


def closest(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The candidates ``name`` is most plausibly a typo of, nearest first (at most ``limit``).

    A candidate equal to ``name`` is not a suggestion; a difference of case only is
    the nearest possible one.
    """
    scored: list[tuple[float, str]] = []
    bound = _max_distance(name)
    for cand in set(candidates):
        if cand == name:
            continue
        if cand.lower() == name.lower():
            scored.append((0.5, cand))
            continue
        if len(name) > 2 and cand.lower().startswith(name.lower() + "_"):
            scored.append((bound + 0.5, cand))  # the first word of a longer name: `drive` for `drive_to`
            continue
        d = edit_distance(name.lower(), cand.lower())
        # a one-letter candidate is only plausible for a longer name (`aa` for `a`, not `b` for `a`)
        if d <= bound and d < max(len(cand), len(name)):
            scored.append((float(d), cand))
    scored.sort()
    return [cand for _, cand in scored[:limit]]
