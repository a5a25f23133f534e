"""Attention with aligned keys: keys and values padded to a multiple of 16, the padding
masked out, gives sdpa's output, compiles one graph for every length, leaves causal
attention alone, and is what a model on the CPU loads with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

from embedserve.server import model as model_module
from embedserve.server.attention import (
    ALIGNED_SDPA,
    KEY_MULTIPLE,
    align_keys,
    aligned_sdpa_forward,
)
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.similarity import cosine
from embedserve.server.windows import Window

# bfloat16 products summed in another order round differently: a few units of its last bit.
TOLERANCE = {torch.bfloat16: 2e-2, torch.float32: 1e-5}


def qkv(length: int, dtype: torch.dtype, batch: int = 3) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(length)
    return [torch.randn(batch, 4, length, 32, generator=generator).to(dtype) for _ in range(3)]


def padding_masks(length: int, dtype: torch.dtype) -> dict[str, torch.Tensor | None]:
    keep = torch.ones(3, length, dtype=torch.bool)
    keep[1:, (length + 1) // 2 :] = False  # the first row is the longest, as in a batch
    additive = torch.zeros(3, 1, 1, length, dtype=dtype)
    additive.masked_fill_(~keep[:, None, None, :], torch.finfo(dtype).min)
    return {
        "none": None,
        "boolean": keep[:, None, None, :].expand(3, 1, length, length),
        "additive": additive,
    }


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("length", [1, 15, 16, 17, 37])
def test_aligned_keys_give_sdpas_output(length: int, dtype: torch.dtype) -> None:
    query, key, value = qkv(length, dtype)
    for name, mask in padding_masks(length, dtype).items():
        padded_key, padded_value, padded_mask = align_keys(key, value, mask)
        assert padded_key.shape[-2] % KEY_MULTIPLE == 0, name
        assert padded_key.shape[-2] - length < KEY_MULTIPLE, name
        if length % KEY_MULTIPLE == 0:
            assert padded_key is key and padded_mask is mask, name  # nothing to do
        want = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        got = F.scaled_dot_product_attention(query, padded_key, padded_value, attn_mask=padded_mask)
        assert got.shape == want.shape, name
        torch.testing.assert_close(got, want, atol=TOLERANCE[dtype], rtol=0, msg=name)


def test_compiled_aligned_keys_make_one_graph_for_every_length() -> None:
    def attend(
        query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        key, value, mask = align_keys(key, value, mask)
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)

    compiled = torch.compile(attend, dynamic=True)
    before = int(counters["stats"]["unique_graphs"])
    # A compiled server earlier in the process leaves the stance at eager_on_recompile.
    with torch.compiler.set_stance("default"):
        for length in (8, 16, 24, 37, 48):
            query, key, value = qkv(length, torch.bfloat16)
            mask = padding_masks(length, torch.bfloat16)["boolean"]
            assert mask is not None
            want = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
            got = compiled(query, key, value, mask)
            torch.testing.assert_close(got, want, atol=TOLERANCE[torch.bfloat16], rtol=0)
    # An aligned length takes a whole block of padding rather than a graph of its own.
    assert int(counters["stats"]["unique_graphs"]) - before == 1


class Attention(torch.nn.Module):
    def __init__(self, is_causal: bool) -> None:
        super().__init__()
        self.is_causal = is_causal


def test_unmasked_causal_attention_stays_causal() -> None:
    # Its mask is implied by is_causal: a padding mask would turn that off.
    query, key, value = qkv(13, torch.bfloat16)
    got, _ = aligned_sdpa_forward(Attention(is_causal=True), query, key, value, None)
    want = F.scaled_dot_product_attention(query, key, value, is_causal=True)
    torch.testing.assert_close(got, want.transpose(1, 2), atol=0, rtol=0)
    # Bidirectional: padded, same output.
    got, _ = aligned_sdpa_forward(Attention(is_causal=False), query, key, value, None)
    want = F.scaled_dot_product_attention(query, key, value)
    torch.testing.assert_close(got, want.transpose(1, 2), atol=2e-2, rtol=0)


@pytest.mark.parametrize("encoder", ["minilm", "modernbert"])
def test_a_bfloat16_model_on_the_cpu_loads_with_aligned_keys_and_gives_sdpas_vectors(
    encoder: str,
    minilm_path: Path,
    tiny_modernbert_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ModernBERT's reference pass: transformers' layers, local ones under a band mask.
    folder = minilm_path if encoder == "minilm" else tiny_modernbert_path
    settings = ModelSettings(
        model=str(folder),
        device="cpu",
        dtype="bfloat16",
        modernbert_path="reference",
        bert_path="reference",
    )
    aligned = EncoderModel.load(settings)
    assert aligned._model.config._attn_implementation == ALIGNED_SDPA
    monkeypatch.setattr(model_module, "pick_attention", lambda device: "sdpa")
    reference = EncoderModel.load(settings)
    assert reference._model.config._attn_implementation == "sdpa"
    # lengths around the multiple of 16, one batch of mixed lengths and one alone
    batch = [Window(tuple(range(1000, 1000 + n))) for n in (5, 16, 17, 33, 70, 300)]
    for windows in (batch, batch[-1:]):
        got = np.stack(aligned.compute(windows))
        want = np.stack(reference.compute(windows))
        assert cosine(got, want).min() >= 0.9999
