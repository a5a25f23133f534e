"""Bucketed row counts: few sizes, little waste, and only where oneDNN builds kernels per shape."""

from __future__ import annotations

import torch

from embedserve.server.row_buckets import bucket_rows, bucketed


def test_bucket_sizes_are_few_and_waste_little() -> None:
    assert len({bucket_rows(count) for count in range(1, 16_385)}) <= 64
    for count in range(1, 20_000):
        rows = bucket_rows(count)
        assert rows >= count
        assert rows - count < 16 or rows <= count * 9 / 8, count
        assert bucket_rows(rows) == rows  # a bucket size is its own bucket
    assert bucket_rows(16_384) == 16_384


def test_only_reduced_precision_on_a_cpu_is_bucketed() -> None:
    cpu = torch.device("cpu")
    assert bucketed(cpu, torch.bfloat16) and bucketed(cpu, torch.float16)
    assert not bucketed(cpu, torch.float32)
    assert not bucketed(torch.device("cuda"), torch.bfloat16)
