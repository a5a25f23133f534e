"""Attention on a CPU in bfloat16 with the key length padded to a multiple of 16.

torch's CPU flash-attention kernel runs bfloat16 products much slower when the
key length is not a multiple of 16: at 40 lengths from 12 to 256 tokens (12 heads,
about 1,440 tokens per batch, one thread) the same attention took 1.31x less CPU
time in all with heads of 32 and 1.30x with heads of 64 when its keys and values
were padded to the next multiple of 16 and the padding masked out. float32 gained
nothing (1.00x and 0.90x), so it is left as it is (docs/benchmarks.md, "Attention
with aligned keys (CPU)"). Masked keys get no weight, so the output is the same up
to rounding.

``ALIGNED_SDPA`` is registered with transformers as an attention implementation
(and its masks as sdpa's), so any model with sdpa support can load with it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

KEY_MULTIPLE = 16
ALIGNED_SDPA = "sdpa_aligned_keys"
_PADDED_DTYPES = (torch.bfloat16, torch.float16)


def pads_keys(query: torch.Tensor) -> bool:
    """Whether attention on ``query``'s device and dtype gains from aligned keys."""
    return query.device.type == "cpu" and query.dtype in _PADDED_DTYPES


def align_keys(
    key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``key`` and ``value`` ([..., keys, d]) padded to a multiple of ``KEY_MULTIPLE``
    keys, and a mask (boolean or additive, broadcast over [..., queries, keys]) that
    hides the padding; unchanged when already aligned."""
    length = key.shape[-2]
    if torch.compiler.is_compiling():
        # The length is symbolic there: a pad that may be 0 would compile a second graph
        # for aligned lengths, so aligned keys get a whole block of padding instead.
        pad = KEY_MULTIPLE - length % KEY_MULTIPLE
    else:
        pad = -length % KEY_MULTIPLE
        if pad == 0:
            return key, value, mask
    key = F.pad(key, (0, 0, 0, pad))
    value = F.pad(value, (0, 0, 0, pad))
    if mask is None:
        keep = torch.arange(length + pad, device=key.device) < length
        mask = keep.view(*[1] * (key.dim() - 1), -1)
    elif mask.dtype == torch.bool:
        mask = F.pad(mask, (0, pad), value=False)
    else:
        mask = F.pad(mask, (0, pad), value=torch.finfo(mask.dtype).min)
    return key, value, mask


def aligned_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' sdpa attention, with aligned keys where that is faster.

    Causal attention without a mask is left as it is: its mask is implied by
    ``is_causal``, and a padding mask would turn that off."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal
    groups = getattr(module, "num_key_value_groups", 1)
    simple = kwargs.get("position_bias") is None and groups == 1
    if pads_keys(query) and simple and not (causal and attention_mask is None):
        key, value, attention_mask = align_keys(key, value, attention_mask)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register_aligned_sdpa() -> str:
    """Make ``ALIGNED_SDPA`` an attention implementation transformers can load; its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ALIGNED_SDPA, aligned_sdpa_forward)
    AttentionMaskInterface.register(ALIGNED_SDPA, sdpa_mask)
    return ALIGNED_SDPA
