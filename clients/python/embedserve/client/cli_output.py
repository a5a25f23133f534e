"""What the command line writes: files whole or not at all, and stored documents as JSON
lines."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import IO, Any


@contextlib.contextmanager
def replaced_when_done(path: str, binary: bool = False) -> Iterator[IO[Any]]:
    """A file written beside ``path`` (``path.partial``) and moved onto it once the block
    ends well: a run that fails or is interrupted half-way leaves the earlier file (an
    export's yesterday's backup, an ingestion's checkpoint) as it was, and no truncated one
    in its place."""
    partial = f"{path}.partial"
    try:
        with open(partial, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        raise
    os.replace(partial, path)


def document_line(doc: Any) -> str:
    """A stored document as one JSON line: id, vector (when fetched) and payload, the form
    ``ingest`` reads back."""
    line: dict[str, Any] = {"id": doc.id}
    if doc.vector is not None:
        line["vector"] = [round(float(x), 7) for x in doc.vector]
    line["payload"] = doc.payload
    return json.dumps(line)
