"""Text from files and input, made safe to show on a terminal.

A source line, a string literal or a signal's type may hold control
characters: an escape sequence (``ESC ] 52 ; ... BEL`` writes the clipboard,
others move the cursor or retitle the window), a carriage return that hides
what came before, or a bidirectional override that shows code in another
order than it runs. ``printable`` spells each such character as an escape
(``\\x1b``, ``\\u202e``), so what is shown is what is there.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls and DEL, line and paragraph separators, bidirectional embeddings,
# overrides and isolates (tab and newline are decided by the caller).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newline: bool = True) -> str:
    """``text`` with control characters escaped; tabs are kept, and newlines too unless ``newline=False``."""
    out = _CONTROL.sub(_escape, text)
    return out if newline else out.replace("\n", "\\n")
