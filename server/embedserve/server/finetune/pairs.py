"""Training and evaluation pairs: reading JSONL with errors that name the line, splitting."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from pathlib import Path

from embedserve.client._unicode import surrogate_problem
from embedserve.client.cli_lines import open_text, utf8_lines
from embedserve.server.finetune.errors import FinetuneError

TEXT_FIELDS = ("query", "positive", "negative")
REQUIRED_FIELDS = ("query", "positive")


@dataclasses.dataclass(frozen=True)
class Pair:
    """A query, a document that answers it and, optionally, one that does not."""

    query: str
    positive: str
    negative: str | None = None


def read_pairs(path: Path, flag: str) -> list[Pair]:
    """Read ``{"query", "positive"[, "negative"]}`` lines; other fields are ignored.

    Every problem is reported as ``FLAG FILE line N: ...`` so the user can go to it.
    """
    # Lines end at \n alone (and a byte order mark may lead), as ingest reads JSONL:
    # str.splitlines would also split at U+2028 and the like, which JSON strings may hold.
    try:
        with open_text(str(path)) as handle:
            lines = list(utf8_lines(handle, f"{flag} {path} line"))
    except FileNotFoundError as exc:
        raise FinetuneError(f"{flag} {path}: no such file") from exc
    except ValueError as exc:
        raise FinetuneError(str(exc)) from None
    except OSError as exc:
        raise FinetuneError(f"{flag} {path}: cannot read it ({exc})") from exc
    pairs = [
        _parse_line(line, f"{flag} {path} line {number}")
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    if not pairs:
        raise FinetuneError(f"{flag} {path}: the file is empty (expected JSONL pairs)")
    return pairs


def _parse_line(line: str, where: str) -> Pair:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FinetuneError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(record, dict):
        raise FinetuneError(f"{where}: expected a JSON object with 'query' and 'positive'")
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise FinetuneError(f"{where}: missing field '{name}'")
    texts: dict[str, str | None] = {}
    for name in TEXT_FIELDS:
        value = record.get(name)
        if value is None and name not in REQUIRED_FIELDS:
            texts[name] = None
            continue
        if not isinstance(value, str):
            raise FinetuneError(f"{where}: field '{name}' must be a string")
        if not value.strip():
            raise FinetuneError(f"{where}: field '{name}' is an empty text")
        if (problem := surrogate_problem(value)) is not None:
            raise FinetuneError(f"{where}: field '{name}' {problem}")
        texts[name] = value
    return Pair(str(texts["query"]), str(texts["positive"]), texts["negative"])


def split_heldout(
    pairs: Sequence[Pair], fraction: float, seed: int
) -> tuple[list[Pair], list[Pair]]:
    """Carve a held-out share out of ``pairs``, grouped by query so no query is in both."""
    if not 0.0 < fraction < 1.0:
        raise FinetuneError(f"--eval-fraction must be between 0 and 1; got {fraction}")
    queries = sorted({pair.query for pair in pairs})
    random.Random(seed).shuffle(queries)
    held = set(queries[: max(1, round(len(queries) * fraction))])
    train = [pair for pair in pairs if pair.query not in held]
    heldout = [pair for pair in pairs if pair.query in held]
    if not train:
        raise FinetuneError("--eval-fraction leaves no training pairs; add pairs or lower it")
    return train, heldout


def queries_in_both(train: Sequence[Pair], heldout: Sequence[Pair]) -> int:
    """How many held-out queries are training queries too (``--eval`` files overlap): the
    figures after training then include questions the model was trained on."""
    trained = {pair.query for pair in train}
    return len({pair.query for pair in heldout} & trained)


def corpus_of(*pair_sets: Sequence[Pair]) -> list[str]:
    """Every distinct document of the given pairs, in first-seen order."""
    seen: dict[str, None] = {}
    for pairs in pair_sets:
        for pair in pairs:
            seen.setdefault(pair.positive)
            if pair.negative is not None:
                seen.setdefault(pair.negative)
    return list(seen)
