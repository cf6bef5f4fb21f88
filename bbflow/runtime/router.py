"""The signal router: an agent's route patterns compiled once into a trie.

A pattern is dot-separated segments: a literal, ``*`` (exactly one segment) or
``**`` (zero or more segments). A pattern matches a signal type only as a
whole (``user`` never matches ``user.created``; ``cell.**`` matches ``cell``).

``Router.lookup(type)`` returns every route whose pattern matches, in
dispatch order (docs/agents.md):

1. priority, higher first;
2. specificity: more literal segments first; at an equal count, a pattern
   without ``**`` before one with ``**`` (``a.*`` before ``a.**``);
3. declaration order.

The agent then runs the first route whose ``when`` holds. A lookup walks
the trie (cost grows with the type's length, not with the number of routes)
and is memoised per type in a bounded cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # (the compiler uses the patterns below; it never needs the model's classes)
    from bbflow.runtime import model

STAR = "*"
GLOBSTAR = "**"

V = TypeVar("V")


class PatternError(ValueError):
    """An invalid route pattern (the checker reports these as BBF501 first)."""


def split_pattern(pattern: str) -> tuple[str, ...]:
    """The segments of a valid pattern; raises ``PatternError``."""
    segments = tuple(pattern.split("."))
    for i, seg in enumerate(segments):
        if not seg:
            raise PatternError(f"empty segment in pattern {pattern!r}")
        if "*" in seg and seg not in (STAR, GLOBSTAR):
            raise PatternError(f"segment {seg!r} of {pattern!r} mixes '*' with other characters")
        if seg == GLOBSTAR and i > 0 and segments[i - 1] == GLOBSTAR:
            raise PatternError(f"adjacent '**' segments in {pattern!r}")
    return segments


def specificity(segments: tuple[str, ...]) -> tuple[int, int]:
    """How specific a pattern is, as a sort key (smaller first): more literal segments, then ``*`` before ``**``.

    The checker orders routes by this too (``bbflow.compiler.semantic.patterns``), so that
    what BBF502 proves about route order holds at run time.
    """
    literals = sum(1 for s in segments if s not in (STAR, GLOBSTAR))
    return (-literals, 1 if GLOBSTAR in segments else 0)


def dispatch_key(route: model.Route) -> tuple[int, int, int, int]:
    """Sort key of a route in dispatch order (smaller first): priority, specificity, declaration."""
    return (-route.priority, *specificity(split_pattern(route.pattern)), route.index)


class _Node:
    __slots__ = ("literal", "star", "globstar", "values")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.globstar: _Node | None = None
        self.values: list[Any] = []  # what was added under the pattern ending here


class PatternTrie(Generic[V]):
    """Patterns compiled into one trie, each with a value; ``collect`` finds the values of every pattern
    that matches a type, at a cost that grows with the type's length, not with the number of patterns.

    The router keeps route ranks in it; the checker (``bbflow.compiler.analysis.routes``) the patterns of every
    agent, to find in one walk per declared signal which routes some signal reaches.
    """

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, segments: Iterable[str], value: V) -> None:
        """Add ``value`` under the pattern of (valid) ``segments``."""
        node = self._root
        for seg in segments:
            if seg == STAR:
                node.star = node.star or _Node()
                node = node.star
            elif seg == GLOBSTAR:
                node.globstar = node.globstar or _Node()
                node = node.globstar
            else:
                node = node.literal.setdefault(seg, _Node())
        node.values.append(value)

    def collect(self, signal_type: str) -> set[V]:
        """The values of every pattern that matches the whole of ``signal_type``."""
        found: set[V] = set()
        _collect(self._root, signal_type.split("."), 0, found)
        return found


class Router:
    """Routes of one agent, compiled once; ``lookup`` is memoised per type (bounded; 0: no memo)."""

    def __init__(self, routes: Iterable[model.Route], *, cache_size: int = 4096) -> None:
        self.routes: tuple[model.Route, ...] = tuple(sorted(routes, key=dispatch_key))
        self._trie: PatternTrie[int] = PatternTrie()  # ranks: positions in dispatch order
        for rank, route in enumerate(self.routes):
            self._trie.add(split_pattern(route.pattern), rank)
        self._cache: dict[str, tuple[model.Route, ...]] = {}
        self._cache_size = cache_size

    def lookup(self, signal_type: str) -> tuple[model.Route, ...]:
        """Routes whose pattern matches the whole of ``signal_type``, in dispatch order."""
        hit = self._cache.get(signal_type)
        if hit is not None:
            return hit
        found = tuple(self.routes[r] for r in sorted(self._trie.collect(signal_type)))
        if not self._cache_size:
            return found
        if len(self._cache) >= self._cache_size:
            # Evict the oldest entry (dicts keep insertion order): bounded memory even
            # when a flood of distinct types arrives.
            del self._cache[next(iter(self._cache))]
        self._cache[signal_type] = found
        return found

    def matches(self, signal_type: str) -> bool:
        return bool(self.lookup(signal_type))

    def describe(self) -> list[dict[str, Any]]:
        """The routes in dispatch order (for tooling and the live view)."""
        return [{"pattern": r.pattern, "priority": r.priority, "index": r.index} for r in self.routes]


def _collect(node: _Node, segments: list[str], i: int, out: set[Any]) -> None:
    """Add to ``out`` the values reachable from ``node`` by matching ``segments[i:]``."""
    if node.globstar is not None:
        # `**` takes zero or more segments: try every split point. A pattern that
        # can match one type in several ways is found several times; ``out`` is a set.
        for j in range(i, len(segments) + 1):
            _collect(node.globstar, segments, j, out)
    if i == len(segments):
        out.update(node.values)
        return
    child = node.literal.get(segments[i])
    if child is not None:
        _collect(child, segments, i + 1, out)
    if node.star is not None:
        _collect(node.star, segments, i + 1, out)
