"""A collection's settings on a Qdrant server as the server has them now: other clients may
re-create the collection, patch its config or add and drop payload indexes, and a store
that cached or saved the settings at creation must not go on from those."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from connectors_testdata import unit_vectors

from embedserve.connectors import (
    CollectionSpec,
    CollectionUpdate,
    FacetHit,
    InvalidRequest,
    PayloadIndexKind,
    PointRecord,
    RemoteStore,
    document_terms,
    query_terms,
)
from embedserve.connectors.errors import SettingsChanged
from embedserve.connectors.spec_cache import SpecCache

DIM = 4
VECTORS = unit_vectors(np.random.default_rng(5), 4, DIM)
KEYWORD = PayloadIndexKind.KEYWORD


def connect(server: Any) -> RemoteStore:
    return RemoteStore.connect(server.url, api_key=server.api_key, grpc_port=server.grpc_port)


def test_a_collection_re_created_with_bm25_elsewhere_takes_keywords_at_once(
    qdrant_server: Any,
) -> None:
    with connect(qdrant_server) as b, connect(qdrant_server) as other:
        b.create_collection(CollectionSpec("k5", vector_size=DIM))
        b.upsert("k5", [PointRecord("a", VECTORS[0])])  # b has k5's settings: no bm25
        other.delete_collection("k5")
        other.create_collection(CollectionSpec("k5", vector_size=DIM, bm25=True))

        terms = document_terms("the rocket reached orbit")
        b.upsert("k5", [PointRecord("b", VECTORS[1], keywords=terms)])
        hits = b.search("k5", None, keywords=query_terms("rocket"))
        assert [h.id for h in hits] == ["b"]


def test_a_collection_re_created_without_bm25_elsewhere_says_so(qdrant_server: Any) -> None:
    terms = document_terms("the rocket reached orbit")
    with connect(qdrant_server) as b, connect(qdrant_server) as other:
        b.create_collection(CollectionSpec("k5", vector_size=DIM, bm25=True))
        b.upsert("k5", [PointRecord("a", VECTORS[0], keywords=terms)])
        other.delete_collection("k5")
        other.create_collection(CollectionSpec("k5", vector_size=DIM))

        # Not the server's "Not existing vector name": a refusal a caller can act on.
        with pytest.raises(SettingsChanged, match="'k5' has no bm25 keyword vectors"):
            b.upsert("k5", [PointRecord("b", VECTORS[1], keywords=terms)])
        with pytest.raises(SettingsChanged, match="'k5' has no bm25 keyword vectors"):
            b.search("k5", VECTORS[0], keywords=query_terms("rocket"))
        b.upsert("k5", [PointRecord("b", VECTORS[1])])
        assert b.count("k5") == 1


def test_payload_indexes_added_and_dropped_on_the_server_are_seen(qdrant_server: Any) -> None:
    with connect(qdrant_server) as store:
        store.create_collection(
            CollectionSpec("tags", vector_size=DIM, payload_indexes={"kept": KEYWORD})
        )
        points = [PointRecord(f"p{n}", VECTORS[n], {"tag": "x", "kept": "y"}) for n in range(3)]
        store.upsert("tags", points)
        assert store.facet("tags", "kept") == [FacetHit("y", 3)]  # its settings are cached

        qdrant_server.request(
            "PUT",
            "/collections/tags/index?wait=true",
            {"field_name": "tag", "field_schema": KEYWORD},
        )
        assert store.facet("tags", "tag") == [FacetHit("x", 3)]
        indexes = store.get_collection("tags").spec.payload_indexes
        assert indexes == {"kept": KEYWORD, "tag": KEYWORD}

        qdrant_server.request("DELETE", "/collections/tags/index/kept?wait=true")
        with pytest.raises(InvalidRequest, match="needs a keyword, integer or bool payload index"):
            store.facet("tags", "kept")
        assert store.get_collection("tags").spec.payload_indexes == {"tag": KEYWORD}


def test_settings_patched_on_the_server_read_back_as_they_are(qdrant_server: Any) -> None:
    with connect(qdrant_server) as store:
        store.create_collection(CollectionSpec("tuned", vector_size=DIM, hnsw_ef=100))
        qdrant_server.request(
            "PATCH",
            "/collections/tuned",
            {
                "params": {"replication_factor": 2, "write_consistency_factor": 2},
                "hnsw_config": {"m": 12},
            },
        )
        spec = store.get_collection("tuned").spec
        assert (spec.replication_factor, spec.write_consistency_factor) == (2, 2)
        assert spec.hnsw_m == 12
        assert spec.hnsw_ef == 100  # the server does not keep it: the saved spec does


def test_an_index_saved_in_the_metadata_but_missing_on_the_server_is_built_on_update(
    qdrant_server: Any,
) -> None:
    """As after a create that timed out and was committed later without its indexes."""
    with connect(qdrant_server) as store:
        store.create_collection(
            CollectionSpec("half", vector_size=DIM, payload_indexes={"tag": KEYWORD})
        )
        store.upsert("half", [PointRecord("a", VECTORS[0], {"tag": "x"})])
        qdrant_server.request("DELETE", "/collections/half/index/tag?wait=true")
        metadata = qdrant_server.request("GET", "/collections/half")["config"]["metadata"]
        assert metadata["embedserve_spec"]["payload_indexes"] == {"tag": "keyword"}

        assert store.get_collection("half").spec.payload_indexes == {}
        with pytest.raises(InvalidRequest, match="needs a keyword, integer or bool payload index"):
            store.facet("half", "tag")
        store.update_collection("half", CollectionUpdate(add_payload_indexes={"tag": KEYWORD}))
        schema = qdrant_server.request("GET", "/collections/half")["payload_schema"]
        assert {k: v["data_type"] for k, v in schema.items()} == {"tag": "keyword"}
        assert store.facet("half", "tag") == [FacetHit("x", 1)]


@pytest.mark.parametrize(
    ("layout", "field"),
    [
        ({"shard_number": 257}, "shard_number"),
        # A server out of distributed mode is one node.
        ({"replication_factor": 2}, "replication_factor"),
        ({"write_consistency_factor": 2}, "write_consistency_factor"),
    ],
)
def test_a_layout_the_server_would_not_honour_is_refused_by_name(
    qdrant_server: Any, layout: dict[str, int], field: str
) -> None:
    with connect(qdrant_server) as store:
        with pytest.raises(InvalidRequest, match=f"^{field} must be at most"):
            store.create_collection(CollectionSpec("wide", vector_size=DIM, **layout))
        assert store.list_collections() == []


def test_local_mode_refuses_the_layouts_that_need_no_server() -> None:
    with RemoteStore.local() as store:
        with pytest.raises(InvalidRequest, match=r"^shard_number must be at most 256"):
            store.create_collection(CollectionSpec("c", vector_size=DIM, shard_number=257))
        spec = CollectionSpec(
            "c", vector_size=DIM, replication_factor=2, write_consistency_factor=3
        )
        with pytest.raises(InvalidRequest, match=r"^write_consistency_factor .* \(2\)"):
            store.create_collection(spec)
        store.create_collection(CollectionSpec("c", vector_size=DIM, replication_factor=9))


def test_cached_settings_expire() -> None:
    now = [0.0]
    cache = SpecCache(5.0, clock=lambda: now[0])
    forever = SpecCache(None, clock=lambda: now[0])
    spec = CollectionSpec("c", vector_size=DIM)
    cache.put("c", spec)
    forever.put("c", spec)
    now[0] = 4.9
    assert cache.get("c") == spec
    now[0] = 5.0
    assert cache.get("c") is None
    assert forever.get("c") == spec
