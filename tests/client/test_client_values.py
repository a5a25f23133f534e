"""Python values through the client: payloads come back as written, numpy values go in,
and a vector query may stand where the text does."""

from __future__ import annotations

import numpy as np
import pytest

from embedserve.client import EmbedClient


def test_payloads_come_back_as_written_and_take_numpy_values(minilm_server) -> None:
    payload = {
        "year": np.int64(2024),  # as pandas hands out a column's values
        "score": np.float32(2.5),
        "ratings": np.array([4, 5]),
        "pair": (1, "a"),
        "nested": {"whole": 4.0, "list": [1, 2.5, {"deep": 7}]},
        "flag": True,
        "none": None,
    }
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("values", payload_indexes={"year": "integer"})
        client.upsert("values", [{"id": "d", "text": "a review", "payload": payload}])
        (stored,) = client.get("values", ["d"])
        (hit,) = client.search("values", "a review")
        year = {"must": [{"match": {"key": "year", "integer": 2024}}]}
        matched = client.count("values", filter=year)
        with pytest.raises(ValueError, match="document 'bad': a payload holds JSON values"):
            client.upsert("values", [{"id": "bad", "text": "x", "payload": {"s": {1, 2}}}])
    expected = {
        "year": 2024,
        "score": 2.5,
        "ratings": [4, 5],
        "pair": [1, "a"],
        "nested": {"whole": 4, "list": [1, 2.5, {"deep": 7}]},
        "flag": True,
        "none": None,
    }
    assert stored.payload == expected and hit.payload == expected
    # Whole numbers are ints again (the store keeps them so), not the wire's doubles.
    assert type(stored.payload["year"]) is int and type(hit.payload["nested"]["whole"]) is int
    assert matched == 1


def test_a_vector_may_stand_in_the_texts_place(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("by-vector")
        texts = ["the rocket reached orbit", "bake the bread", "the striker scored"]
        client.upsert("by-vector", [{"id": str(i), "text": t} for i, t in enumerate(texts)])
        query = client.embed("a spacecraft", task="query")[0]
        named = [h.id for h in client.search("by-vector", vector=query.tolist())]
        assert [h.id for h in client.search("by-vector", query)] == named
        assert [h.id for h in client.search("by-vector", query.tolist())] == named
        assert named[0] == "0"
        with pytest.raises(TypeError, match="a text or a vector, not both"):
            client.search("by-vector", query, vector=query)


def test_arguments_the_messages_cannot_hold_are_named_before_sending(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("args")
        for options, name in (({"offset": -1}, "offset"), ({"limit": 2**32}, "limit")):
            with pytest.raises(ValueError, match=f"^{name} must be a whole number"):
                client.search("args", "x", **options)
        for config, name in (({"dimensions": -5}, "dimensions"), ({"hnsw_m": -1}, "hnsw_m")):
            with pytest.raises(ValueError, match=f"^{name} must be a whole number"):
                client.create_collection("args2", **config)
        with pytest.raises(ValueError, match=r"^dimensions must be a whole number.*-1"):
            client.embed(["x"], dimensions=-1)
        with pytest.raises(ValueError, match=r"^top_n must be a whole number.*-1"):
            client.rerank("q", ["d"], top_n=-1)
        for query in (None, 5):
            with pytest.raises(TypeError, match=r"^query must be a string"):
                client.rerank(query, ["d"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^filter: .*matchh"):
            client.search("args", "x", filter={"must": [{"matchh": {"key": "a"}}]})
        both = {"id": "d", "text": "a text", "vector": [0.0] * 384}
        with pytest.raises(ValueError, match="document 'd' takes a text or a vector, not both"):
            client.upsert("args", [both])
        assert client.count("args") == 0
        for call in (
            lambda: client.similarity(),
            lambda: client.similarity("q", ["c"], pairs=[("a", "b")]),
        ):
            with pytest.raises(ValueError, match="a query and its candidates, or pairs"):
                call()
        assert client.similarity(pairs=[("a cat", "a cat")])[0] == pytest.approx(1.0, abs=1e-5)


def test_a_misspelled_choice_is_named_with_the_choices(minilm_server) -> None:
    """As task, pooling or mode are: these four raised a bare KeyError."""
    with EmbedClient(minilm_server.target) as client:
        calls = [
            (lambda: client.create_collection("kx", distance="cosinus"), "distance", "cosine"),
            (
                lambda: client.recommend("kx", positive=["1"], strategy="best"),
                "strategy",
                "best_score",
            ),
            (
                lambda: client.cluster(texts=["a", "b", "c"], algorithm="dbscan"),
                "algorithm",
                "kmeans",
            ),
            (lambda: client.find_duplicates(texts=["a", "b"], method="exact"), "method", "auto"),
        ]
        for call, what, valid in calls:
            with pytest.raises(ValueError, match=f"^{what} must be one of .*{valid}"):
                call()
        assert "kx" not in client.list_collections()
