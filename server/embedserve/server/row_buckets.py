"""Token counts rounded up to a few sizes, so a CPU's bfloat16 products meet known shapes.

torch runs a bfloat16 or float16 matrix product on a CPU through oneDNN, which
builds (just-in-time compiles) a kernel for each new shape and keeps a bounded
cache of them. A packed pass multiplies [tokens, hidden] matrices whose token
count is the batch's real tokens: nearly every batch a server cuts brings a new
count, so nearly every pass paid for new kernels (MiniLM in bfloat16, one
thread, batches of 12 to 24 short texts: 14,035 tokens/s on new counts against
19,042 on a repeated batch; bench/row_buckets.py). Padding the packed rows to
one of eight sizes per doubling bounds the shapes (64 sizes up to 16,384
tokens) for at most 16 extra rows or 1/8 more, 4% more on average. float32
products go through MKL, which builds no kernels per shape: they stay exact.
"""

from __future__ import annotations

import torch

_BUCKETED_DTYPES = (torch.bfloat16, torch.float16)
# Rounding stops below this many rows: small counts are few anyway.
FEWEST_STEP = 16
STEPS_PER_DOUBLING = 8


def bucketed(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether packed rows on ``device`` in ``dtype`` gain from bucketed counts."""
    return device.type == "cpu" and dtype in _BUCKETED_DTYPES


def bucket_rows(count: int) -> int:
    """The smallest bucket size >= ``count``: a multiple of 1/8 of its power of two."""
    step = max(FEWEST_STEP, (1 << max(0, count.bit_length() - 1)) // STEPS_PER_DOUBLING)
    return -(-count // step) * step
