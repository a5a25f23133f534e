"""``embedserve ingest``'s checkpoint: how far an earlier run of a file got, and proof that
the file still begins with the documents it acknowledged.

The proof is a digest of those documents. A file replaced, truncated or edited before the
point reached is sent from its first document (re-sent documents overwrite, so nothing is
duplicated); only a file that grew at its end is continued."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from embedserve.client.cli_output import replaced_when_done


class PrefixDigest:
    """A running digest of documents in file order, kept for each count not yet saved.

    ``track`` runs on the thread that sends the documents (gRPC's), ``of_first`` on the one
    that reads the acknowledgements: the digests by count are shared under a lock."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._count = 0
        self._after: dict[int, str] = {0: self._hash.hexdigest()}
        self._lock = threading.Lock()

    def track(self, documents: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for document in documents:
            self._hash.update(json.dumps(document, sort_keys=True).encode() + b"\n")
            self._count += 1
            with self._lock:
                self._after[self._count] = self._hash.hexdigest()
            yield document

    def of_first(self, count: int) -> str:
        """The digest of the first ``count`` documents; those before are forgotten
        (acknowledgements come in order)."""
        with self._lock:
            for older in [n for n in self._after if n < count]:
                del self._after[older]
            return self._after[count]


def digest_of(documents: Iterable[dict[str, Any]], count: int) -> str | None:
    """The digest of the first ``count`` documents, or None if there are fewer."""
    digest = PrefixDigest()
    seen = sum(1 for _ in zip(range(count), digest.track(documents), strict=False))
    return digest.of_first(count) if seen == count else None


def save(
    path: Path,
    acknowledged: int,
    last_id: str,
    collection: str,
    prefix: str,
    options: dict[str, Any],
) -> None:
    """``options``: the write options the documents went with (stored text, passages)."""
    saved = {
        "acknowledged": acknowledged,
        "last_id": last_id,
        "collection": collection,
        "prefix_sha256": prefix,
        "options": options,
    }
    with replaced_when_done(str(path)) as checkpoint:
        checkpoint.write(json.dumps(saved))


# Each field's type and its name in errors; older checkpoints lack those after last_id.
_FIELDS = {
    "acknowledged": (int, "an integer"),
    "last_id": (str, "a string"),
    "collection": (str, "a string"),
    "prefix_sha256": (str, "a string"),
    "options": (dict, "an object"),
}
_REQUIRED = ("acknowledged", "last_id")


def load(path: Path) -> dict[str, Any]:
    """The checkpoint saved at ``path``; a ValueError that names it, and --restart, when
    the file is none (empty, cut short, another program's)."""
    try:
        saved = json.loads(path.read_text("utf-8"))
    except ValueError as exc:  # not JSON, or not UTF-8
        problem: str | None = f"not JSON: {exc}"
    else:
        problem = _problem(saved)
    if problem is not None:
        raise ValueError(
            f"{path} is not a checkpoint of ingest ({problem}); pass --restart to start "
            "from the first document"
        )
    return dict(saved)


def _problem(saved: Any) -> str | None:
    """What keeps ``saved`` from being a checkpoint; None when it is one."""
    if not isinstance(saved, dict):
        return f"a JSON object expected, got {type(saved).__name__}"
    for name, (kind, kind_name) in _FIELDS.items():
        if name not in saved:
            if name in _REQUIRED:
                return f"it has no {name!r}"
            continue
        value = saved[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name!r} must be {kind_name}, not {json.dumps(value)[:40]}"
    if saved["acknowledged"] < 0:
        return f"'acknowledged' must not be negative, not {saved['acknowledged']}"
    return None
