"""Signal route patterns: validation, matching, dispatch specificity and coverage.

A pattern is a dotted sequence of segments: a literal (``pick``), ``*`` (exactly
one segment) or ``**`` (zero or more segments). ``cell.**`` matches ``cell``,
``cell.start`` and ``cell.a.b``; a literal-only pattern matches only itself.
"""

from __future__ import annotations

import functools
import itertools
import re

import attrs

from bbflow.runtime.router import GLOBSTAR, STAR, specificity

_LITERAL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: stands for "some segment no pattern names"; not a valid literal, so a literal never matches it
_FRESH = "#"


@attrs.frozen(slots=True)
class Pattern:
    """A valid route pattern, as a tuple of segments."""

    segments: tuple[str, ...]

    @property
    def text(self) -> str:
        return ".".join(self.segments)

    def matches(self, signal_type: str) -> bool:
        """Does this pattern match the whole dotted ``signal_type``?"""
        return _match(self.segments, tuple(signal_type.split(".")))

    def covers(self, other: "Pattern") -> bool:
        """Does every signal type that ``other`` matches also match this pattern?

        Decided by trying representative types of ``other``: each ``*`` becomes
        a fresh segment (the hardest case: no literal of ours matches it, and
        whatever matches a fresh segment matches any segment), and each ``**``
        becomes 0..k fresh segments with k = len(self) + 1. Longer runs change
        nothing: a run longer than our number of segments has a segment taken
        by one of our ``**``, which takes one more just as well. A signal type
        has at least one segment, so the empty sample is left out.
        """
        k = len(self.segments) + 1
        choices = [
            [(_FRESH,) * n for n in range(k + 1)] if seg == GLOBSTAR
            else [(_FRESH,)] if seg == STAR
            else [(seg,)]
            for seg in other.segments
        ]
        for combo in itertools.product(*choices):
            sample = tuple(itertools.chain.from_iterable(combo))
            if sample and not _match(self.segments, sample):
                return False
        return True

    def dispatch_key(self) -> tuple[int, int]:
        """Specificity for dispatch (smaller first): the runtime router's, more literals, then ``*`` before ``**``."""
        return specificity(self.segments)


def compile_pattern(text: str) -> Pattern | str:
    """The pattern for ``text``, or a message saying why it is invalid (BBF501)."""
    segments = tuple(text.split("."))
    for i, seg in enumerate(segments):
        if seg == "":
            return "it has an empty segment (two dots in a row, or a dot at an end)"
        if seg in (STAR, GLOBSTAR):
            if seg == GLOBSTAR and i > 0 and segments[i - 1] == GLOBSTAR:
                return "it has two adjacent `**` segments (one `**` already matches any number of segments)"
            continue
        if STAR in seg:
            return (f"segment `{seg}` mixes `*` with other characters "
                    "(`*` must be a whole segment: `*` for one segment, `**` for any number)")
        if not _LITERAL.match(seg):
            return f"segment `{seg}` is not an identifier"
    return Pattern(segments)


def _match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    @functools.cache
    def go(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(parts)
        seg = pattern[i]
        if seg == GLOBSTAR:
            return any(go(i + 1, k) for k in range(j, len(parts) + 1))
        if j == len(parts):
            return False
        return (seg == STAR or seg == parts[j]) and go(i + 1, j + 1)

    return go(0, 0)
