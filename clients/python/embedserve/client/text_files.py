"""Files of texts, as ``cluster --texts`` and ``map`` read them: JSONL lines with a "text"
field (and optionally "id" and "payload"), or one plain text a line."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class TextRecord:
    id: str
    text: str
    payload: dict[str, Any]


def read_text_records(path: str) -> list[TextRecord]:
    """Every non-blank line's text; a plain line's id is its line number."""
    records = []
    with open(path, encoding="utf-8") as file:
        for number, raw in enumerate(file, 1):
            line = raw.strip()
            if not line:
                continue
            if not line.startswith("{"):
                records.append(TextRecord(str(number), line, {}))
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
            if "text" not in row:
                raise ValueError(f'{path} line {number}: no "text" field')
            payload = row.get("payload") or {}
            if not isinstance(payload, dict):
                raise ValueError(f'{path} line {number}: "payload" must be an object')
            records.append(TextRecord(str(row.get("id", number)), str(row["text"]), payload))
    return records


def read_texts(path: str) -> list[str]:
    return [record.text for record in read_text_records(path)]
