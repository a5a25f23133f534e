"""The packed BERT pass computes what transformers' BERT computes, compiled or not, and
runs only where it applies."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from packed_rows import check_bucketed_rows

from embedserve.server.bert_packed import PackedBert, first_position
from embedserve.server.compiled import CompiledEncoder
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.packed_paths import pick_bert_path
from embedserve.server.similarity import cosine
from embedserve.server.windows import Window

# Lengths of similar short texts and of one long one padded onto short ones.
LENGTHS = (2, 9, 17, 18, 25, 120)


def windows() -> list[Window]:
    rows = [Window(tuple(range(2000 + n, 2000 + 2 * n))) for n in LENGTHS]
    rows.append(Window(rows[2].ids, pool_start=1))
    rows.append(Window(rows[1].ids, pooling=None))  # per-token vectors too
    return rows


def load(minilm_path: Path, dtype: str, path: str) -> EncoderModel:
    return EncoderModel.load(
        ModelSettings(model=str(minilm_path), device="cpu", dtype=dtype, bert_path=path)
    )


def test_the_packed_pass_gives_transformers_vectors_in_float32(
    minilm_model: EncoderModel, minilm_path: Path
) -> None:
    assert isinstance(minilm_model._model, PackedBert)  # auto packs a BERT
    reference = load(minilm_path, "float32", "reference")
    assert not isinstance(reference._model, PackedBert)
    for got, want in zip(
        minilm_model.compute(windows()), reference.compute(windows()), strict=True
    ):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)


def test_the_packed_pass_gives_transformers_vectors_in_bfloat16(minilm_path: Path) -> None:
    packed, reference = (load(minilm_path, "bfloat16", path) for path in ("fast", "reference"))
    assert isinstance(packed._model, PackedBert)
    got = packed.compute(windows())
    want = reference.compute(windows())
    for got_vector, want_vector in zip(got, want, strict=True):
        assert cosine(np.atleast_2d(got_vector), np.atleast_2d(want_vector)).min() >= 0.9999


def tiny_bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=500,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    return BertModel(config).eval()


def tiny_roberta(model_type: str, vocab_size: int = 500, pad_id: int = 1) -> torch.nn.Module:
    """A random RoBERTa or XLM-RoBERTa: positions start after the padding id."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(
        model_type,
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=130,
        pad_token_id=pad_id,
    )
    torch.manual_seed(0)
    return AutoModel.from_config(config).eval()


def tiny_family(model_type: str) -> torch.nn.Module:
    """A random DistilBERT or MPNet (its padding id is always 1, its positions start at 2)."""
    from transformers import AutoConfig, AutoModel

    sizes: dict[str, dict[str, int]] = {
        "distilbert": {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 4, "pad_token_id": 0},
        "mpnet": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "pad_token_id": 1,
        },
    }
    config = AutoConfig.for_model(
        model_type, vocab_size=500, max_position_embeddings=130, **sizes[model_type]
    )
    torch.manual_seed(0)
    model = AutoModel.from_config(config).eval()
    if model_type == "mpnet":  # its bias starts at zero: make it count
        torch.nn.init.normal_(model.encoder.relative_attention_bias.weight, std=1.0)
    return model


def padded_batch(lengths: list[int], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(lengths)
    ids = torch.full((len(lengths), longest), pad_id, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(5, 500, (length,))
    mask = (torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids, mask


def check_like_transformers(
    packed: Any, model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor
) -> None:
    """The packed pass's tokens are transformers' (to float rounding in float32, cosine
    0.999 in bfloat16), and its padding stays zero."""
    got = packed(ids, mask).last_hidden_state
    want = model(input_ids=ids, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    if got.dtype == torch.float32:
        torch.testing.assert_close(got[keep], want[keep], atol=1e-5, rtol=0)
    else:
        cosines = torch.nn.functional.cosine_similarity(
            got[keep].float(), want[keep].float(), dim=-1
        )
        assert float(cosines.min()) >= 0.999
    assert not got[~keep].any()


@pytest.mark.parametrize(
    ("family", "dtype"),
    [("bert", torch.float32), ("bert", torch.bfloat16), ("mpnet", torch.float32)],
)
@torch.inference_mode()
def test_compiled_packed_pass_matches_transformers_and_compiles_only_at_warm_up(
    family: str, dtype: torch.dtype
) -> None:
    """In bfloat16 the filler rows vary with the batch too, and MPNet's position bias with
    its length: no compiling for them either."""
    model = (tiny_bert() if family == "bert" else tiny_family(family)).to(dtype)
    compiled = CompiledEncoder(PackedBert(model))
    compiled.warm_up([torch.get_num_threads()], torch.device("cpu"))
    # Nothing compiles after the warm-up: a call that would needs fails here.
    random_lengths = [int(n) for n in torch.randint(2, 60, (17,))]
    with torch.compiler.set_stance("fail_on_recompile"):
        for lengths in ([7], [2, 40, 13], random_lengths, [33, 5, 5, 60, 1, 18]):
            ids, mask = padded_batch(lengths)
            check_like_transformers(compiled, model, ids, mask)


def test_bfloat16_products_run_on_bucketed_rows_that_change_nothing() -> None:
    model = tiny_bert().to(torch.bfloat16)
    ids, mask = padded_batch([3, 17, 9, 40])
    check_bucketed_rows(PackedBert(model), model.encoder.layer[0].intermediate.dense, ids, mask)


@pytest.mark.parametrize("model_type", ["roberta", "xlm-roberta"])
@torch.inference_mode()
def test_roberta_family_packs_with_positions_after_the_padding_id(model_type: str) -> None:
    model = tiny_roberta(model_type)
    packed = pick_bert_path(model, "auto")
    assert isinstance(packed, PackedBert)
    # The longest text reaches the last position: one off and the table would run out.
    ids, mask = padded_batch([3, 17, 128, 40], pad_id=1)
    ids[3, 5] = ids[3, 9] = 1  # the padding id inside a text: "hello <pad> world"
    got = packed(ids, mask).last_hidden_state
    want = model(input_ids=ids, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type", ["distilbert", "mpnet"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.inference_mode()
def test_distilbert_and_mpnet_pack_as_transformers_runs_them(
    model_type: str, dtype: torch.dtype
) -> None:
    """Their own module names; MPNet's relative position bias in every block's attention."""
    model = tiny_family(model_type).to(dtype)
    packed = pick_bert_path(model, "auto")
    assert isinstance(packed, PackedBert)
    pad_id = model.config.pad_token_id
    longest = 128 if model_type == "mpnet" else 130  # MPNet's positions start at 2
    ids, mask = padded_batch([3, 17, longest, 40, 1], pad_id=pad_id)
    ids[3, 7] = pad_id  # the padding id inside a text
    check_like_transformers(packed, model, ids, mask)


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_a_roberta_takes_texts_as_long_as_its_positions_allow(
    tmp_path: Path, minilm_path: Path, path: str
) -> None:
    """130 position rows, the first (padding id 0) + 1 never a text's: 129 tokens, not 130
    (which failed every such text with 'index out of range')."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    model = tiny_roberta("xlm-roberta", tokenizer.vocab_size, tokenizer.pad_token_id)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load(tmp_path, "float32", path)
    assert loaded.spec.max_tokens == 129
    longest = Window(tuple(range(2000, 2000 + loaded.spec.max_tokens)))
    (vector,) = loaded.compute([longest])
    assert np.isfinite(vector).all() and np.linalg.norm(vector) > 0


def test_first_position_follows_each_embeddings_counting() -> None:
    from transformers import AutoConfig, AutoModel

    def tiny(model_type: str) -> torch.nn.Module:
        config = AutoConfig.for_model(
            model_type, vocab_size=100, hidden_size=32, num_attention_heads=4, pad_token_id=3
        )
        return AutoModel.from_config(config)

    assert first_position(tiny_bert()) == 0
    assert first_position(tiny("xlm-roberta")) == 4  # the padding id + 1
    assert first_position(tiny("mpnet")) == 2  # its padding index is always 1
    assert first_position(tiny("xlm")) == 0  # its `embeddings` is the word table


def test_only_a_plain_bert_encoder_is_packed(tiny_modernbert_path: Path) -> None:
    from transformers import AutoModel, BertConfig, BertModel

    model = tiny_bert()
    assert isinstance(pick_bert_path(model, "auto"), PackedBert)
    assert isinstance(pick_bert_path(model, "fast"), PackedBert)
    assert pick_bert_path(model, "reference") is model
    half = tiny_bert().to(torch.bfloat16)  # AMX's default: packed, on bucketed rows
    assert isinstance(pick_bert_path(half, "auto"), PackedBert)
    modernbert = AutoModel.from_pretrained(tiny_modernbert_path)
    assert pick_bert_path(modernbert, "fast") is modernbert  # nothing to pack
    decoder = BertModel(BertConfig(hidden_size=32, num_attention_heads=4, is_decoder=True))
    assert pick_bert_path(decoder, "auto") is decoder
    with pytest.raises(ModelLoadError, match="bert_path must be one of auto, fast, reference"):
        pick_bert_path(model, "quick")
    # An ONNX backend's session (no torch layers) runs as exported; fast is refused there.
    session = SimpleNamespace(config=model.config)
    assert pick_bert_path(session, "auto") is session
    with pytest.raises(ModelLoadError, match="use --bert-path auto or reference"):
        pick_bert_path(session, "fast")
