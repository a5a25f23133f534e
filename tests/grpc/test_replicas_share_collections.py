"""Two servers on one Qdrant server: what one replica changes, the other sees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from embedserve.client import EmbedClient

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
