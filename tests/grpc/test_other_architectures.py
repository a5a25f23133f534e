"""Encoders beyond BERT and ModernBERT serve what sentence-transformers computes, up to
the longest text their positions allow.

XLM-RoBERTa (multilingual-e5, bge-m3) counts positions from the padding id + 1, so its
last usable one is not ``max_position_embeddings``; MPNet (all-mpnet-base-v2) counts the
same way and, like DeBERTa-v2, has no sdpa attention in transformers, which the loader
asked for and which failed the load; T5 (sentence-t5, gtr-t5) is an encoder-decoder,
whose encoder alone serves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.server.similarity import cosine

POSITIONS = 130
TEXTS = ["what is a vector database", "cats sleep for most of the day, often in the sun"]
LONG_TEXT = " ".join(f"word{i % 50}" for i in range(400))  # far past every model's positions


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
        ("deberta-v2", POSITIONS),
        ("t5", POSITIONS),  # an encoder-decoder: its encoder serves
    ],
)
def test_architecture_serves_sentence_transformers_vectors_up_to_its_last_position(
    start_server, tmp_path: Path, minilm_path: Path, model_type: str, max_tokens: int
) -> None:
    from sentence_transformers import SentenceTransformer

    folder = build(tmp_path / model_type, minilm_path, model_type)
    server = start_server(model=str(folder))
    assert server.server.model.spec.max_tokens == max_tokens
    with EmbedClient(server.target) as client:
        got = client.embed([*TEXTS, LONG_TEXT])
    reference = SentenceTransformer(str(folder), device="cpu")
    reference.max_seq_length = max_tokens  # its own default, the table's size, fails here
    want = reference.encode([*TEXTS, LONG_TEXT])
    assert cosine(np.asarray(got), np.asarray(want)).min() >= 0.9999
