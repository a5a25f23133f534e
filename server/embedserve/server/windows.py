"""What the batcher queues and what an encoder computes: torch-free, so the core loads alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from embedserve.server.model_spec import ModelSpec, PoolingMode
from embedserve.server.tokenization import TextTokenizer

FloatArray = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True)
class Window:
    """One sequence to run: token ids plus what to return for it."""

    ids: tuple[int, ...]
    pool_start: int = 0
    # None asks for the per-token vectors instead of one pooled vector.
    pooling: PoolingMode | None = PoolingMode.MEAN
    # A pair's second text starts here (token type 1 from here on, for models that read
    # token types); 0: one text.
    second_start: int = 0


class Encoder(Protocol):
    """What the core needs of a model: its settings, its tokenizer and one batch step."""

    spec: ModelSpec
    tokenizer: TextTokenizer
    dimensions: int
    # Each token's vector (EmbedTokens): the encoder's width, before any Dense layer.
    token_dimensions: int
    model_type: str
    backend: str  # what runs its forward pass (--backend)

    @property
    def device(self) -> object:
        """Where it runs (shown as text, e.g. ``cpu`` or ``cuda:0``)."""
        ...

    @property
    def dtype(self) -> object:
        """Its number format (shown as text)."""
        ...

    def compute(self, windows: Sequence[Window]) -> list[FloatArray]:
        """One vector per window (a matrix for pooling None), in order; runs on the model thread."""
        ...
