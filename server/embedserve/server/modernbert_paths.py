"""Which forward pass runs a ModernBERT: the packed one or transformers' own."""

from __future__ import annotations

import logging
from typing import Any

import torch

from embedserve.server.errors import ModelLoadError
from embedserve.server.modernbert_packed import PackedModernBert

log = logging.getLogger(__name__)

MODERNBERT_PATHS = ("auto", "fast", "reference")


def pick_modernbert_path(model: Any, requested: str) -> Any:
    """The callable that runs ``model``: ``model`` itself or its packed pass.

    ``auto`` packs unless flash-attention 2 runs the model: that kernel already
    skips padding and computes only the window of a local layer. A model that is not a
    torch module (an ONNX backend's session, exported from transformers' own forward)
    has no layers to pack: ``auto`` runs it as it is, ``fast`` is refused.
    """
    if requested not in MODERNBERT_PATHS:
        raise ModelLoadError(
            f"modernbert_path must be one of {', '.join(MODERNBERT_PATHS)}; got '{requested}'"
        )
    config = model.config
    if config.model_type != "modernbert" or requested == "reference":
        return model
    if not isinstance(model, torch.nn.Module):
        if requested == "fast":
            raise ModelLoadError(
                "modernbert_path 'fast' runs on the torch backends; the ONNX backends run "
                "transformers' reference forward: use --modernbert-path auto or reference"
            )
        return model
    if requested == "auto" and config._attn_implementation == "flash_attention_2":
        return model
    log.info("ModernBERT runs on packed tokens with windowed local attention")
    return PackedModernBert(model)
