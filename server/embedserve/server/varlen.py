"""Flash attention over packed sequences on a GPU: torch's ``varlen_attn``.

The packed ModernBERT pass keeps sequences end to end with no padding. On a GPU
in bfloat16 or float16, torch's variable-length flash attention takes that
layout as it is (cumulative sequence starts) and, where torch gives it a
``window_size``, restricts a local layer to its band inside the kernel, so no
mask is built and no masked-out key is read. Elsewhere (a CPU, float32, an
older torch) ``varlen_attention`` answers None and the caller keeps its own
masked attention.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

FLASH_DTYPES = (torch.bfloat16, torch.float16)
MAX_HEAD_DIM = 256  # flash attention's limit

# Set once a call fails on this process's device: later passes keep to the masked path.
_failed: list[str] = []


@functools.cache
def _kernel() -> tuple[Callable[..., Any], bool] | None:
    """(varlen_attn, whether it takes window_size), or None where torch lacks it."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn, "window_size" in inspect.signature(varlen_attn).parameters


def usable(device: torch.device, dtype: torch.dtype, head_dim: int, local: bool) -> bool:
    """Whether ``varlen_attention`` runs attention of this kind (local: banded) here."""
    kernel = _kernel()
    return (
        kernel is not None
        and not _failed
        and device.type == "cuda"
        and dtype in FLASH_DTYPES
        and head_dim <= MAX_HEAD_DIM
        and (kernel[1] or not local)
    )


def varlen_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_length: int,
    reach: int | None,
) -> torch.Tensor | None:
    """Attention within each packed sequence ([T, heads, d] in and out), or None.

    ``cu_seqlens`` [N + 1] (int32) holds the sequences' starts and the total;
    ``reach``: a local layer's band (keys at most ``reach`` positions away on
    either side), None for a global layer. None comes back where the kernel does
    not run this call; the first failure is logged and ends its use.
    """
    if not usable(query.device, query.dtype, query.shape[-1], reach is not None):
        return None
    kernel = _kernel()
    assert kernel is not None  # usable() checked it
    varlen_attn, _ = kernel
    options: dict[str, Any] = {} if reach is None else {"window_size": (reach, reach)}
    try:
        # value is a strided view of the fused qkv projection; the kernel wants rows whole
        q, k, v = (x.contiguous() for x in (query, key, value))
        out: torch.Tensor = varlen_attn(
            q, k, v, cu_seqlens, cu_seqlens, max_length, max_length, **options
        )
        return out
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
        _failed.append(str(exc))
        log.warning("flash varlen attention unavailable (%s): masked attention instead", exc)
        return None


def describe() -> str:
    """Which layers this process runs in flash varlen attention (for benchmark reports)."""
    kernel = _kernel()
    if kernel is None:
        return "not in this torch"
    if _failed:
        return f"failed, masked attention instead: {_failed[0]}"
    return "global and local layers" if kernel[1] else "global layers (no window_size in torch)"
