""""Did you mean" suggestions by edit distance.

Distance is the optimal string alignment variant of Damerau-Levenshtein, so a
swap of two neighbouring letters (``stpe`` for ``step``, ``recator`` for
``reactor``) costs one edit, like a single wrong letter.

The cost is bounded, so that a file with thousands of unknown names among
thousands of declared ones is still checked in time near-linear in its size.
A small set of candidates (up to ``EXHAUSTIVE``) is searched whole. A larger
one is indexed once (grouped by length, each group sorted by its names and by
their reversals); a suggestion then looks only at the groups whose length is
within the distance bound, and in each at the ``NEIGHBOURS`` names next to the
unknown one in both orders (names that share its beginning or its end: a typo
is found wherever it is, unless it is both at the start and at the end). Each
distance computation stays in the band the bound allows and stops as soon as
the bound is exceeded.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable

#: Candidate sets up to this size are searched whole.
EXHAUSTIVE = 300
#: In a larger set, the names looked at on each side of the unknown one, per length and order.
NEIGHBOURS = 3


def edit_distance(a: str, b: str, bound: int | None = None) -> int:
    """Insertions, deletions, substitutions and adjacent transpositions from ``a`` to ``b``.

    With ``bound``, any distance above it is reported as ``bound + 1`` (and computed only in the band
    of cells that can stay within it).
    """
    if a == b:
        return 0
    la, lb = len(a), len(b)
    limit = max(la, lb) if bound is None else bound
    if abs(la - lb) > limit:
        return limit + 1
    over = limit + 1
    prev2: list[int] = []
    prev = [j if j <= limit else over for j in range(lb + 1)]
    for i in range(1, la + 1):
        cur = [over] * (lb + 1)
        cur[0] = i if i <= limit else over
        ai, ap = a[i - 1], a[i - 2] if i > 1 else ""
        for j in range(max(1, i - limit), min(lb, i + limit) + 1):
            value = prev[j - 1] if ai == b[j - 1] else prev[j - 1] + 1
            if prev[j] + 1 < value:
                value = prev[j] + 1
            if cur[j - 1] + 1 < value:
                value = cur[j - 1] + 1
            if j > 1 and ap and ai == b[j - 2] and ap == b[j - 1] and prev2[j - 2] + 1 < value:
                value = prev2[j - 2] + 1
            cur[j] = value if value < over else over
        if min(cur) >= over and min(prev) >= over:
            return over  # every alignment already costs more (a transposition looks back one row)
        prev2, prev = prev, cur
    return prev[lb]


def a_or_an(noun: str) -> str:
    """``noun`` with its indefinite article, for a message: ``a robot``, ``an enum``, ``an action``."""
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


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
    lower = name.lower()
    for cand in _candidates(frozenset(candidates), lower, bound):
        if cand == name:
            continue
        folded = cand.lower()
        if folded == lower:
            scored.append((0.5, cand))
            continue
        if len(name) > 2 and folded.startswith(lower + "_"):
            scored.append((bound + 0.5, cand))  # the first word of a longer name: `drive` for `drive_to`
            continue
        d = edit_distance(lower, folded, bound)
        # a one-letter candidate is only plausible for a longer name (`aa` for `a`, not `b` for `a`)
        if d <= bound and d < max(len(cand), len(name)):
            scored.append((float(d), cand))
    scored.sort()
    return [cand for _, cand in scored[:limit]]


def _candidates(candidates: frozenset[str], lower: str, bound: int) -> Iterable[str]:
    if len(candidates) <= EXHAUSTIVE:
        return candidates
    return _index(candidates).near(lower, bound)


class _Index:
    """A large candidate set grouped by length; each group sorted by folded name and by reversed folded name."""

    def __init__(self, candidates: frozenset[str]) -> None:
        groups: dict[int, list[str]] = {}
        for cand in candidates:
            groups.setdefault(len(cand), []).append(cand)
        self.forward = {n: sorted((c.lower(), c) for c in g) for n, g in groups.items()}
        self.backward = {n: sorted((c.lower()[::-1], c) for c in g) for n, g in groups.items()}

    def near(self, lower: str, bound: int) -> list[str]:
        """The names next to ``lower`` in each group of a length within ``bound``, in both orders."""
        out: dict[str, None] = {}
        for delta in range(-bound, bound + 1):
            length = len(lower) + delta
            for table, key in ((self.forward, lower), (self.backward, lower[::-1])):
                group = table.get(length)
                if group:
                    at = bisect.bisect_left(group, (key, ""))
                    out.update((c, None) for _, c in group[max(0, at - NEIGHBOURS):at + NEIGHBOURS])
        return list(out)


@functools.lru_cache(maxsize=16)
def _index(candidates: frozenset[str]) -> _Index:
    return _Index(candidates)
