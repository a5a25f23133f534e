"""The server's log lines, as its logging setup writes them, captured for a test."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from embedserve.server import logs


@contextlib.contextmanager
def captured_log(log_format: str) -> Iterator[io.StringIO]:
    """Configure logging as the server does (INFO, ``log_format``) into a string, and put
    the root logger's handlers and level back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure(logs.LogSettings(log_level="INFO", log_format=log_format), stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
