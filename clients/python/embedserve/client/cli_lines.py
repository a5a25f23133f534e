"""Input lines for the command line: files and stdin read as UTF-8, and a line that is not
UTF-8 named by its number (a decoder error names only a position in a read buffer)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TextIO


def open_text(path: str) -> TextIO:
    """``path`` for reading lines through ``utf8_lines``."""
    return open(path, encoding="utf-8", errors="surrogateescape")


def stdin_text() -> TextIO:
    """Standard input for reading lines through ``utf8_lines``."""
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(encoding="utf-8", errors="surrogateescape")
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
