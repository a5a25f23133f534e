"""The model's own similarity function (sentence-transformers' similarity_fn_name) scores
Similarity and picks the distance of a collection created without one, so a model trained
for dot product (msmarco-distilbert-base-tas-b) ranks as it was trained to.

Each folder is written by sentence-transformers itself from the packaged MiniLM, without
Normalize, so that dot product and cosine rank differently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from running_server import free_port

from embedserve.client import EmbedClient
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.similarity import cosine
from embedserve.v1 import vector_pb2 as vpb

QUERY = "what is a vector database"
CANDIDATES = [
    "a database that stores embeddings and finds the nearest ones",
    "cats sleep for most of the day, often in the sun",
    "vectors",
]
PAIRS = [(QUERY, c) for c in CANDIDATES]


def save(folder: Path, minilm_path: Path, similarity_fn_name: str) -> Any:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    transformer = models.Transformer(str(minilm_path))
    pool = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pool], similarity_fn_name=similarity_fn_name, device="cpu"
    )
    model.save(str(folder))
    return model


def test_a_dot_product_model_scores_and_stores_by_dot_product(
    start_server, tmp_path: Path, minilm_path: Path
) -> None:
    reference = save(tmp_path / "dot", minilm_path, "dot")
    server = start_server(model=str(tmp_path / "dot"), http_port=free_port())
    with EmbedClient(server.target) as client:
        assert client.model_info().similarity == "dot"
        pair_scores = client.similarity(pairs=PAIRS)
        ranked = client.similarity(QUERY, CANDIDATES)
        vectors = client.embed([QUERY, *CANDIDATES])
        created = client.create_collection("docs")
        client.upsert("docs", [{"id": i, "text": t} for i, t in enumerate(CANDIDATES)])
        hits = client.search("docs", QUERY, limit=3, exact=True, task="none")
    want = reference.similarity(
        reference.encode([QUERY], convert_to_tensor=True),
        reference.encode(CANDIDATES, convert_to_tensor=True),
    ).numpy()[0]
    np.testing.assert_allclose(pair_scores, want, rtol=1e-4)
    np.testing.assert_allclose(ranked, want, rtol=1e-4)
    # Unnormalised vectors: dot product is not cosine here.
    assert np.abs(pair_scores - cosine(vectors[[0, 0, 0]], vectors[1:])).min() > 1.0

    assert created.config.distance == vpb.DISTANCE_DOT
    assert [hit.score for hit in hits] == pytest.approx(sorted(want, reverse=True), rel=1e-4)

    port = server.server.http.port
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        assert http.get("/api/v1/model").json()["similarity"] == "dot"
        made = http.post("/api/v1/collections", json={"name": "more"}).json()
        assert made["collection"]["config"]["distance"] == "dot"
        named = http.post(
            "/api/v1/collections", json={"name": "cos", "config": {"distance": "cosine"}}
        ).json()
        assert named["collection"]["config"]["distance"] == "cosine"


@pytest.mark.parametrize(
    ("name", "distance"),
    [("euclidean", vpb.DISTANCE_EUCLID), ("manhattan", vpb.DISTANCE_MANHATTAN)],
)
def test_distance_models_score_as_sentence_transformers(
    start_server, tmp_path: Path, minilm_path: Path, name: str, distance: int
) -> None:
    reference = save(tmp_path / name, minilm_path, name)
    server = start_server(model=str(tmp_path / name))
    with EmbedClient(server.target) as client:
        assert client.model_info().similarity == name
        scores = client.similarity(pairs=PAIRS)
        created = client.create_collection("docs")
    a = reference.encode([a for a, _ in PAIRS], convert_to_tensor=True)
    b = reference.encode([b for _, b in PAIRS], convert_to_tensor=True)
    want = reference.similarity_pairwise(a, b).numpy()
    assert (want < 0).all()  # negated distances: higher is more similar
    np.testing.assert_allclose(scores, want, rtol=1e-4)
    assert created.config.distance == distance


def test_a_cosine_model_says_so(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        assert client.model_info().similarity == "cosine"
        assert client.create_collection("docs").config.distance == vpb.DISTANCE_COSINE


def test_an_unknown_similarity_function_is_refused(tmp_path: Path, minilm_path: Path) -> None:
    folder = tmp_path / "odd"
    save(folder, minilm_path, "cosine")
    config_path = folder / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text())
    config["similarity_fn_name"] = "jaccard"
    config_path.write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()  # refused before the weights load
    with pytest.raises(ModelLoadError, match="similarity_fn_name 'jaccard'"):
        EncoderModel.load(ModelSettings(model=str(folder), device="cpu"))


def test_near_duplicates_in_a_dot_collection_are_found_by_direction(
    start_server, tmp_path: Path, minilm_path: Path
) -> None:
    """A dot model's collection holds vectors not of unit length: the store's scores there
    are dot products, which a cosine threshold cannot judge, so store queries are refused
    and exact blocks (which compare directions) find the pairs a cosine collection gives."""
    import grpc

    save(tmp_path / "dot", minilm_path, "dot")
    server = start_server(model=str(tmp_path / "dot"))
    texts = [
        "the rocket reached orbit on its first try",
        "the rocket reached orbit on its very first try",
        "bake the bread for forty minutes",
        "cats sleep for most of the day",
    ]
    documents = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    with EmbedClient(server.target) as client:
        client.create_collection("dot")  # the model's distance: dot
        client.create_collection("cos", distance="cosine")
        for name in ("dot", "cos"):
            client.upsert(name, documents)
        with pytest.raises(grpc.RpcError) as refused:
            client.find_duplicates("dot", threshold=0.9, method="store_queries")
        exact = client.find_duplicates("dot", threshold=0.9, method="exact_blocks")
        by_cosine = client.find_duplicates("cos", threshold=0.9, method="store_queries")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not of unit length" in refused.value.details()
    assert "EXACT_BLOCKS" in refused.value.details()
    pairs = [(min(p.a, p.b), max(p.a, p.b), round(p.score, 4)) for p in exact.pairs]
    assert pairs == [(min(p.a, p.b), max(p.a, p.b), round(p.score, 4)) for p in by_cosine.pairs]
    assert pairs and pairs[0][:2] == ("0", "1")
