"""Cutting texts into passages: every token in a passage, passages within their size,
overlapping as asked, and cut between words, for WordPiece and byte-level BPE."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_tokenizer_fast_path import byte_level_bpe
from transformers import AutoTokenizer

from embedserve.server.errors import InvalidArgument
from embedserve.server.passages import PassageSplit
from embedserve.server.tokenization import TextTokenizer

RUN = "x" * 400  # one long word: no boundary to cut at


def corpus(seed: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["rocket", "orbit,", "the", "moon.", "Übermäßig", "launch-pad", "42", "(fuel)"]
    body = " ".join(str(rng.choice(words)) for _ in range(400))
    return f"  {body[:900]} {RUN} {body[900:]}\n"


@pytest.fixture(params=["wordpiece", "byte-level-bpe"])
def tokenizer(request: Any, minilm_path: Path, tmp_path: Path) -> TextTokenizer:
    folder = minilm_path if request.param == "wordpiece" else byte_level_bpe(tmp_path)
    return TextTokenizer(AutoTokenizer.from_pretrained(folder), 256, True, 0)


@pytest.mark.parametrize(("size", "overlap"), [(16, 0), (50, 6), (120, 60)])
def test_passages_cover_the_text_within_their_size(
    tokenizer: TextTokenizer, size: int, overlap: int
) -> None:
    text = corpus(size)
    assert tokenizer.backend is not None
    offsets = tokenizer.backend.encode(text, add_special_tokens=False).offsets
    spans = tokenizer.passage_spans(text, size, overlap)
    inside = [[i for i, (a, b) in enumerate(offsets) if a >= s and b <= e] for s, e in spans]
    assert inside[0][0] == 0 and inside[-1][-1] == len(offsets) - 1
    for tokens, (start, end) in zip(inside, spans, strict=True):
        assert tokens == list(range(tokens[0], tokens[-1] + 1)) and len(tokens) <= size
        assert (offsets[tokens[0]][0], offsets[tokens[-1]][1]) == (start, end)
    for before, after in itertools.pairwise(inside):
        assert after[0] > before[0]  # each passage moves on
        assert len(set(before) & set(after)) >= overlap
        assert after[0] <= before[-1] + 1  # no token left out
    # Cuts between words where a word starts within half a window of the limit (of the
    # token limit for an end, of the overlap for the next start), else between characters.
    half = size // 2
    for before, after in itertools.pairwise(inside):
        end, first = before[-1] + 1, before[0]
        assert starts(text, offsets, end) or not any(
            starts(text, offsets, i) for i in range(first + size - half + 1, first + size + 1)
        )
        aim = max(first + 1, end - overlap)
        assert starts(text, offsets, after[0]) or not any(
            starts(text, offsets, i) for i in range(max(first, aim - half) + 1, aim + 1)
        )
        assert offsets[after[0]][0] >= offsets[after[0] - 1][1]  # never inside a character


def starts(text: str, offsets: list[tuple[int, int]], token: int) -> bool:
    """Whether ``token`` begins a word: it holds a space or follows one."""
    if token >= len(offsets):
        return True
    at = offsets[token][0]
    return offsets[token][0] >= offsets[token - 1][1] and any(
        c.isspace() for c in text[at - 1 : at + 1]
    )


def test_a_text_that_fits_is_one_passage(tokenizer: TextTokenizer) -> None:
    assert tokenizer.passage_spans(" short text ", 16, 2) == [(0, 12)]


def test_the_room_is_what_the_prompt_and_special_tokens_leave() -> None:
    assert PassageSplit().resolved(254, "split") == (254, 31)
    assert PassageSplit(64, 0).resolved(254, "split") == (64, 0)
    for split, message in [
        (PassageSplit(255), "max_tokens must be from 1 to 254"),
        (PassageSplit(64, 33), "overlap_tokens must be from 0 to half of max_tokens"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            split.resolved(254, "split")
    with pytest.raises(InvalidArgument, match="no room"):
        PassageSplit().resolved(0, "split")


def test_room_counts_the_prompt(minilm_path: Path) -> None:
    tokenizer = TextTokenizer(AutoTokenizer.from_pretrained(minilm_path), 256, True, 0)
    assert tokenizer.text_room("") == 254
    assert tokenizer.text_room("search query: ") == 254 - tokenizer.prompt_token_count(
        "search query: "
    )


@pytest.mark.parametrize(("size", "overlap"), [(254, 0), (64, 8), (10, 0)])
def test_a_passage_tokenised_on_its_own_fits_its_size(
    tokenizer: TextTokenizer, size: int, overlap: int
) -> None:
    """A passage is embedded from its own text: cut inside a word (no space to cut at, as in
    minified code), its remains can be more word pieces than they were in the whole text
    ("##ment" alone is "men ##t"), and the passage's last tokens were cut off its vector."""
    text = "getElementById;" * 400
    assert tokenizer.backend is not None
    spans = tokenizer.passage_spans(text, size, overlap)
    counts = [
        len(tokenizer.backend.encode(text[a:b], add_special_tokens=False).ids) for a, b in spans
    ]
    assert max(counts) <= size, counts
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(after[0] <= before[1] for before, after in itertools.pairwise(spans))
