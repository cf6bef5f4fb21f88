"""Lines of the text an analysis saw matched to the lines in the editor now.

Hover and go-to-definition answer at once from the last analysis, even while
a newer one is being checked: the cursor's line is looked up in the text that
analysis saw (``Shift.to_old``), and what is found is moved back to where it
is now (``Shift.to_new``). Only lines the edit left as they were are matched;
on a line being edited nothing is answered until its check is done.
Completion, which is asked on the line being edited, finds the cursor's
scope near where it was (``Shift.near_old``).
"""

from __future__ import annotations

import difflib

from bbflow.lsp.locate import Pos, Range


class Shift:
    """The unchanged lines between ``old`` (what was analysed) and ``new`` (the editor's text)."""

    def __init__(self, old: str, new: str) -> None:
        self.same = old == new
        self._to_old: dict[int, int] = {}
        self._to_new: dict[int, int] = {}
        self._near: dict[int, tuple[int, bool]] = {}  # a changed line -> (a line of old, at its end?)
        self._old_lengths: list[int] = []
        if self.same:
            return
        a, b = old.split("\n"), new.split("\n")
        self._old_lengths = [len(line) for line in a]
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            if tag == "equal":
                for k in range(i2 - i1):
                    self._to_old[j1 + k] = i1 + k
                    self._to_new[i1 + k] = j1 + k
            else:  # the edit made lines i1..i2 into j1..j2: the first ones in place, the lines added at its end
                for k in range(j2 - j1):
                    self._near[j1 + k] = (i1 + k, False) if k < i2 - i1 else (i2 - 1, True)

    def to_old(self, pos: Pos) -> Pos | None:
        """Where ``pos`` of the editor's text was in the analysed text (None on a changed line)."""
        if self.same:
            return pos
        line = self._to_old.get(pos.line)
        return Pos(line, pos.character) if line is not None else None

    def near_old(self, pos: Pos) -> Pos:
        """Where ``pos`` of the editor's text was in the analysed text, as near as can be told: on a
        changed line, the line it replaced, or for a line added (lines typed that do not parse yet), the
        end of the line before them. Where completion looks for the cursor's scope while you type."""
        exact = self.to_old(pos)
        if exact is not None:
            return exact
        line, at_end = self._near.get(pos.line, (len(self._old_lengths) - 1, True))
        if line < 0:
            return Pos(0, 0)
        return Pos(line, self._old_lengths[line] if at_end else pos.character)

    def to_new(self, r: Range) -> Range | None:
        """Where ``r`` of the analysed text is in the editor's text (None if a changed line holds it)."""
        if self.same:
            return r
        start, end = self._to_new.get(r.start.line), self._to_new.get(r.end.line)
        if start is None or end is None or end - start != r.end.line - r.start.line:
            return None
        return Range(Pos(start, r.start.character), Pos(end, r.end.character))
