"""Files of texts for the commands that analyse texts (``cluster --texts``, ``similarity``,
``map``): one text a line, or JSONL with a "text" field (and, optionally, an "id" and a
"payload" object)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from embedserve.client._errors import RewordedRpcError
from embedserve.client.cli_lines import lone_surrogate, open_text, stdin_text, utf8_lines


@dataclasses.dataclass(frozen=True)
class TextLine:
    text: str
    # 1-based line number in the file.
    line: int
    # The JSONL line's "id", when it has one.
    id: str | None = None
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.id if self.id is not None else f"line {self.line}"


def read_texts(path: str) -> list[TextLine]:
    """The file's texts ("-": standard input's). A file whose first non-blank line starts
    with "{" is JSONL: every other non-blank line must be a JSON object with a non-empty
    string "text". Blank lines are skipped. Errors (ValueError) name the file and line."""
    if path == "-":
        path = "stdin"
        lines = [line.strip() for line in utf8_lines(stdin_text(), "stdin line")]
    else:
        with open_text(path) as file:
            lines = [line.strip() for line in utf8_lines(file, f"{path} line")]
    # Decided by the first non-blank line (open_text and stdin_text drop a byte order mark):
    # a blank or marked first line made a JSONL file's raw lines its texts.
    jsonl = next((line for line in lines if line), "").startswith("{")
    texts = []
    for number, line in enumerate(lines, 1):
        if line:
            texts.append(_json_line(path, number, line) if jsonl else TextLine(line, number))
    if not texts:
        raise ValueError(f"{path} holds no texts (one text a line, or JSONL with a 'text' field)")
    return texts


def _json_line(path: str, number: int, line: str) -> TextLine:
    where = f"{path} line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}") from None
    if (problem := lone_surrogate(record)) is not None:
        raise ValueError(f"{where}: {problem}")
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where} has no non-empty string 'text' field")
    payload = record.get("payload") or {}
    if not isinstance(payload, dict):
        raise ValueError(f"{where}: 'payload' must be a JSON object")
    identifier = record.get("id")
    return TextLine(text, number, None if identifier is None else str(identifier), payload)


# A text as a request names it: by its place, in the whole request or in one of the parts a
# long one is sent in ("texts[2048:2101][52]").
_PLACE = re.compile(r"(?:texts|inputs)(?:\[(\d+):\d+\])?\[(\d+)\]")


@contextlib.contextmanager
def named_by_line(path: str, lines: Sequence[TextLine]) -> Iterator[None]:
    """The server's refusal of one of ``lines``' texts, sent in their order, names its line
    in the file (blank lines are not sent: the place differs from the line)."""
    try:
        yield
    except grpc.RpcError as exc:
        details = str(exc.details() or "")
        found = _PLACE.match(details)
        if found is None:
            raise
        place = int(found[1] or 0) + int(found[2])
        if place >= len(lines):
            raise
        source = "stdin" if path == "-" else path
        where = f"{source} line {lines[place].line}"
        raise RewordedRpcError(exc, where + details[found.end() :]) from None
