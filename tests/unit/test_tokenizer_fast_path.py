"""Tokenising through the Rust tokenizer directly gives the ids of the transformers call."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from embedserve.server.tokenization import Overflow, TextTokenizer, plain_backend

TEXTS = [
    "Hello world",
    "  leading and trailing spaces  ",
    "Ünïcödé, emoji 🙂 and CJK 漢字",
    "[SEP] special tokens [CLS] written in the text [PAD]",
    "tab\tand\nnewline",
    "x",
    "word " * 700,  # longer than any window: the copy must not truncate on its own
]


def byte_level_bpe(folder: Path) -> Path:
    """A byte-level BPE tokenizer as ModernBERT's is, trained here in a moment."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["[CLS]", "[SEP]", "[PAD]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(TEXTS * 5, trainer)
    cls, sep = bpe.token_to_id("[CLS]"), bpe.token_to_id("[SEP]")
    bpe.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=bpe, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]"
    )
    wrapped.save_pretrained(folder)
    return folder


@pytest.fixture(params=["minilm", "byte-level-bpe"])
def model_path(request: pytest.FixtureRequest, minilm_path: Path, tmp_path: Path) -> Path:
    return minilm_path if request.param == "minilm" else byte_level_bpe(tmp_path)


def test_ids_equal_those_of_the_transformers_call(model_path: Path) -> None:
    hf = AutoTokenizer.from_pretrained(model_path)
    tokenizer = TextTokenizer(hf, 100_000, True, 0)
    assert tokenizer.backend is not None  # the direct path is the one under test
    for prompt in ("", "search_query: "):
        expected = hf([prompt + text for text in TEXTS], add_special_tokens=True)["input_ids"]
        encoded = tokenizer.encode(TEXTS, prompt, Overflow.TRUNCATE_RIGHT)
        assert [list(text.windows[0]) for text in encoded] == [list(ids) for ids in expected]
        assert len(expected[-1]) > 700


def test_every_overflow_policy_cuts_the_same_windows(model_path: Path) -> None:
    fast = TextTokenizer(AutoTokenizer.from_pretrained(model_path), 64, False, 8)
    reference = TextTokenizer(AutoTokenizer.from_pretrained(model_path), 64, False, 8)
    reference.backend = None  # the transformers call
    for overflow in (Overflow.TRUNCATE_RIGHT, Overflow.TRUNCATE_LEFT, Overflow.CHUNK):
        assert fast.encode(TEXTS, "search_document: ", overflow) == reference.encode(
            TEXTS, "search_document: ", overflow
        )


def test_the_copy_neither_truncates_nor_pads_and_leaves_the_wrappers_own_alone(
    model_path: Path,
) -> None:
    hf = AutoTokenizer.from_pretrained(model_path)
    hf._tokenizer.enable_truncation(8)
    hf._tokenizer.enable_padding(length=16)
    plain = plain_backend(hf)
    assert plain is not None
    assert plain.truncation is None and plain.padding is None
    assert len(plain.encode(TEXTS[-1]).ids) > 700
    assert hf._tokenizer.truncation is not None and hf._tokenizer.padding is not None


def test_a_prompt_whose_last_word_runs_into_the_text(minilm_path: Path) -> None:
    """Prompt and text are tokenised together: "qwertyuiop" alone is several word pieces,
    joined to a character outside the vocabulary it is one [UNK]. The head counted on the
    prompt alone is then longer than the whole input; windows and token details must still
    agree, as the model's token vectors are paired with them."""
    hf = AutoTokenizer.from_pretrained(minilm_path)
    tokenizer = TextTokenizer(hf, 512, False, 0)
    prompt, text = "qwertyuiop", "\U000a7691"
    assert tokenizer.prompt_token_count(prompt) > 1
    encoded = tokenizer.encode([text], prompt, Overflow.TRUNCATE_RIGHT)[0]
    window = encoded.windows[0]
    assert hf.convert_ids_to_tokens(list(window)) == ["[CLS]", "[UNK]", "[SEP]"]
    assert encoded.head_len == 2 and encoded.body_span == (2, 2)
    assert encoded.pool_start == 2  # the prompt stays out of pooling; [SEP] is left
    detail = tokenizer.details(text, prompt)
    assert detail.ids == list(window)
    assert detail.offsets == [(0, 0)] * 3
