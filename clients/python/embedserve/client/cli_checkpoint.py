"""``embedserve ingest``'s checkpoint: how far an earlier run of a file got, and proof that
the file still begins with the documents it acknowledged.

The proof is a digest of those documents. A file replaced, truncated or edited before the
point reached is sent from its first document (re-sent documents overwrite, so nothing is
duplicated); only a file that grew at its end is continued."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from embedserve.client.cli_output import replaced_when_done


class PrefixDigest:
    """A running digest of documents in file order, kept for each count not yet saved."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._count = 0
        self._after: dict[int, str] = {0: self._hash.hexdigest()}

    def track(self, documents: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for document in documents:
            self._hash.update(json.dumps(document, sort_keys=True).encode() + b"\n")
            self._count += 1
            self._after[self._count] = self._hash.hexdigest()
            yield document

    def of_first(self, count: int) -> str:
        """The digest of the first ``count`` documents; those before are forgotten
        (acknowledgements come in order)."""
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


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))
