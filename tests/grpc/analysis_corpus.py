"""The labelled corpus of docs/data: 300 texts in six topics and 36 planted near-duplicates
(copies with small edits and paraphrases), each naming the text it duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[2] / "docs" / "data" / "topics_corpus.jsonl"

# Words that name each topic, for checking a cluster's distinguishing words.
TOPIC_WORDS = {
    "cooking": {"cooking", "cook", "cooks", "recipe", "kitchen", "food"},
    "astronomy": {"astronomy", "astronomer", "astronomers", "telescope", "space", "stars"},
    "football": {"football", "match", "goal", "league"},
    "finance": {"finance", "financial", "market", "stock", "stocks", "investors", "bank"},
    "medicine": {"medicine", "medical", "doctor", "doctors", "patient", "patients", "hospital"},
    "music": {"music", "musical", "band", "songs", "album", "orchestra"},
}


def documents() -> list[dict[str, Any]]:
    """The file's lines: {id, text, payload: {topic, duplicate_of (planted ones only)}}."""
    with open(CORPUS, encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def rows() -> list[dict[str, Any]]:
    """Flat: id, text, topic, duplicate_of (None for originals)."""
    return [
        {
            "id": d["id"],
            "text": d["text"],
            "topic": d["payload"]["topic"],
            "duplicate_of": d["payload"].get("duplicate_of"),
        }
        for d in documents()
    ]


def planted_pairs() -> set[tuple[str, str]]:
    return {
        (min(r["id"], r["duplicate_of"]), max(r["id"], r["duplicate_of"]))
        for r in rows()
        if r["duplicate_of"]
    }
