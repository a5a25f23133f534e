"""Encoders beyond BERT and ModernBERT serve what sentence-transformers computes, up to
the longest text their positions allow.

XLM-RoBERTa (multilingual-e5, bge-m3) counts positions from the padding id + 1, so its
last usable one is not ``max_position_embeddings``; MPNet (all-mpnet-base-v2) counts the
same way and, like DeBERTa-v2, has no sdpa attention in transformers, which the loader
asked for and which failed the load; T5 (sentence-t5, gtr-t5) is an encoder-decoder,
whose encoder alone serves; Qwen3 (Qwen3-Embedding) is a decoder, pooled by its last
token. DistilBERT, MPNet and XLM-RoBERTa run on the packed pass (bert_packed.py), the
others on transformers' own. A folder with code of its own (nomic-embed,
jina-embeddings) loads only with ``trust_remote_code``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.server.bert_packed import PACKED_TYPES, PackedBert
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.similarity import cosine
from embedserve.v1 import embedding_pb2 as pb

POSITIONS = 130
TEXTS = ["what is a vector database", "cats sleep for most of the day, often in the sun"]
LONG_TEXT = " ".join(f"word{i % 50}" for i in range(400))  # far past every model's positions
# Sizes an architecture does not derive from the shared ones (grouped-query attention).
OWN_SIZES = {"qwen3": {"num_key_value_heads": 2, "head_dim": 8}}


def build(folder: Path, minilm_path: Path, model_type: str) -> Path:
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = AutoConfig.for_model(
        model_type,
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        **OWN_SIZES.get(model_type, {}),
    )
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("model_type", "max_tokens"),
    [
        ("xlm-roberta", POSITIONS - 1),  # from the padding id (here 0) + 1
        ("mpnet", POSITIONS - 2),  # from its fixed padding index 1, + 1
        ("distilbert", POSITIONS),
        ("deberta-v2", POSITIONS),
        ("t5", POSITIONS),  # an encoder-decoder: its encoder serves
        ("qwen3", POSITIONS),  # a decoder (Qwen3-Embedding): causal attention
    ],
)
def test_architecture_serves_sentence_transformers_vectors_up_to_its_last_position(
    start_server, tmp_path: Path, minilm_path: Path, model_type: str, max_tokens: int
) -> None:
    from sentence_transformers import SentenceTransformer

    folder = build(tmp_path / model_type, minilm_path, model_type)
    server = start_server(model=str(folder))
    assert server.server.model.spec.max_tokens == max_tokens
    # bert_path auto: the BERT-style families run packed, the others as transformers does.
    assert isinstance(server.server.model._model, PackedBert) == (model_type in PACKED_TYPES)
    with EmbedClient(server.target) as client:
        got = client.embed([*TEXTS, LONG_TEXT])
    reference = SentenceTransformer(str(folder), device="cpu")
    reference.max_seq_length = max_tokens  # its own default, the table's size, fails here
    want = reference.encode([*TEXTS, LONG_TEXT])
    assert cosine(np.asarray(got), np.asarray(want)).min() >= 0.9999


def test_a_decoder_pooled_by_its_last_token_serves_sentence_transformers_vectors(
    start_server, tmp_path: Path, minilm_path: Path
) -> None:
    """Texts of different lengths in one batch: each pooled at its own last real token,
    not at the batch's padding."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    folder = build(tmp_path / "qwen3", minilm_path, "qwen3")
    transformer = models.Transformer(str(folder))
    pool = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    reference = SentenceTransformer(modules=[transformer, pool, models.Normalize()])
    reference.save(str(folder))
    server = start_server(model=str(folder))
    texts = [*TEXTS, "hi"]
    with EmbedClient(server.target) as client:
        assert client.model_info().pooling == pb.POOLING_LAST_TOKEN
        got = client.embed(texts)
    assert np.abs(got - reference.encode(texts)).max() < 1e-5


# A model type transformers does not know, defined by the folder's own code.
CUSTOM_CONFIG = """from transformers import BertConfig


class TinyCustomConfig(BertConfig):
    model_type = "tiny-custom-encoder"
"""
CUSTOM_MODEL = """from transformers import BertModel

from .configuration_tiny import TinyCustomConfig


class TinyCustomModel(BertModel):
    config_class = TinyCustomConfig
"""


def test_a_folder_with_its_own_code_loads_only_when_trusted(
    start_server, tmp_path: Path, minilm_path: Path
) -> None:
    plain = build(tmp_path / "plain", minilm_path, "bert")
    custom = build(tmp_path / "custom", minilm_path, "bert")  # the same weights
    (custom / "configuration_tiny.py").write_text(CUSTOM_CONFIG)
    (custom / "modeling_tiny.py").write_text(CUSTOM_MODEL)
    config = json.loads((custom / "config.json").read_text())
    config["model_type"] = "tiny-custom-encoder"
    config["architectures"] = ["TinyCustomModel"]
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinyCustomConfig",
        "AutoModel": "modeling_tiny.TinyCustomModel",
    }
    (custom / "config.json").write_text(json.dumps(config))

    with pytest.raises(ModelLoadError, match="loads only with --trust-remote-code"):
        EncoderModel.load(ModelSettings(model=str(custom), device="cpu"))

    trusted = start_server(model=str(custom), trust_remote_code=True)
    assert type(trusted.server.model._model).__name__ == "TinyCustomModel"
    reference = start_server(model=str(plain))
    with EmbedClient(trusted.target) as client:
        got = client.embed([*TEXTS, LONG_TEXT])
    with EmbedClient(reference.target) as client:
        want = client.embed([*TEXTS, LONG_TEXT])
    assert cosine(np.asarray(got), np.asarray(want)).min() >= 0.9999
