"""A fingerprint of the served model's files, recorded in the collections it creates.

Vectors are comparable only with vectors of the same model: a query embedded by one
model finds nothing meaningful among another's documents, even at the same vector size
(a fine-tuned copy, another 384-d model), and nothing fails to say so. The fingerprint
is the same for the same files wherever their folder lies and whichever backend runs
them (float32, bfloat16, int8, ONNX: approximations of one model), and differs for other
weights, tokenizer or settings.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

# What makes a model's vectors: weights, tokenizer files, configs (pooling, Dense heads).
MODEL_FILE_SUFFIXES = frozenset({".safetensors", ".bin", ".json", ".txt", ".model"})
# Files beside the model that say how it was made, not what it computes (timings differ
# between runs that write the same weights).
FINETUNE_REPORT = "finetune-report.json"
NOT_MODEL_FILES = frozenset({FINETUNE_REPORT})
# The start of a weights file names and holds its first tensors (embeddings included):
# enough to tell weights apart without reading gigabytes at every start.
HEAD_BYTES = 16 << 20


@functools.cache
def model_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        hidden = any(part.startswith(".") for part in relative.split("/"))
        kept = path.suffix in MODEL_FILE_SUFFIXES and relative not in NOT_MODEL_FILES
        if hidden or not kept or not path.is_file():
            continue
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as fh:
            digest.update(fh.read(HEAD_BYTES))
    return digest.hexdigest()[:16]
