"""Vectors from a running server equal sentence-transformers' for the same texts."""

from __future__ import annotations

import numpy as np

from embedserve.client import EmbedClient

WORDS = [
    "embedding",
    "servers",
    "batch",
    "requests",
    "from",
    "many",
    "clients",
    "so",
    "that",
    "the",
    "model",
    "sees",
    "full",
    "batches",
    "while",
    "every",
    "caller",
    "still",
    "gets",
    "its",
    "own",
    "vector",
    "back",
    "quickly",
    "and",
    "in",
    "order",
]


def mixed_texts(count: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 220, size=count)
    return [" ".join(rng.choice(WORDS, size=int(n))) for n in lengths]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_embed_matches_sentence_transformers(minilm_server, sentence_transformer) -> None:
    texts = [*mixed_texts(60), "a", "Hello, World!", "naïve café — ünïcode ✓"]
    reference = sentence_transformer.encode(texts, normalize_embeddings=True)
    with EmbedClient(minilm_server.target) as client:
        vectors = client.embed(texts, batch_size=16)
    assert vectors.shape == reference.shape == (len(texts), 384)
    assert cosines(vectors, reference).min() >= 0.99999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embed_stream_matches_sentence_transformers(minilm_server, sentence_transformer) -> None:
    texts = mixed_texts(90, seed=11)
    reference = sentence_transformer.encode(texts, normalize_embeddings=True)
    with EmbedClient(minilm_server.target) as client:
        vectors = np.stack(list(client.embed_iter(iter(texts), batch_size=7, max_in_flight=3)))
    assert vectors.shape == reference.shape
    assert cosines(vectors, reference).min() >= 0.99999


def test_matryoshka_dimensions_truncate_then_renormalise(
    minilm_server, sentence_transformer
) -> None:
    texts = mixed_texts(5, seed=3)
    full = sentence_transformer.encode(texts, normalize_embeddings=True)
    with EmbedClient(minilm_server.target) as client:
        small = client.embed(texts, dimensions=64)
        raw = client.embed(texts, dimensions=64, normalize=False)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    assert small.shape == (5, 64)
    assert np.abs(small - expected).max() < 1e-5
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert cosines(raw, expected).min() >= 0.99999
