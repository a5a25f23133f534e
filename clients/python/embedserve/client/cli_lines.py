"""Input lines for the command line: files and stdin read as UTF-8, and a line that is not
UTF-8 named by its number (a decoder error names only a position in a read buffer)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from embedserve.client._unicode import surrogate_problem

# UTF-8 that drops a byte order mark at the start (Excel's "CSV UTF-8" and other Windows
# tools write one), which would otherwise be part of the first line's first field.
ENCODING = "utf-8-sig"


def open_text(path: str, newline: str | None = None) -> TextIO:
    """``path`` for reading lines through ``utf8_lines``; ``newline=""`` for the csv
    module, which keeps the line endings inside quoted fields only so."""
    return open(path, encoding=ENCODING, errors="surrogateescape", newline=newline)


def stdin_text() -> TextIO:
    """Standard input for reading lines through ``utf8_lines``."""
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(encoding=ENCODING, errors="surrogateescape")
    return sys.stdin


def utf8_lines(lines: Iterable[str], name: str = "line") -> Iterator[str]:
    """``lines`` (read with errors="surrogateescape"), refusing the first one that is not
    UTF-8: "{name} 3 is not UTF-8 text (byte 0xff at character 7)"."""
    for number, line in enumerate(lines, 1):
        if not line.isascii():
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as exc:
                byte = ord(line[exc.start]) - 0xDC00  # surrogateescape's stand-in for it
                raise ValueError(
                    f"{name} {number} is not UTF-8 text "
                    f"(byte 0x{byte:02x} at character {exc.start + 1})"
                ) from None
        yield line


def lone_surrogate(value: Any, path: str = "") -> str | None:
    """Where a parsed JSON value holds a string that is no text, e.g. "field 'payload.note'
    holds \\ud800 at character 1, half of a surrogate pair and not a character"."""
    if isinstance(value, str):
        problem = surrogate_problem(value)
        return None if problem is None else f"field '{path}' {problem}" if path else problem
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if (problem := lone_surrogate(key, inner) or lone_surrogate(item, inner)) is not None:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (problem := lone_surrogate(item, f"{path}[{index}]")) is not None:
                return problem
    return None
