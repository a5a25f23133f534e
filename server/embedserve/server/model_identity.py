"""A fingerprint of the served model's files, recorded in the collections it creates.

Vectors are comparable only with vectors of the same model: a query embedded by one
model finds nothing meaningful among another's documents, even at the same vector size
(a fine-tuned copy, another 384-d model), and nothing fails to say so. The fingerprint
is the same for the same files wherever their folder lies and whichever backend runs
them (float32, bfloat16, int8, ONNX: approximations of one model), and differs for other
weights, tokenizer or settings.

Fingerprints of the former kind read only the first 16 MiB of each weights file, so two
models of one shape whose early tensors agree (a fine-tune with frozen embeddings) had
the same one. Collections and exports that record such a fingerprint are still taken as
the served model's where it matches (``former_model_fingerprints``): nothing better is
known about them. Before the fine-tuning report was left out of fingerprints, a model
that ``embedserve finetune`` made had its report counted in the former kind: that one
names the model too.
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
# What a fingerprint of the former kind read of each file.
FORMER_HEAD_BYTES = 16 << 20
_CHUNK_BYTES = 8 << 20


@functools.cache
def model_fingerprint(folder: Path) -> str:
    """Of every byte of the model's files (a few seconds for gigabytes, once per start)."""
    return _fingerprint(folder, None)


@functools.cache
def former_model_fingerprints(folder: Path) -> tuple[str, ...]:
    """Those of the former kind: without the fine-tuning report, and, where the folder
    holds one, with it, as releases that counted it recorded."""
    without = _fingerprint(folder, FORMER_HEAD_BYTES)
    if not (folder / FINETUNE_REPORT).is_file():
        return (without,)
    return without, _fingerprint(folder, FORMER_HEAD_BYTES, skipped=frozenset())


def former_model_fingerprint(folder: Path) -> str:
    return former_model_fingerprints(folder)[0]


def fingerprints_of(folder: Path) -> tuple[str, ...]:
    """The fingerprints a collection of the model in ``folder`` may record."""
    return model_fingerprint(folder), *former_model_fingerprints(folder)


def _fingerprint(
    folder: Path, head_bytes: int | None, skipped: frozenset[str] = NOT_MODEL_FILES
) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        hidden = any(part.startswith(".") for part in relative.split("/"))
        kept = path.suffix in MODEL_FILE_SUFFIXES and relative not in skipped
        if hidden or not kept or not path.is_file():
            continue
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as fh:
            if head_bytes is not None:
                digest.update(fh.read(head_bytes))
                continue
            for chunk in iter(lambda: fh.read(_CHUNK_BYTES), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]
