"""Which forward pass runs an encoder: a packed one (padding skipped) or transformers' own.

ModernBERT (``modernbert_path``) and BERT-style models (``bert_path``) have packed passes; each
setting is ``auto``, ``fast`` (the packed pass) or ``reference`` (transformers').
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from embedserve.server import varlen
from embedserve.server.bert_packed import PackedBert, packs
from embedserve.server.errors import ModelLoadError
from embedserve.server.model_settings import FORWARD_PATHS
from embedserve.server.modernbert_packed import PackedModernBert

log = logging.getLogger(__name__)


def _packable(setting: str, requested: str, model: Any, family: bool) -> bool:
    """Whether to run ``model`` (of the setting's family or not) on its packed pass.

    Refuses unknown values, and ``fast`` where the model is not a torch module: an
    ONNX backend's session, exported from transformers' own forward, has no layers
    to pack. ``fast`` on a model of another family has nothing to pack.
    """
    if requested not in FORWARD_PATHS:
        raise ModelLoadError(
            f"{setting} must be one of {', '.join(FORWARD_PATHS)}; got '{requested}'"
        )
    if not family or requested == "reference":
        return False
    if isinstance(model, torch.nn.Module):
        return True
    if requested == "fast":
        flag = setting.replace("_", "-")
        raise ModelLoadError(
            f"{setting} 'fast' runs on the torch backends; the ONNX backends run "
            f"transformers' reference forward: use --{flag} auto or reference"
        )
    return False


def refuse_off_the_torch_module(model: Any, backend: str, modernbert: str, bert: str) -> None:
    """The ``fast`` paths an ONNX backend cannot run, refused before its export (minutes
    for a large model) rather than after; ``model`` is the torch module to be exported."""
    if backend.startswith("onnx"):
        _packable("modernbert_path", modernbert, None, model.config.model_type == "modernbert")
        _packable("bert_path", bert, None, packs(model.config))


def pick_modernbert_path(model: Any, requested: str) -> Any:
    """The callable that runs ``model``: ``model`` itself or its packed pass.

    ``auto`` packs unless flash-attention 2 runs the model: that kernel already
    skips padding and computes only the window of a local layer.
    """
    config = model.config
    if not _packable("modernbert_path", requested, model, config.model_type == "modernbert"):
        return model
    if requested == "auto" and config._attn_implementation == "flash_attention_2":
        return model
    weight = next(model.parameters())
    head_dim = config.hidden_size // config.num_attention_heads
    flash = varlen.usable(weight.device, weight.dtype, head_dim, local=True)
    log.info(
        "ModernBERT runs on packed tokens with windowed local attention (%s)",
        "flash varlen attention" if flash else "masked attention",
    )
    return PackedModernBert(model)


def pick_bert_path(model: Any, requested: str) -> Any:
    """``model`` itself or its packed pass for a BERT-style model (BERT, RoBERTa,
    XLM-RoBERTa, DistilBERT, MPNet: bert_packed.py).

    ``auto`` packs: skipping the padding pays for the gather and scatter around
    attention. In bfloat16 on a CPU that holds only with the packed rows bucketed
    (row_buckets.py); before, kernels built for each new token count made the packed
    pass serve fewer texts than transformers' padded one (docs/benchmarks.md,
    "Bucketed row counts in bfloat16 (CPU)").
    """
    if not _packable("bert_path", requested, model, packs(model.config)):
        return model
    log.info(
        "%s runs its projections and feed-forward layers on packed tokens",
        model.config.model_type,
    )
    return PackedBert(model)
