"""JSON text held to Unicode: where an escape of half a surrogate pair (``"\\ud800"``)
stands, which Python's ``json`` turns into a string that is no text. Shared by the HTTP
bodies (``http/strict_json.py``) and gRPC's ``payload_json``."""

from __future__ import annotations

import re

# An escape of a surrogate code point, with the backslashes before it (an even number of
# them would make it literal text, not an escape).
_SURROGATE_ESCAPE = re.compile(r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")


def _escape_at(match: re.Match[str]) -> int | None:
    """Where the escape starts, or None when the backslashes make it literal text."""
    return match.start(2) - 2 if len(match.group(1)) % 2 else None


def lone_surrogate_at(text: str) -> int | None:
    """The offset of the first surrogate escape that is not half of a pair, if any."""
    if "\\u" not in text:  # only a text with an escape can hold one: no scan
        return None
    high: re.Match[str] | None = None  # a high surrogate waiting for its low half
    for match in _SURROGATE_ESCAPE.finditer(text):
        at = _escape_at(match)
        if at is None:
            continue
        is_high = int(match.group(2), 16) < 0xDC00
        if high is not None:
            if not is_high and at == high.end():
                high = None
                continue
            return _escape_at(high)
        if not is_high:
            return at
        high = match
    return None if high is None else _escape_at(high)
