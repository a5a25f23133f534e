"""Text to model windows: every field of the result, at the edges of each overflow policy.

The word tokenizer gives ids in order of first sight, with [CLS]=1 and [SEP]=2; the
tokenizer's own probe takes id 3 for "a", so other words start at 4. Each expected
window is written out in full.
"""

from __future__ import annotations

from typing import Any

import pytest
from fakes import CLS, SEP, WordTokenizer
from harness import exactly

from embedserve.server.errors import InvalidArgument
from embedserve.server.tokenization import Overflow, TextTokenizer, TokenizedText


def make(
    max_tokens: int = 8, overlap: int = 2, include_prompt: bool = True, **word: Any
) -> TextTokenizer:
    return TextTokenizer(WordTokenizer(**word), max_tokens, include_prompt, overlap)


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


def one(tokenizer: TextTokenizer, text: str, overflow: Overflow, prompt: str = "") -> TokenizedText:
    return tokenizer.encode([text], prompt, overflow)[0]


BODY = tuple(range(4, 14))  # the ids of words(10) on a fresh tokenizer


def test_an_input_that_fits_is_one_window_with_its_spans() -> None:
    got = one(make(), "a b c", Overflow.TRUNCATE_RIGHT)
    assert got == TokenizedText(((CLS, 3, 4, 5, SEP),), 0, False, 5, 1, (1, 4))


def test_the_prompt_is_in_the_head_and_out_of_pooling_when_the_model_says_so() -> None:
    got = one(make(include_prompt=False), "a b", Overflow.TRUNCATE_RIGHT, prompt="q: ")
    assert got == TokenizedText(((CLS, 4, 3, 5, SEP),), 2, False, 5, 2, (2, 4))


def test_an_input_of_exactly_the_maximum_fits() -> None:
    got = one(make(max_tokens=8), words(6), Overflow.ERROR)
    assert got.windows == ((CLS, *range(4, 10), SEP),) and not got.truncated


def test_truncation_keeps_the_head_or_the_tail_and_says_which_part() -> None:
    right = one(make(), words(10), Overflow.TRUNCATE_RIGHT)
    assert right == TokenizedText(((CLS, *BODY[:6], SEP),), 0, True, 12, 1, (1, 7))
    left = one(make(), words(10), Overflow.TRUNCATE_LEFT)
    assert left == TokenizedText(((CLS, *BODY[4:], SEP),), 0, True, 12, 1, (5, 11))


def test_chunks_step_by_room_minus_overlap() -> None:
    # room 6, overlap 2: windows start at 0 and 4.
    got = one(make(overlap=2, include_prompt=False), words(10), Overflow.CHUNK, prompt="p ")
    body = tuple(range(5, 15))  # "p" took id 4
    room = 5  # the prompt takes one place
    assert got == TokenizedText(
        tuple((CLS, 4, *body[s : s + room], SEP) for s in (0, 3, 6)), 2, False, 13, 2, (2, 7)
    )


def test_an_overlap_over_half_the_room_is_cut_to_half() -> None:
    # room 5, overlap 5: the overlap is cut to 5 // 2 = 2, so the step is 3.
    got = one(make(max_tokens=7, overlap=5), words(10), Overflow.CHUNK)
    assert got.windows == tuple((CLS, *BODY[s : s + 5], SEP) for s in (0, 3, 6))
    assert got.body_span == (1, 6)


def test_a_room_of_one_token_chunks_token_by_token() -> None:
    got = one(make(max_tokens=3, overlap=4), words(3), Overflow.CHUNK)
    assert got.windows == ((CLS, 4, SEP), (CLS, 5, SEP), (CLS, 6, SEP))


def test_a_prompt_that_fills_the_window_is_refused_only_when_nothing_is_left() -> None:
    tokenizer = make(max_tokens=4)
    with pytest.raises(
        InvalidArgument, match=exactly("inputs[0]: the prompt alone fills the model's 4 tokens")
    ):
        one(tokenizer, "a", Overflow.TRUNCATE_RIGHT, prompt="p q ")
    # One place left: the input is cut to its first word.
    assert one(tokenizer, "a b", Overflow.TRUNCATE_RIGHT, prompt="p ").windows == (
        (CLS, 4, 3, SEP),
    )


def test_a_prompt_leaving_under_a_quarter_of_the_window_is_refused_under_chunk() -> None:
    """Each window moved on by a token or two and held the whole prompt again: a long
    text cost as many whole windows as it had tokens."""
    tokenizer = make(max_tokens=8)
    assert len(one(tokenizer, words(10), Overflow.CHUNK, prompt="p q r s ").windows) == 9
    with pytest.raises(InvalidArgument) as refused:
        one(tokenizer, words(10), Overflow.CHUNK, prompt="p q r s t ")
    assert refused.value.message == (
        "inputs[0]: the prompt leaves 1 of the model's 8 tokens for the text; under CHUNK "
        "each window holds the prompt and at least a quarter of them (2) of the text: "
        "shorten the prompt, or let the text be truncated"
    )
    truncated = one(tokenizer, words(10), Overflow.TRUNCATE_RIGHT, prompt="p q r s t ")
    assert len(truncated.windows) == 1


def test_the_error_policy_message_names_the_input_and_what_to_do() -> None:
    with pytest.raises(InvalidArgument) as caught:
        make().encode(["fine", words(10)], "", Overflow.ERROR)
    assert caught.value.message == (
        "inputs[1] has 12 tokens, more than the model's maximum of 8; "
        "shorten it, or let it be truncated or chunked (the TRUNCATE or CHUNK overflow policy)"
    )


def test_max_tokens_must_leave_room_for_text() -> None:
    with pytest.raises(ValueError, match=exactly("max_tokens leaves no room for text")):
        make(max_tokens=2)
    assert make(max_tokens=3).max_tokens == 3


def test_the_tokenizers_own_length_limit_is_lifted() -> None:
    word = WordTokenizer()
    TextTokenizer(word, 8, True, 2)
    assert word.model_max_length >= 1 << 30  # the service enforces max_tokens itself


def test_the_pad_id_is_the_tokenizers_or_zero() -> None:
    assert make(pad_token_id=7).pad_token_id == 7
    assert make(pad_token_id=None).pad_token_id == 0


def test_a_model_without_special_tokens() -> None:
    tokenizer = make(prefix=(), suffix=())
    assert one(tokenizer, "a b c", Overflow.ERROR) == TokenizedText(
        ((3, 4, 5),), 0, False, 3, 0, (0, 3)
    )
    assert tokenizer.encode_ids([[5, 4]], "", Overflow.ERROR)[0].windows == ((5, 4),)


def test_a_model_with_a_prefix_only() -> None:
    tokenizer = make(max_tokens=4, suffix=())
    right = one(tokenizer, words(5), Overflow.TRUNCATE_RIGHT)
    assert right == TokenizedText(((CLS, 4, 5, 6),), 0, True, 6, 1, (1, 4))
    assert tokenizer.encode_ids([[3, 4]], "", Overflow.ERROR)[0].windows == ((CLS, 3, 4),)


def test_token_ids_get_the_special_tokens_and_the_prompt_around_them() -> None:
    tokenizer = make(include_prompt=False)
    tokenizer.encode(["a b c d"], "", Overflow.ERROR)  # ids 3 to 6 now exist
    got = tokenizer.encode_ids([[4, 5], [3, 4, 5, 6, 3, 4, 5]], "a ", Overflow.TRUNCATE_RIGHT)
    assert got[0] == TokenizedText(((CLS, 3, 4, 5, SEP),), 2, False, 5, 2, (2, 4))
    assert got[1] == TokenizedText(((CLS, 3, 3, 4, 5, 6, 3, SEP),), 2, True, 10, 2, (2, 7))
    chunked = tokenizer.encode_ids([[3, 4, 5, 6, 3, 4, 5]], "", Overflow.CHUNK)[0]
    assert chunked.windows == ((CLS, 3, 4, 5, 6, 3, 4, SEP), (CLS, 3, 4, 5, SEP))


def test_token_ids_that_hold_the_special_tokens_already_get_them_once() -> None:
    """Ids as a tokenizer gives them by default (and /tokenize answers them): framed by
    the model's special tokens, with the prompt's after the first, none added twice."""
    tokenizer = make()
    tokenizer.encode(["a b c"], "", Overflow.ERROR)  # ids 3 to 5 now exist
    framed, prompted, bare = tokenizer.encode_ids(
        [[CLS, 4, 5, SEP], [CLS, 3, 4, 5, SEP], [4, 5]], "a ", Overflow.ERROR
    )
    assert framed == prompted == bare  # /tokenize gives the prompt's ids too
    assert framed.windows == ((CLS, 3, 4, 5, SEP),)
    # Only a whole frame is taken off; the special tokens alone stay text.
    (lone,) = tokenizer.encode_ids([[CLS, SEP]], "", Overflow.ERROR)
    assert lone.windows == ((CLS, CLS, SEP, SEP),)
    (half,) = tokenizer.encode_ids([[CLS, 4]], "", Overflow.ERROR)
    assert half.windows == ((CLS, CLS, 4, SEP),)


@pytest.mark.parametrize("bad", [5, 7, -1])
def test_token_ids_outside_the_vocabulary_are_named(bad: int) -> None:
    tokenizer = make()
    tokenizer.encode(["a b"], "", Overflow.ERROR)  # vocabulary: 0 to 4
    with pytest.raises(InvalidArgument) as caught:
        tokenizer.encode_ids([[3], [4, bad]], "", Overflow.ERROR, field="data")
    assert caught.value.message == (
        f"data[1][1] is token id {bad}; the model's vocabulary has ids 0 to 4"
    )
    # The vocabulary's first and last ids are in it.
    assert tokenizer.encode_ids([[0, 4]], "", Overflow.ERROR)[0].windows == ((CLS, 0, 4, SEP),)
    with pytest.raises(InvalidArgument, match=r"^input\[0\] has 13 tokens"):
        tokenizer.encode_ids([[3] * 11], "", Overflow.ERROR)


def test_token_details_map_onto_the_text_without_its_prompt() -> None:
    detail = make().details("cats  sleep", "query: ")
    assert detail.ids == [CLS, 4, 5, 6, SEP]
    assert detail.tokens == ["[CLS]", "query:", "cats", "sleep", "[SEP]"]
    assert detail.offsets == [(0, 0), (0, 0), (0, 4), (6, 11), (0, 0)]
    no_prompt = make(suffix=()).details("a bc", "")
    assert no_prompt.offsets == [(0, 0), (0, 1), (2, 4)]


def test_special_tokens_are_counted_where_the_probe_text_is_two_tokens() -> None:
    """The special tokens around a text were counted from "a" taken as one token: to a
    byte-level BPE without "Ġa" it is two, and truncation kept the text's last token
    where the cut falls, as sentence-transformers does not."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=alphabet
    )
    bpe.train_from_iterator(["the word token embed model text " * 20], trainer)
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    hf = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    assert len(hf("a")["input_ids"]) == 4  # <s> Ġ a </s>
    tokenizer = TextTokenizer(hf, 8, True, 2)
    text = " ".join(["token"] * 20)
    cut = one(tokenizer, text, Overflow.TRUNCATE_RIGHT).windows[0]
    assert list(cut) == hf(text, truncation=True, max_length=8)["input_ids"]
    token = hf("token", add_special_tokens=False)["input_ids"]
    framed = tokenizer.encode_ids([token], "", Overflow.ERROR)[0].windows[0]
    assert list(framed) == [0, *token, 2]


def test_do_lower_case_keeps_the_added_tokens_written_in_a_text(minilm_path: Any) -> None:
    """As sentence-transformers lowercases (in the tokenizer's normaliser, after the added
    tokens are found): the whole string lowercased first read "[MASK]" as "[ mask ]"."""
    from tokenizers.normalizers import BertNormalizer
    from transformers import AutoTokenizer

    cased = AutoTokenizer.from_pretrained(minilm_path)  # a lowercase vocabulary, read cased:
    cased.backend_tokenizer.normalizer = BertNormalizer(lowercase=False)
    tokenizer = TextTokenizer(cased, 32, True, 4, lowercase=True)
    text = "A [MASK] Token"
    (window,) = one(tokenizer, text, Overflow.ERROR).windows
    assert cased.convert_ids_to_tokens(list(window)) == ["[CLS]", "a", "[MASK]", "token", "[SEP]"]
    details = tokenizer.details(text, "")
    spans = [text[start:end] for start, end in details.offsets]
    assert spans == ["", "A", "[MASK]", "Token", ""]  # offsets into the text as written


def test_inputs_are_read_a_slice_of_characters_at_a_time_with_the_same_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read whole, a request of 64 million-character inputs held some 25 GB of the
    tokenizer's encodings at once; a slice at a time, each is cut to its windows first."""
    from embedserve.server import tokenization

    texts = [words(3), words(12), "a", words(5), words(2)]
    whole = make().encode(texts, "", Overflow.TRUNCATE_RIGHT)
    assert list(tokenization._slices(texts, 20)) == [(0, 1), (1, 2), (2, 5)]
    monkeypatch.setattr(tokenization, "ENCODE_SLICE_CHARS", 20)
    assert make().encode(texts, "", Overflow.TRUNCATE_RIGHT) == whole
