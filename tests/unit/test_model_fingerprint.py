"""A model's fingerprint covers every byte of its files: two models whose weights agree
in their first 16 MiB (a fine-tune with frozen embeddings) are two models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from embedserve.server.model_identity import former_model_fingerprint, model_fingerprint


def test_weights_that_differ_past_their_first_16_mib_are_another_model(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "bert"}')
    weights = np.random.default_rng(0).bytes(20 << 20)
    (base / "model.safetensors").write_bytes(weights)
    tuned = Path(shutil.copytree(base, tmp_path / "tuned"))
    changed = bytearray(weights)
    changed[18 << 20] ^= 0xFF  # one byte of a late layer
    (tuned / "model.safetensors").write_bytes(bytes(changed))

    assert model_fingerprint(tuned) != model_fingerprint(base)
    assert former_model_fingerprint(tuned) == former_model_fingerprint(base)  # it could not tell
    copy = Path(shutil.copytree(base, tmp_path / "elsewhere"))
    assert model_fingerprint(copy) == model_fingerprint(base)
