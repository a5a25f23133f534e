"""Passage spans keep a word's combining marks: a tokenizer that strips accents (MiniLM's
WordPiece) leaves a decomposed accent out of its tokens' offsets, and a passage ending
on that word must not cut it off (it would belong to no passage)."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import pytest
from test_tokenizer_fast_path import byte_level_bpe
from transformers import AutoTokenizer

from embedserve.server.tokenization import TextTokenizer

CAFE = "cafe\u0301"  # "café" with the accent as a combining mark


@pytest.fixture(params=["wordpiece", "byte-level-bpe"])
def tokenizer(request: Any, minilm_path: Path, tmp_path: Path) -> TextTokenizer:
    folder = minilm_path if request.param == "wordpiece" else byte_level_bpe(tmp_path)
    return TextTokenizer(AutoTokenizer.from_pretrained(folder), 256, True, 0)


def uncovered(text: str, spans: list[tuple[int, int]]) -> list[int]:
    """The places of characters other than spaces that no span holds."""
    held = {i for start, end in spans for i in range(start, end)}
    return [i for i, c in enumerate(text) if not c.isspace() and i not in held]


def check_marks_kept(text: str, spans: list[tuple[int, int]]) -> None:
    """Every character in a passage; none starts on a combining mark or stops before one."""
    assert uncovered(text, spans) == []
    for start, end in spans:
        assert not unicodedata.combining(text[start])
        assert end == len(text) or not unicodedata.combining(text[end])


@pytest.mark.parametrize("overlap", [0, 2])
def test_a_passage_ending_on_an_accented_word_keeps_its_accent(
    tokenizer: TextTokenizer, overlap: int
) -> None:
    text = " ".join([CAFE] * 40)
    spans = tokenizer.passage_spans(text, 8, overlap)
    assert len(spans) > 4
    check_marks_kept(text, spans)


def test_wordpiece_passages_end_with_the_whole_word(minilm_path: Path) -> None:
    """The tester's case: MiniLM, 8 tokens, no overlap; spans were [0, 46], [48, 94], ..."""
    tokenizer = TextTokenizer(AutoTokenizer.from_pretrained(minilm_path), 256, True, 0)
    text = " ".join([CAFE] * 40)
    spans = tokenizer.passage_spans(text, 8, 0)
    assert spans[:2] == [(0, 47), (48, 95)]
    assert all(text[start:end] == " ".join([CAFE] * 8) for start, end in spans)
    # Stacked marks, marks before punctuation, and a mark at the very end of the text.
    words = ["nai\u0308ve", "a\u0301\u0300,", "re\u0301sume\u0301"]
    text = " ".join(words[i % 3] for i in range(60))
    for size, overlap in [(7, 1), (5, 0), (3, 1)]:
        check_marks_kept(text, tokenizer.passage_spans(text, size, overlap))
