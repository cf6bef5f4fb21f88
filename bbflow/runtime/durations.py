"""Durations written in TOML configuration: ``"20ms"``, ``"1.5s"``, ``"2m"``, ``"1h"``.

The runtime cannot import the compiler's lexer, so configuration files (the
simulated robot's options, faults files) use this small parser. It accepts the
same spellings as duration literals in ``.flow`` files.
"""

from __future__ import annotations

import math
import re
from typing import Any

_DURATION = re.compile(r"(\d[\d_]*(?:\.\d[\d_]*)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds in a duration string; ``ValueError`` with a readable message otherwise."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match and not match.group(1).endswith("_"):
            seconds = float(match.group(1).replace("_", "")) * _UNIT[match.group(2)]
            if math.isfinite(seconds):  # not a number of 400 digits (infinity)
                return seconds
    raise ValueError(f'expected a duration like "20ms", "1.5s", "2m" or "1h", got {value!r}')


def parse_retention(value: Any) -> float:
    """Seconds in a retention period: a duration, or whole days (``"7d"``); ``ValueError`` otherwise."""
    if isinstance(value, str) and value.strip().endswith("d") and value.strip()[:-1].isdecimal():
        days = float(value.strip()[:-1]) * 86400.0  # as a float: 400 digits are infinity, not an OverflowError
        if math.isfinite(days):
            return days
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f'expected a duration like "7d", "12h" or "30m", got {value!r}') from None


def format_duration(seconds: float) -> str:
    """A short human spelling of ``seconds`` for messages, as a ``.flow`` file writes it: ``0.02`` -> ``"20ms"``,
    ``1.5`` -> ``"1.5s"``, ``7200`` -> ``"2h"`` (not ``7200s``), ``1e7`` -> ``"2777.78h"`` (not ``1e+07s``)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if seconds >= size and (seconds / size).is_integer():
            return _number(seconds / size) + unit
    if seconds >= 1e6:
        return _number(seconds / 3600.0) + "h"
    return f"{seconds:g}s"


def _number(value: float) -> str:
    """``value`` with no exponent while it has fewer than 16 digits (``1000000``, not ``1e+06``)."""
    if value.is_integer() and value < 1e15:
        return str(int(value))
    return f"{value:.6g}" if value >= 1e15 else f"{value:.2f}".rstrip("0").rstrip(".")
