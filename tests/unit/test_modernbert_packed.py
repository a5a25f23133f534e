"""The packed ModernBERT pass against transformers' own forward pass, on the same weights.

A small ``local_attention`` (16) makes sequences of a few hundred tokens span many
windows. Weights drawn with a wide ``initializer_range`` make attention sharp, so a
window one token too wide or a token that sees another sequence shows up in the
outputs (checked below): with transformers' default 0.02 it barely would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from packed_rows import check_bucketed_rows

from embedserve.server import varlen
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.modernbert_layer import add_product, rotate, rotated_float32
from embedserve.server.modernbert_packed import PackedModernBert, Packing, full_attention
from embedserve.server.packed_paths import pick_modernbert_path
from embedserve.server.windows import Window

MIN_COSINE = 0.9999
MIXED_LENGTHS = [5, 300, 17, 16, 90, 1, 33]  # around and far past the 16-token window


def build_sharp_modernbert(**overrides: object) -> torch.nn.Module:
    from transformers import ModernBertConfig, ModernBertModel

    config = ModernBertConfig(
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=8192,
        local_attention=16,
        global_attn_every_n_layers=3,
        initializer_range=0.2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        attn_implementation="sdpa",
        **overrides,
    )
    torch.manual_seed(0)
    return ModernBertModel(config).eval()


@pytest.fixture(scope="module")
def sharp_modernbert() -> torch.nn.Module:
    return build_sharp_modernbert()


def padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(3, 1000, (length,), generator=generator)
        mask[row, :length] = 1
    return ids, mask


def per_text_cosines(model, packed, lengths: list[int]) -> list[float]:
    ids, mask = padded_batch(lengths)
    with torch.inference_mode():
        reference = model(input_ids=ids, attention_mask=mask).last_hidden_state
        fast = packed(ids, mask).last_hidden_state
    cosines = []
    for row, length in enumerate(lengths):
        token_cos = F.cosine_similarity(reference[row, :length], fast[row, :length], dim=-1)
        cosines.append(float(token_cos.min()))
        assert not fast[row, length:].any(), "padding positions come back as zeros"
    return cosines


def test_mixed_length_batch_equals_reference_per_token(sharp_modernbert) -> None:
    cosines = per_text_cosines(sharp_modernbert, PackedModernBert(sharp_modernbert), MIXED_LENGTHS)
    assert min(cosines) >= MIN_COSINE, cosines


def test_bfloat16_products_run_on_bucketed_rows_that_change_nothing() -> None:
    model = build_sharp_modernbert().to(torch.bfloat16)
    ids, mask = padded_batch(MIXED_LENGTHS)
    check_bucketed_rows(PackedModernBert(model), model.layers[1].mlp.Wi, ids, mask)


def test_layers_with_biases_equal_reference() -> None:
    """Biased linear layers take the module path of ``add_product``, not ``addmm``."""
    model = build_sharp_modernbert(attention_bias=True, mlp_bias=True, norm_bias=True)
    assert model.layers[0].attn.Wo.bias is not None
    cosines = per_text_cosines(model, PackedModernBert(model), MIXED_LENGTHS)
    assert min(cosines) >= MIN_COSINE, cosines


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotate_computes_transformers_rotary_embedding(dtype: torch.dtype) -> None:
    from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

    torch.manual_seed(2)
    qkv = torch.randn(50, 3, 4, 16).to(dtype)  # a fused projection's layout
    cos, sin = (torch.randn(50, 16).to(dtype) for _ in range(2))
    want = apply_rotary_pos_emb(qkv[:, 0], qkv[:, 1], cos, sin, unsqueeze_dim=1)
    pairs = qkv[:, :2].transpose(0, 1)
    got = rotate(pairs, cos, sin)
    # On a GPU the kernels take bfloat16 and float32 inputs together (on a CPU,
    # ``rotate`` copies to float32 first): the same arithmetic, checked here on a CPU.
    mixed = rotated_float32(pairs, cos, sin).to(dtype)
    assert got.dtype == dtype and got.is_contiguous()
    for rotated in (got, mixed):
        for one, expected in zip(rotated, want, strict=True):
            # Both round a float32 result to dtype; the float32 results may differ in
            # their last bit (a multiply-add against a multiply and an add).
            ulp = expected.float().abs() * (2**-7 if dtype == torch.bfloat16 else 2**-23)
            assert ((one.float() - expected.float()).abs() <= ulp + 1e-6).all()


@pytest.mark.parametrize("bias", [False, True])
def test_add_product_adds_the_layer_output(bias: bool) -> None:
    torch.manual_seed(3)
    linear = torch.nn.Linear(8, 6, bias=bias)
    hidden, x = torch.randn(5, 6), torch.randn(5, 8)
    with torch.inference_mode():
        assert torch.allclose(add_product(hidden, linear, x), hidden + linear(x), atol=1e-6)


@pytest.mark.parametrize("block", [4, 8, 64])
def test_block_size_changes_nothing(sharp_modernbert, block: int) -> None:
    packed = PackedModernBert(sharp_modernbert, block=block)
    assert min(per_text_cosines(sharp_modernbert, packed, [300, 47, 9])) >= MIN_COSINE


def test_one_input_of_8192_tokens_equals_reference(sharp_modernbert) -> None:
    cosines = per_text_cosines(sharp_modernbert, PackedModernBert(sharp_modernbert), [8192])
    assert cosines[0] >= MIN_COSINE


def test_comparison_detects_a_window_one_token_too_wide(sharp_modernbert) -> None:
    packed = PackedModernBert(sharp_modernbert)
    packed.reach += 1
    assert min(per_text_cosines(sharp_modernbert, packed, [120])) < 0.99


def test_padded_and_per_sequence_global_attention_agree() -> None:
    torch.manual_seed(1)
    lengths = [7, 40, 1, 23]
    packing = Packing.of(lengths, torch.device("cpu"))
    query, key, value = (torch.randn(sum(lengths), 4, 8) for _ in range(3))
    apart = full_attention(query, key, value, packing, per_sequence=True)
    padded = full_attention(query, key, value, packing, per_sequence=False)
    assert torch.allclose(apart, padded, atol=1e-5)
    # and each sequence saw only itself: the first one alone gives the same rows
    alone = full_attention(query[:7], key[:7], value[:7], Packing.of([7], torch.device("cpu")))
    assert torch.allclose(apart[:7], alone, atol=1e-6)


def test_packing_layout_matches_flash_attention_cumulative_starts() -> None:
    packing = Packing.of([3, 1, 4], torch.device("cpu"))
    assert packing.starts == (0, 3, 4)
    assert packing.cu_seqlens.tolist() == [0, 3, 4, 8]
    assert packing.cu_seqlens.dtype == torch.int32
    assert packing.positions.tolist() == [0, 1, 2, 0, 0, 1, 2, 3]
    assert packing.segment.tolist() == [0, 0, 0, 1, 2, 2, 2, 2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flash_varlen_attention_is_left_to_gpus(dtype: torch.dtype) -> None:
    """On a CPU the masked attention runs: varlen answers None, never a wrong result."""
    packing = Packing.of([5, 9], torch.device("cpu"))
    query = torch.randn(14, 2, 8, dtype=dtype)
    for reach in (None, 2):
        assert not varlen.usable(query.device, dtype, 8, local=reach is not None)
        assert varlen.varlen_attention(query, query, query, packing.cu_seqlens, 9, reach) is None


def test_encoder_model_paths_give_the_same_vectors(tiny_modernbert_path: Path) -> None:
    fast, reference = (
        EncoderModel.load(
            ModelSettings(model=str(tiny_modernbert_path), device="cpu", modernbert_path=path)
        )
        for path in ("fast", "reference")
    )
    assert isinstance(fast._model, PackedModernBert)
    assert not isinstance(reference._model, PackedModernBert)
    windows = [
        Window(tuple(range(1000, 1000 + length)), pool_start=start)
        for length, start in [(500, 0), (12, 2), (77, 0), (3, 0)]
    ]
    windows.append(Window(windows[2].ids, pooling=None))  # per-token vectors too
    for got, want in zip(fast.compute(windows), reference.compute(windows), strict=True):
        cosine = F.cosine_similarity(torch.from_numpy(got), torch.from_numpy(want), dim=-1)
        assert float(cosine.min()) >= MIN_COSINE


def test_auto_picks_packed_for_modernbert_only(sharp_modernbert, minilm_model) -> None:
    assert isinstance(pick_modernbert_path(sharp_modernbert, "auto"), PackedModernBert)
    assert pick_modernbert_path(sharp_modernbert, "reference") is sharp_modernbert
    bert = minilm_model._model
    assert pick_modernbert_path(bert, "auto") is bert
    assert pick_modernbert_path(bert, "fast") is bert  # nothing to pack outside ModernBERT
    with pytest.raises(ModelLoadError, match="modernbert_path"):
        pick_modernbert_path(sharp_modernbert, "quick")


def test_auto_leaves_flash_attention_to_transformers(sharp_modernbert) -> None:
    config = sharp_modernbert.config
    original = config._attn_implementation
    config._attn_implementation = "flash_attention_2"
    try:
        assert pick_modernbert_path(sharp_modernbert, "auto") is sharp_modernbert
        assert isinstance(pick_modernbert_path(sharp_modernbert, "fast"), PackedModernBert)
    finally:
        config._attn_implementation = original
