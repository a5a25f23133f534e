"""Log setup: text or JSON lines, each carrying the request id of the call it is about
(and, in JSON, the key_id of the key it was made with)."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from typing import IO

from embedserve.server import callctx


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current call's request id and key_id ("" outside calls,
    and for a call made without a key). A key_id is a short hash: never the key."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = callctx.request_id.get()
        record.key_id = callctx.key_id()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            entry["request_id"] = request_id
        key_id = getattr(record, "key_id", "")
        if key_id:
            entry["key_id"] = key_id
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", "")
        return f"{line} [request_id={request_id}]" if request_id else line


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # in any case
FORMATS = ("text", "json")


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """The logging section of the settings."""

    log_level: str = "INFO"
    log_format: str = "text"  # text | json (one JSON object per line, with request_id)


def configure(settings: LogSettings, stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one writing ``log_format`` lines."""
    fmt = settings.log_format
    if fmt not in FORMATS:
        raise ValueError(f"log_format must be 'text' or 'json', got {fmt!r}")
    level = settings.log_level.upper()
    if level not in LEVELS:
        raise ValueError(
            f"log_level must be one of {', '.join(LEVELS)}; got {settings.log_level!r}"
        )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # On the handler, not a logger: records of every logger pass through it.
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python's warnings (a library's UserWarning) as log records, in the same format: raw
    # on stderr they broke JSON logs into lines that are no JSON, with no level or time.
    logging.captureWarnings(True)
    return handler
