"""Two servers on one Qdrant server: what one replica changes, the other sees."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.connectors.spec_cache import SETTINGS_TTL_S

DOCS = [
    {"id": "1", "text": "the rocket reached orbit"},
    {"id": "2", "text": "bake the bread for forty minutes"},
]


def test_a_collection_remade_elsewhere_at_another_size_is_used_at_its_new_size(
    start_server, minilm_model, qdrant_server
) -> None:
    """Replica A caches each collection's vector size; replica B deletes the collection and
    makes it again at another size. A's next write or query embeds at the new size, with no
    error for its caller."""
    first = start_server(loaded=minilm_model, **qdrant_server.settings())
    second = start_server(loaded=minilm_model, **qdrant_server.settings())
    with EmbedClient(first.target) as a, EmbedClient(second.target) as b:
        a.create_collection("shared")
        a.upsert("shared", DOCS)  # A now knows "shared" as 384-d
        sizes = iter([128, 64, 256, 32, 96])

        def remade_elsewhere(then: Callable[[], Any]) -> Any:
            size = next(sizes)
            b.delete_collection("shared")
            b.create_collection("shared", dimensions=size)
            b.upsert("shared", DOCS)
            answer = then()
            assert b.get_collection("shared").config.dimensions == size
            return answer

        remade_elsewhere(lambda: a.upsert("shared", [{"id": "3", "text": "a goal"}]))
        assert sorted(d.id for d in b.get("shared", ["1", "2", "3"])) == ["1", "2", "3"]
        acks = remade_elsewhere(lambda: list(a.ingest_iter("shared", DOCS, batch_size=1)))
        assert acks[-1].total_acknowledged == 2
        hits = remade_elsewhere(lambda: a.search("shared", "space travel", limit=1))
        assert [h.id for h in hits] == ["1"]
        liked = remade_elsewhere(
            lambda: a.recommend("shared", positive=[{"text": "baking"}], limit=1)
        )
        assert [h.id for h in liked] == ["2"]
        # A vector of the new size is taken, though A had cached the old one.
        vector = np.full(96, 0.1)
        remade_elsewhere(lambda: a.upsert("shared", [{"id": "v", "vector": vector}]))
        assert b.count("shared") == 3


def test_a_collection_remade_elsewhere_with_or_without_bm25_is_used_as_it_is_now(
    start_server, minilm_model, qdrant_server
) -> None:
    """Replica B deletes a collection A has written to and makes it again with bm25, then
    without, then with: A's keyword search, writes and layout checks follow."""
    first = start_server(loaded=minilm_model, **qdrant_server.settings())
    second = start_server(loaded=minilm_model, **qdrant_server.settings())
    with EmbedClient(first.target) as a, EmbedClient(second.target) as b:
        a.create_collection("k5")
        a.upsert("k5", DOCS)  # A now knows "k5" as a collection without bm25

        def remade_elsewhere(**config: Any) -> None:
            b.delete_collection("k5")
            b.create_collection("k5", **config)

        remade_elsewhere(bm25=True)
        b.upsert("k5", DOCS)
        hits = a.search("k5", "rocket", mode="keyword", limit=1)
        assert [h.id for h in hits] == ["1"]

        # A's next write is made for bm25: made again without keyword vectors, no error.
        remade_elsewhere()
        a.upsert("k5", DOCS)
        assert b.count("k5") == 2

        # A's GetCollection reads the settings afresh for A's next write too.
        remade_elsewhere(bm25=True)
        assert a.get_collection("k5").config.bm25
        a.upsert("k5", [{"id": "3", "text": "a rocket launch"}])
        assert [h.id for h in b.search("k5", "rocket", mode="keyword")] == ["3"]

        # Unasked, A reads them again after a few seconds: its writes carry keyword vectors.
        remade_elsewhere(bm25=True)
        time.sleep(SETTINGS_TTL_S)
        a.upsert("k5", [{"id": "4", "text": "a rocket launch"}])
        assert [h.id for h in b.search("k5", "rocket", mode="keyword")] == ["4"]

        with pytest.raises(grpc.RpcError) as refused:
            a.create_collection("wide", shard_number=257)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "shard_number must be at most" in refused.value.details()
