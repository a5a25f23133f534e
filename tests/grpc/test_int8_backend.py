"""The int8 CPU backend: its smoothing, and a server on --backend torch-int8 against
float32 MiniLM."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from labelled_corpus import QUERIES, documents, embed_local, normalised, precision_at_10

from embedserve.client import EmbedClient
from embedserve.server.backends import int8_layers
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.smoothing import SmoothedLinear, calibration_inputs, input_ranges, smooth
from embedserve.server.windows import Window


def test_smoothing_keeps_float_outputs_and_narrows_the_outlier_channels(minilm_path) -> None:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path).eval()
    original = copy.deepcopy(model)
    layers = int8_layers(model)
    before = input_ranges(model, layers, calibration_inputs(tokenizer, len(tokenizer), 512))

    wrapped = smooth(model, layers, tokenizer)

    assert len(wrapped) == len(layers) == 31  # 6 layers x 5, and the pooler
    assert all(isinstance(model.get_submodule(name), SmoothedLinear) for name in layers)
    inner = {name: model.get_submodule(name) for name in wrapped}
    after = input_ranges(model, inner, calibration_inputs(tokenizer, len(tokenizer), 512))
    # The first feed-forward input: one channel 15x the median before, under 4x after.
    spread = {
        name: float(ranges.max() / ranges.median())
        for name, ranges in (*before.items(), *after.items())
    }
    first_ffn = "encoder.layer.0.intermediate.dense"
    assert spread[first_ffn] > 10 and spread[f"{first_ffn}.linear"] < 4
    # In float32 the scaling is exact: the same hidden states.
    encoded = tokenizer(["a short text", "another, longer than the first one"], padding=True)
    inputs = {key: torch.tensor(value) for key, value in encoded.items()}
    with torch.no_grad():
        smoothed = model(**inputs).last_hidden_state
        plain = original(**inputs).last_hidden_state
    assert float((smoothed - plain).abs().max()) < 1e-4


def test_int8_runs_modernbert_close_to_float32(tiny_modernbert_path: Path) -> None:
    def load(backend: str) -> EncoderModel:
        return EncoderModel.load(
            ModelSettings(model=str(tiny_modernbert_path), device="cpu", backend=backend)
        )

    windows = [Window(tuple(range(1000, 1000 + n)), 0) for n in (7, 40, 130)]
    int8, fp32 = load("torch-int8"), load("torch")
    got, want = np.stack(int8.compute(windows)), np.stack(fp32.compute(windows))
    cosines = (normalised(got) * normalised(want)).sum(axis=1)
    # Random weights have no outlier channels: int8 stays very close (measured 0.99999).
    assert cosines.min() > 0.999
    assert not np.allclose(got, want, atol=1e-6)  # int8 products really ran


def test_int8_vectors_match_float32_and_keep_retrieval_quality(start_server, minilm_model) -> None:
    server = start_server(backend="torch-int8")
    texts = [str(d["text"]) for d in documents()]
    queries = [q for q, _ in QUERIES]
    with EmbedClient(server.target) as client:
        int8_docs = normalised(client.embed(texts, task="document"))
        int8_queries = normalised(client.embed(queries, task="query"))
        info = client.model_info()
    # The fingerprint is the model's on every backend; the backend tells int8 apart.
    assert info.backend == "torch-int8" and info.dtype == "float32"
    fp32_docs = normalised(np.stack([r for r in embed_local(minilm_model, texts)]))
    fp32_queries = normalised(np.stack([r for r in embed_local(minilm_model, queries)]))

    cosines = np.concatenate(
        [(int8_docs * fp32_docs).sum(axis=1), (int8_queries * fp32_queries).sum(axis=1)]
    )
    # The quality bound for int8: every text at 0.99 or more. Without smoothing the
    # lowest was 0.98 (0.95 on longer texts).
    assert cosines.min() >= 0.99
    assert cosines.mean() >= 0.995
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


def test_int8_calibrates_a_roberta_within_its_positions(minilm_path, tmp_path: Path) -> None:
    """RoBERTa's positions count from its padding id + 1: calibrating at the config's
    max_position_embeddings tokens read past its position table, and the load crashed
    (for models of fewer than 130 positions, where calibration reaches the end)."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=66,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=1,
    )
    torch.manual_seed(0)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    model = EncoderModel.load(
        ModelSettings(model=str(tmp_path), device="cpu", backend="torch-int8")
    )
    assert model.spec.max_tokens == 66 - (tokenizer.pad_token_id + 1)
    (vector,) = model.compute([Window(tuple(range(1000, 1000 + model.spec.max_tokens)), 0)])
    assert np.isfinite(vector).all()
