"""A fake encoder for the fast core tests: a word-level tokenizer and context-free vectors.

Each token id has a fixed random vector; a window's vector is the mean (or the first or
last) of its tokens' vectors, so every expectation can be computed by hand, and every
batch the batcher hands to the model is recorded. RecordingModel is a bare model function
for the batcher tests: it records batches and can hold one until released.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedserve.server.model_spec import ModelSpec, PoolingMode
from embedserve.server.tokenization import TextTokenizer
from embedserve.server.windows import FloatArray, Window

PAD, CLS, SEP = 0, 1, 2
PROMPTS = {"query": "query: ", "document": "passage: "}


class WordTokenizer:
    """The slice of a Hugging Face tokenizer that TextTokenizer uses, one id per word.

    By default a BERT-like [CLS] text [SEP]; other special tokens (or none) stand in for
    models that add only a prefix, or nothing at all.
    """

    def __init__(
        self,
        prefix: Sequence[int] = (CLS,),
        suffix: Sequence[int] = (SEP,),
        pad_token_id: int | None = PAD,
    ) -> None:
        self.model_max_length = 512
        self.pad_token_id = pad_token_id
        self._prefix = list(prefix)
        self._suffix = list(suffix)
        self._ids: dict[str, int] = {}
        self.threads: set[str] = set()  # the threads that called it
        self.delay_s = 0.0  # how long each call takes, at least

    def __len__(self) -> int:
        """The vocabulary so far: the special ids and every word seen."""
        return 3 + len(self._ids)

    def _word_id(self, word: str) -> int:
        return self._ids.setdefault(word, 3 + len(self._ids))

    def _one(
        self, text: str, add_special_tokens: bool, with_mask: bool, with_offsets: bool
    ) -> dict[str, Any]:
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        ids = [self._word_id(text[a:b]) for a, b in spans]
        mask = [0] * len(ids)
        if add_special_tokens:
            before, after = self._prefix, self._suffix
            ids = [*before, *ids, *after]
            mask = [1] * len(before) + mask + [1] * len(after)
            spans = [(0, 0)] * len(before) + spans + [(0, 0)] * len(after)
        out: dict[str, Any] = {"input_ids": ids}
        if with_mask:
            out["special_tokens_mask"] = mask
        if with_offsets:
            out["offset_mapping"] = spans
        return out

    def __call__(
        self,
        text: str | Sequence[str],
        add_special_tokens: bool = True,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
    ) -> dict[str, Any]:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        options = (add_special_tokens, return_special_tokens_mask, return_offsets_mapping)
        if isinstance(text, str):
            return self._one(text, *options)
        rows = [self._one(t, *options) for t in text]
        return {key: [row[key] for row in rows] for key in rows[0]}

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        words = {v: k for k, v in self._ids.items()} | {PAD: "[PAD]", CLS: "[CLS]", SEP: "[SEP]"}
        return [words[i] for i in ids]


class FakeEncoder:
    """Implements the core's Encoder protocol without torch."""

    model_type = "fake"
    backend = "torch"
    device = "cpu"
    dtype = "float32"

    def __init__(
        self,
        dimensions: int = 16,
        max_tokens: int = 32,
        chunk_overlap_tokens: int = 4,
        include_prompt: bool = True,
        normalize: bool = True,
        pooling: PoolingMode = PoolingMode.MEAN,
    ) -> None:
        self.dimensions = dimensions
        self.token_dimensions = dimensions
        self.spec = ModelSpec(
            model_id="fake",
            path=Path("."),
            pooling=pooling,
            normalize=normalize,
            prompts=dict(PROMPTS),
            default_prompt_name=None,
            max_tokens=max_tokens,
            include_prompt=include_prompt,
        )
        self.tokenizer = TextTokenizer(
            WordTokenizer(), max_tokens, include_prompt, chunk_overlap_tokens
        )
        self.batches: list[list[Window]] = []
        self._lock = threading.Lock()

    def token_vector(self, token_id: int) -> FloatArray:
        return np.random.default_rng(token_id).normal(size=self.dimensions).astype(np.float32)

    def window_vector(self, window: Window) -> FloatArray:
        """What compute returns for one window, computed from the definition."""
        rows = np.stack([self.token_vector(i) for i in window.ids])
        if window.pooling is None:
            return rows
        if window.pooling is PoolingMode.CLS:
            return rows[0]
        if window.pooling is PoolingMode.LAST_TOKEN:
            return rows[-1]
        return rows[window.pool_start :].mean(axis=0)

    def compute(self, windows: Sequence[Window]) -> list[FloatArray]:
        with self._lock:
            self.batches.append(list(windows))
        return [self.window_vector(window) for window in windows]

    @property
    def calls(self) -> int:
        return len(self.batches)


def ids_of(encoder: FakeEncoder, text: str) -> list[int]:
    """The word ids of ``text`` (no special tokens), as the encoder's tokenizer gives them."""
    return list(encoder.tokenizer._tok(text, add_special_tokens=False)["input_ids"])


class RecordingModel:
    """Records each batch; can hold the first batch until released, so a queue builds up."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[Window]] = []
        self.threads: set[str] = set()
        self.first_started = threading.Event()
        self._release = threading.Event()
        if not hold_first:
            self._release.set()

    def release(self) -> None:
        self._release.set()

    def hold_next(self) -> None:
        """Hold the next batch until released, as the first one is with ``hold_first``."""
        self.first_started.clear()
        self._release.clear()

    def __call__(self, windows: Sequence[Window]) -> list[FloatArray]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(windows))
        self.first_started.set()
        self._release.wait(10)
        return [np.full(2, len(w.ids), dtype=np.float32) for w in windows]


def numbered_windows(lengths: Sequence[int]) -> list[Window]:
    """Window i starts with token id i, so a batch tells which inputs it holds."""
    return [Window((i, *range(1000, 1000 + n - 1))) for i, n in enumerate(lengths)]


def index_of(window: Window) -> int:
    return window.ids[0]
