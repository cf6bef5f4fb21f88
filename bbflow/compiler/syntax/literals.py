"""Decoding of number, duration and string literals as written in ``.flow`` files.

The lexer is lenient on purpose (``12mss``, ``1__0``, ``"unterminated``) so that
a malformed literal is reported as what it is (BBF002) rather than as a confusing
syntax error. Decoding never raises: it returns the value, or an error message
(and, for strings, the offset of the bad part) and a best-effort value.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import attrs

_DIGITS = r"[0-9]+(?:_[0-9]+)*"
_INT = re.compile(_DIGITS)
_FLOAT = re.compile(rf"{_DIGITS}(?:\.{_DIGITS}(?:[eE][+-]?{_DIGITS})?|[eE][+-]?{_DIGITS})")
_DURATION = re.compile(rf"({_DIGITS}(?:\.{_DIGITS})?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER_HEAD = re.compile(r"[0-9_]+(?:\.[0-9_]+)?")

NumberKind = Literal["int", "float", "duration"]


@attrs.frozen(slots=True)
class DecodedNumber:
    """An int, float or duration literal; ``error`` is set when the text is malformed."""

    kind: NumberKind
    value: float | int  # seconds for a duration
    error: str | None = None
    help: str | None = None


#: The longest integer literal (Python refuses to convert longer ones without a special setting).
MAX_INT_DIGITS = 4300


def decode_number(text: str) -> DecodedNumber:
    """Decode ``42``, ``1_000``, ``0.5``, ``1e-3``, ``250ms``, ``1.5s``, ``2m``, ``1h``."""
    if _INT.fullmatch(text):
        digits = text.replace("_", "")
        if len(digits) > MAX_INT_DIGITS:
            return DecodedNumber("int", 0, f"integer literal too long ({len(digits)} digits; at most "
                                 f"{MAX_INT_DIGITS})", "an int this large cannot be a robot's quantity")
        return DecodedNumber("int", int(digits))
    if _FLOAT.fullmatch(text):
        return _finite(text, "float", float(text.replace("_", "")))
    m = _DURATION.fullmatch(text)
    if m:
        return _finite(text, "duration", float(m.group(1).replace("_", "")) * _UNIT_SECONDS[m.group(2)])
    return _malformed(text)


def _finite(text: str, kind: NumberKind, value: float) -> DecodedNumber:
    """A float or duration, refused when it is past the largest float (``1e999`` would be infinity)."""
    if math.isfinite(value):
        return DecodedNumber(kind, value)
    what = "duration" if kind == "duration" else "number"
    return DecodedNumber(kind, 0.0, f"{what} `{text}` is too large (a float is at most about 1.8e308)",
                         "no robot's quantity is this large: check the digits and the exponent")


def _malformed(text: str) -> DecodedNumber:
    head = _NUMBER_HEAD.match(text)
    digits = head.group(0) if head else ""
    rest = text[len(digits):]
    if "__" in digits or digits.endswith("_") or "_." in digits or "._" in digits:
        kind: NumberKind = "duration" if rest.isalpha() else ("float" if "." in digits else "int")
        return DecodedNumber(kind, 0, f"malformed number `{text}`: `_` may only stand between two digits",
                             "write digit groups like `1_000`")
    if rest[:1] in ("e", "E") and (len(rest) == 1 or not rest[1:].lstrip("+-").isdigit()):
        return DecodedNumber("float", 0.0, f"malformed number `{text}`: the exponent has no digits",
                             "write an exponent like `1e-3`")
    if rest.isalpha():
        from bbflow.compiler.diagnostics.suggest import closest

        near = closest(rest, _UNIT_SECONDS)
        hint = f"did you mean `{digits}{near[0]}`?" if near else "the units are `ms`, `s`, `m` and `h`"
        return DecodedNumber("duration", 0.0, f"malformed duration `{text}`: unknown unit `{rest}`", hint)
    return DecodedNumber("float" if "." in text else "int", 0, f"malformed number `{text}`",
                         "numbers look like `42`, `1_000`, `0.5` or `1e-3`; durations like `250ms` or `1.5s`")


@attrs.frozen(slots=True)
class DecodedString:
    """A string literal's value; ``error`` is set (with the bad part's offset in the token) when malformed."""

    value: str
    error: str | None = None
    help: str | None = None
    offset: int = 0
    length: int = 1


_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_ESCAPES_HELP = 'the escapes are `\\"`, `\\\\`, `\\n`, `\\t` and `\\u{...}`; write `\\\\` for a backslash'
_UNICODE = re.compile(r"u\{([0-9A-Fa-f]{1,6})\}")


def decode_string(token: str) -> DecodedString:
    """Decode a string token as lexed (with its quotes, or an unterminated one)."""
    out: list[str] = []
    first_error: DecodedString | None = None
    i = 1
    n = len(token)
    closed = False
    while i < n:
        ch = token[i]
        if ch == '"':
            closed = True
            break
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = token[i + 1] if i + 1 < n else ""
        if nxt in _SIMPLE_ESCAPES and nxt:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
            continue
        if nxt == "u":
            m = _UNICODE.match(token, i + 1)
            code = int(m.group(1), 16) if m else -1
            if m and code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                out.append(chr(code))
                i = m.end()
                continue
            length = (m.end() - i) if m else 2
            if first_error is None:
                first_error = DecodedString("", f"bad unicode escape `{token[i:i + length]}`",
                                            "write a code point in hex, like `\\u{1F916}`", i, length)
            i += length
            continue
        if not nxt:
            break  # a backslash at the end of an unterminated string
        if first_error is None:
            first_error = DecodedString("", f"unknown escape `\\{nxt}` in a string", _ESCAPES_HELP, i, 2)
        i += 2
    value = "".join(out)
    if not closed:
        return DecodedString(value, "unterminated string", 'add the closing `"` (a string ends on the line it starts)',
                             0, len(token))
    if first_error is not None:
        return attrs.evolve(first_error, value=value)
    return DecodedString(value)
