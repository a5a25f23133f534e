"""Checks that a packed pass in bfloat16 runs its products on bucketed row counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from embedserve.server.row_buckets import bucket_rows


@contextmanager
def rows_seen(linear: torch.nn.Module) -> Iterator[list[int]]:
    """The row counts of the inputs ``linear`` is called with, collected while inside."""
    seen: list[int] = []

    def record(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append(args[0].reshape(-1, args[0].shape[-1]).shape[0])

    handle = linear.register_forward_pre_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


def check_bucketed_rows(
    packed: Any, linear: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor
) -> None:
    """``packed`` (bfloat16, on the CPU) runs ``linear`` on a bucket's row count when
    bucketed and on the real tokens' when not, and both give the same real tokens."""
    assert packed.bucketed
    keep = mask.bool()
    total = int(keep.sum())
    assert bucket_rows(total) > total  # the batch gets filler rows
    with torch.inference_mode(), rows_seen(linear) as seen:
        bucketed_out = packed(ids, mask).last_hidden_state
        packed.bucketed = False
        exact_out = packed(ids, mask).last_hidden_state
    assert seen == [bucket_rows(total), total]
    assert not bucketed_out[~keep].any()  # padding positions stay zero
    cosines = F.cosine_similarity(bucketed_out[keep].float(), exact_out[keep].float(), dim=-1)
    assert float(cosines.min()) >= 0.9999
