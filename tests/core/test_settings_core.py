"""The settings sections the core turns into values: the automatic batch token budget and
the default layout of new collections."""

from __future__ import annotations

import pytest

from embedserve.server.batcher import BatchLimits
from embedserve.server.vector_convert import CollectionLayout


@pytest.mark.parametrize(("device", "budget"), [("cpu", 2048), ("cuda", 16384), ("mps", 2048)])
def test_an_automatic_token_budget_becomes_the_devices(device: str, budget: int) -> None:
    automatic = BatchLimits(max_batch_tokens=0, max_batch_size=7)
    limits = automatic.for_device(device)
    assert limits.max_batch_tokens == budget
    assert limits.max_batch_size == 7  # the rest is kept


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_token_budget_that_was_set_is_kept(device: str) -> None:
    limits = BatchLimits(max_batch_tokens=512)
    assert limits.for_device(device) == limits


def test_the_collection_layout_fills_the_spec_fields_of_its_name() -> None:
    layout = CollectionLayout(
        default_shard_number=3, default_replication_factor=2, default_write_consistency_factor=4
    )
    assert layout.spec_fields() == {
        "shard_number": 3,
        "replication_factor": 2,
        "write_consistency_factor": 4,
    }
