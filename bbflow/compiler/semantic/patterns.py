"""Signal route patterns: validation, matching, dispatch specificity and coverage.

A pattern is a dotted sequence of segments: a literal (``pick``), ``*`` (exactly
one segment) or ``**`` (zero or more segments). ``cell.**`` matches ``cell``,
``cell.start`` and ``cell.a.b``; a literal-only pattern matches only itself.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

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
        if STAR not in self.text:
            return signal_type == self.text
        return _match(self.segments, tuple(signal_type.split(".")))

    def covers(self, other: Pattern) -> bool:
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
    """Whole-type matching without backtracking: the set of pattern positions reached so far, advanced
    one segment of the type at a time (``len(pattern) * len(parts)`` steps at most)."""
    end = len(pattern)
    reached = _skip_globstars(pattern, [True] + [False] * end)
    for part in parts:
        after = [False] * (end + 1)
        for i in range(end):
            if reached[i]:
                seg = pattern[i]
                if seg == GLOBSTAR:
                    after[i] = True  # `**` takes this segment, and may take more
                elif seg in (STAR, part):
                    after[i + 1] = True
        reached = _skip_globstars(pattern, after)
        if not any(reached):
            return False
    return reached[end]


def _skip_globstars(pattern: tuple[str, ...], reached: list[bool]) -> list[bool]:
    """``reached`` with the position after each reached ``**`` added: a ``**`` may take no segment."""
    for i, seg in enumerate(pattern):
        if reached[i] and seg == GLOBSTAR:
            reached[i + 1] = True
    return reached


class _TypeNode:
    __slots__ = ("children", "type")

    def __init__(self) -> None:
        self.children: dict[str, _TypeNode] = {}
        self.type: str | None = None  # the declared type ending here


class SignalIndex:
    """Signal types in a trie of their segments, so that finding the types a pattern matches walks only
    the branches its literal segments allow instead of trying the pattern on every type.

    ``bbflow.runtime.router.PatternTrie`` answers the other question (which patterns match one type).
    """

    def __init__(self, types: Iterable[str]) -> None:
        self._root = _TypeNode()
        for signal_type in types:
            node = self._root
            for seg in signal_type.split("."):
                node = node.children.setdefault(seg, _TypeNode())
            node.type = signal_type

    def matching(self, pattern: Pattern, limit: int) -> list[str]:
        """Up to ``limit`` distinct types that ``pattern`` matches (which ones, when there are more, is unspecified)."""
        found: list[str] = []
        _find(self._root, pattern.segments, 0, set(), found, limit)
        return found


def _find(node: _TypeNode, pattern: tuple[str, ...], i: int, seen: set[tuple[int, int]], found: list[str],
          limit: int) -> None:
    """Add to ``found`` (up to ``limit``) the types below ``node`` that ``pattern[i:]`` matches.

    ``seen`` holds the (node, position) pairs already walked: a ``**`` reaches the same pair by
    several splits, and walking it again finds nothing new.
    """
    key = (id(node), i)
    if key in seen or len(found) >= limit:
        return
    seen.add(key)
    if i == len(pattern):
        if node.type is not None:
            found.append(node.type)
        return
    seg = pattern[i]
    if seg == GLOBSTAR:
        _find(node, pattern, i + 1, seen, found, limit)  # it takes no (more) segments
        for child in node.children.values():
            _find(child, pattern, i, seen, found, limit)
    elif seg == STAR:
        for child in node.children.values():
            _find(child, pattern, i + 1, seen, found, limit)
    else:
        named = node.children.get(seg)
        if named is not None:
            _find(named, pattern, i + 1, seen, found, limit)
